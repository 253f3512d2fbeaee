//! What the authorization server keeps and answers: clients, consents
//! (codes), grants, token records, and OAuth's error shape.

use super::super::Error;
use crate::identity::oauth::{self, redirect_uri_acceptable};
use serde::{Deserialize, Serialize};

/// How long an access token lives.
pub const ACCESS_TTL_MS: u64 = 15 * 60 * 1000;
/// How long a refresh token lives (each use replaces it).
pub const REFRESH_TTL_MS: u64 = 30 * 24 * 3_600 * 1000;
/// How long an authorization code lives.
pub const CODE_TTL_MS: u64 = 60 * 1000;
/// Registered clients kept at most (registration is open to anyone).
pub const CLIENTS_MAX: usize = 10_000;
/// Live grants an organisation holds at most.
pub const GRANTS_PER_ORG_MAX: usize = 100;
/// Redirect URIs one client registers at most.
pub const REDIRECT_URIS_MAX: usize = 10;
/// Registrations per client address per minute.
pub const REGISTRATIONS_PER_MINUTE: u32 = 20;
/// Longest client name, in characters.
pub const CLIENT_NAME_CHARS_MAX: usize = 100;

/// Why an OAuth request failed, as RFC 6749 §5.2 names it.
#[derive(Debug)]
pub struct OauthError {
    /// The error code (`invalid_request`, `invalid_grant`, …).
    pub code: &'static str,
    /// For the developer reading it.
    pub description: String,
}

impl OauthError {
    pub(super) fn new(code: &'static str, description: impl Into<String>) -> Self {
        OauthError {
            code,
            description: description.into(),
        }
    }
}

impl From<Error> for OauthError {
    fn from(error: Error) -> Self {
        match error.code() {
            "rate_limited" | "overloaded" => {
                OauthError::new("temporarily_unavailable", error.to_string())
            }
            _ => {
                tracing::error!(%error, "oauth");
                OauthError::new("server_error", "the server failed; try again")
            }
        }
    }
}

impl From<crate::store::Error> for OauthError {
    fn from(error: crate::store::Error) -> Self {
        Error::from(error).into()
    }
}

pub(super) type Oauth<T> = std::result::Result<T, OauthError>;

/// A registered client.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OauthClient {
    /// Its id (`mc_…`).
    pub client_id: String,
    /// What the consent page calls it (the client's own claim).
    pub client_name: Option<String>,
    /// Where codes may be sent.
    pub redirect_uris: Vec<String>,
    /// `none` (a public client, PKCE alone) or `client_secret_post` /
    /// `client_secret_basic`.
    pub token_endpoint_auth_method: String,
    /// The secret's hash, for a confidential client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_sha256: Option<String>,
    /// Unix ms.
    pub created_at_ms: u64,
}

/// What a client asks to be registered as (RFC 7591 §2). Unknown members
/// are ignored, as the RFC says.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ClientMetadata {
    /// Where codes may be sent.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Its name.
    #[serde(default)]
    pub client_name: Option<String>,
    /// How it authenticates at the token endpoint.
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    /// Grant types it will use.
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    /// Response types it will use.
    #[serde(default)]
    pub response_types: Option<Vec<String>>,
    /// Scopes it will ask for.
    #[serde(default)]
    pub scope: Option<String>,
}

/// A registration's answer: the client and, for a confidential one, its
/// secret (shown once).
#[derive(Debug, Clone)]
pub struct Registered {
    /// The client.
    pub client: OauthClient,
    /// The secret, if it has one.
    pub client_secret: Option<String>,
}

/// A spending cap a person sets at consent, in micros.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cap {
    /// The most one call may cost.
    pub per_call_max_micros: Option<u64>,
    /// The most spent per UTC day.
    pub daily_max_micros: Option<u64>,
}

/// An authorization request that passed every check: what the consent page
/// shows and what consenting grants.
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    /// The client asking.
    pub client: OauthClient,
    /// Where the answer goes (one of the client's).
    pub redirect_uri: String,
    /// The client's state, returned as given.
    pub state: Option<String>,
    /// The PKCE S256 challenge.
    pub code_challenge: String,
    /// The scopes asked for.
    pub scopes: Vec<String>,
    /// The resource the token will be bound to.
    pub resource: String,
}

/// The query of an authorization request (RFC 6749 §4.1.1, RFC 7636,
/// RFC 8707).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthorizeParams {
    /// Must be `code`.
    #[serde(default)]
    pub response_type: String,
    /// The client.
    #[serde(default)]
    pub client_id: String,
    /// One of the client's redirect URIs (may be left out when it has one).
    pub redirect_uri: Option<String>,
    /// Space-separated scopes.
    pub scope: Option<String>,
    /// The client's state.
    pub state: Option<String>,
    /// The PKCE challenge.
    pub code_challenge: Option<String>,
    /// Must be `S256`.
    pub code_challenge_method: Option<String>,
    /// The resource indicator.
    pub resource: Option<String>,
}

/// A consent, given and not yet traded for tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct CodeRecord {
    pub(super) client_id: String,
    pub(super) redirect_uri: String,
    pub(super) code_challenge: String,
    pub(super) org_id: String,
    pub(super) scopes: Vec<String>,
    pub(super) resource: String,
    pub(super) cap: Cap,
    pub(super) expires_at_ms: u64,
}

/// A person's consent to one client: what its tokens may do and spend.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Grant {
    /// Its id (`gr_…`), also the settlement allowance's.
    pub grant_id: String,
    /// Whose money it spends.
    pub org_id: String,
    /// The client it was given to.
    pub client_id: String,
    /// The client's name when consented.
    pub client_name: Option<String>,
    /// What its tokens may do.
    pub scopes: Vec<String>,
    /// The resource its tokens are for.
    pub resource: String,
    /// What its tokens may spend.
    pub cap: Cap,
    /// Unix ms.
    pub created_at_ms: u64,
    /// When it was revoked (by a person, or for a reused refresh token).
    #[serde(default)]
    pub revoked_at_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(super) struct AccessRecord {
    pub(super) grant_id: String,
    pub(super) expires_at_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(super) struct RefreshRecord {
    pub(super) grant_id: String,
    pub(super) expires_at_ms: u64,
    /// Set when it was traded for a new pair: presenting it again is reuse.
    #[serde(default)]
    pub(super) replaced: bool,
}

/// Tokens issued at the token endpoint (RFC 6749 §5.1).
#[derive(Debug, Clone, Serialize)]
pub struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds.
    pub expires_in: u64,
    /// The next refresh token (the one used is spent).
    pub refresh_token: String,
    /// The scopes granted.
    pub scope: String,
}

/// How a client proved who it is at the token endpoint.
#[derive(Debug, Clone, Default)]
pub struct ClientAuth {
    /// From the form or the Basic header.
    pub client_id: Option<String>,
    /// A confidential client's secret.
    pub client_secret: Option<String>,
}

/// A grant as its organisation's dashboard lists it.
#[derive(Debug, Clone, Serialize)]
pub struct GrantView {
    /// The grant.
    #[serde(flatten)]
    pub grant: Grant,
    /// What its tokens spent.
    pub spend: crate::settlement::AllowanceSpend,
}

pub(super) fn resource_key(resource: &str) -> &str {
    resource.trim_end_matches('/')
}

/// Checks a client's metadata (registration, or a client ID metadata
/// document): redirect URIs, name, grant and response types, scopes.
/// Returns its token endpoint authentication method (`default` when it
/// names none).
pub(super) fn check_metadata(metadata: &ClientMetadata, default: &str) -> Oauth<String> {
    let invalid = |m: String| OauthError::new("invalid_client_metadata", m);
    if metadata.redirect_uris.is_empty() || metadata.redirect_uris.len() > REDIRECT_URIS_MAX {
        return Err(OauthError::new(
            "invalid_redirect_uri",
            format!("register 1 to {REDIRECT_URIS_MAX} redirect_uris"),
        ));
    }
    for uri in &metadata.redirect_uris {
        redirect_uri_acceptable(uri).map_err(|m| OauthError::new("invalid_redirect_uri", m))?;
    }
    if let Some(name) = &metadata.client_name
        && (crate::text::chars(name) > CLIENT_NAME_CHARS_MAX || crate::text::is_blank(name))
    {
        return Err(invalid(format!(
            "client_name is 1 to {CLIENT_NAME_CHARS_MAX} characters"
        )));
    }
    let method = metadata
        .token_endpoint_auth_method
        .clone()
        .unwrap_or_else(|| default.into());
    if !["none", "client_secret_post", "client_secret_basic"].contains(&method.as_str()) {
        return Err(invalid(format!(
            "token_endpoint_auth_method `{}` is not supported: use none, client_secret_post \
                 or client_secret_basic",
            method.chars().take(64).collect::<String>()
        )));
    }
    if let Some(types) = &metadata.grant_types
        && types
            .iter()
            .any(|t| t != "authorization_code" && t != "refresh_token")
    {
        return Err(invalid(
            "grant_types: only authorization_code and refresh_token are offered".into(),
        ));
    }
    if let Some(types) = &metadata.response_types
        && types.iter().any(|t| t != "code")
    {
        return Err(invalid("response_types: only code is offered".into()));
    }
    if let Some(scope) = &metadata.scope {
        oauth::requested_scopes(Some(scope))
            .map_err(|m| OauthError::new("invalid_client_metadata", m))?;
    }
    Ok(method)
}
