//! Clients: registration (RFC 7591), the authorization request checked,
//! and a person's consent turned into a single-use code.

use super::documents::is_document_id;
use super::records::{
    AuthorizeParams, AuthorizeRequest, CLIENTS_MAX, CODE_TTL_MS, Cap, ClientMetadata, CodeRecord,
    GRANTS_PER_ORG_MAX, Oauth, OauthClient, OauthError, REGISTRATIONS_PER_MINUTE, Registered,
    check_metadata, resource_key,
};
use crate::identity::Org;
use crate::identity::oauth::{self, new_secret, redirect_uri_matches};
use crate::identity::secret_hash;
use crate::market::{Error, Market, Result, now_ms};
use crate::store::Tree;

impl Market {
    /// Registers a client (RFC 7591), open to anyone, rate-limited per
    /// client address and bounded in number.
    pub async fn oauth_register(
        &self,
        metadata: ClientMetadata,
        client_address: std::net::IpAddr,
    ) -> Oauth<Registered> {
        let method = check_metadata(&metadata, "client_secret_basic")?;
        self.rates
            .take(
                &format!("oauth-register:{client_address}"),
                "register",
                REGISTRATIONS_PER_MINUTE,
                std::time::Instant::now(),
            )
            .map_err(|_| {
                OauthError::new(
                    "temporarily_unavailable",
                    format!(
                        "this address registered {REGISTRATIONS_PER_MINUTE} clients in the last \
                         minute; retry later"
                    ),
                )
            })?;
        if self.store.count_prefix(Tree::Oauth, "client/") >= CLIENTS_MAX {
            return Err(OauthError::new(
                "temporarily_unavailable",
                "this marketplace holds as many clients as it keeps; ask its operator",
            ));
        }
        let client_secret = (method != "none").then(|| new_secret("mcs_"));
        let client = OauthClient {
            client_id: new_secret("mc_"),
            client_name: metadata.client_name.map(|n| n.trim().to_string()),
            redirect_uris: metadata.redirect_uris,
            token_endpoint_auth_method: method,
            secret_sha256: client_secret.as_deref().map(secret_hash),
            created_at_ms: now_ms(),
        };
        self.store.put(
            Tree::Oauth,
            &format!("client/{}", client.client_id),
            &client,
        )?;
        self.store.sync().await.map_err(Error::from)?;
        Ok(Registered {
            client,
            client_secret,
        })
    }

    pub(super) fn oauth_client(&self, client_id: &str) -> Oauth<Option<OauthClient>> {
        if client_id.is_empty() || client_id.len() > 100 {
            return Ok(None);
        }
        Ok(self
            .store
            .get(Tree::Oauth, &format!("client/{client_id}"))?)
    }

    /// The client and redirect URI of an authorization request. An error
    /// here is shown to the person, never sent to the redirect URI (it may
    /// not be the client's: RFC 6749 §4.1.2.1).
    pub async fn oauth_authorize_client(
        &self,
        params: &AuthorizeParams,
    ) -> Oauth<(OauthClient, String)> {
        let client = if is_document_id(&params.client_id) {
            self.document_client(&params.client_id).await?
        } else {
            self.oauth_client(&params.client_id)?.ok_or_else(|| {
                OauthError::new(
                    "invalid_client",
                    "this client is not registered here: it must register first, or use a \
                     client ID metadata document (an https URL as its client_id)",
                )
            })?
        };
        let redirect_uri = match &params.redirect_uri {
            Some(presented) => client
                .redirect_uris
                .iter()
                .find(|r| redirect_uri_matches(r, presented))
                .map(|_| presented.clone())
                .ok_or_else(|| {
                    OauthError::new(
                        "invalid_request",
                        "redirect_uri is not one this client registered",
                    )
                })?,
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            None => {
                return Err(OauthError::new(
                    "invalid_request",
                    "redirect_uri is required: this client registered several",
                ));
            }
        };
        Ok((client, redirect_uri))
    }

    /// Checks the rest of an authorization request; `resources` are the
    /// resource indicators this host answers for (the first is the whole
    /// marketplace, used when the request names none). An error here goes
    /// back to the client's redirect URI.
    pub fn oauth_authorize_check(
        &self,
        client: OauthClient,
        redirect_uri: String,
        params: &AuthorizeParams,
        resources: &[String],
    ) -> Oauth<AuthorizeRequest> {
        if params.response_type != "code" {
            return Err(OauthError::new(
                "unsupported_response_type",
                "response_type must be code",
            ));
        }
        let challenge = params.code_challenge.as_deref().unwrap_or("");
        if challenge.is_empty() {
            return Err(OauthError::new(
                "invalid_request",
                "code_challenge is required (PKCE, S256)",
            ));
        }
        if params.code_challenge_method.as_deref() != Some("S256") {
            return Err(OauthError::new(
                "invalid_request",
                "code_challenge_method must be S256",
            ));
        }
        if !oauth::challenge_is_valid(challenge) {
            return Err(OauthError::new(
                "invalid_request",
                "code_challenge must be 43 base64url characters (the SHA-256 of the verifier)",
            ));
        }
        let scopes = oauth::requested_scopes(params.scope.as_deref())
            .map_err(|m| OauthError::new("invalid_scope", m))?;
        let resource = self.oauth_resource(params.resource.as_deref(), resources)?;
        if params.state.as_ref().is_some_and(|s| s.len() > 1_024) {
            return Err(OauthError::new(
                "invalid_request",
                "state is at most 1024 bytes",
            ));
        }
        Ok(AuthorizeRequest {
            client,
            redirect_uri,
            state: params.state.clone(),
            code_challenge: challenge.to_string(),
            scopes,
            resource,
        })
    }

    fn oauth_resource(&self, asked: Option<&str>, resources: &[String]) -> Oauth<String> {
        match asked {
            None | Some("") => resources
                .first()
                .cloned()
                .ok_or_else(|| OauthError::new("invalid_target", "this host names no resource")),
            Some(asked) => resources
                .iter()
                .find(|r| resource_key(r) == resource_key(asked))
                .cloned()
                .ok_or_else(|| {
                    OauthError::new(
                        "invalid_target",
                        format!(
                            "`{}` is not a resource of this marketplace; use one of {}",
                            asked.chars().take(200).collect::<String>(),
                            resources.join(", ")
                        ),
                    )
                }),
        }
    }

    /// A member of `org` consents to `request` with `cap`: the single-use
    /// code the client trades for tokens.
    pub async fn oauth_consent(
        &self,
        org: &Org,
        request: &AuthorizeRequest,
        cap: Cap,
    ) -> Result<String> {
        for limit in [cap.per_call_max_micros, cap.daily_max_micros]
            .into_iter()
            .flatten()
        {
            if limit == 0 || limit > crate::pricing::MICROS_MAX {
                return Err(Error::InvalidRequest(format!(
                    "a spending cap is 1 to {} micros, or none",
                    crate::pricing::MICROS_MAX
                )));
            }
        }
        let live = self.grants_of(&org.org_id)?.len();
        if live >= GRANTS_PER_ORG_MAX {
            return Err(Error::InvalidRequest(format!(
                "this organisation holds {GRANTS_PER_ORG_MAX} live grants; revoke one on the account page first"
            )));
        }
        let code = new_secret("mac_");
        let record = CodeRecord {
            client_id: request.client.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            org_id: org.org_id.clone(),
            scopes: request.scopes.clone(),
            resource: request.resource.clone(),
            cap,
            expires_at_ms: now_ms() + CODE_TTL_MS,
        };
        self.store.put(
            Tree::Oauth,
            &format!("code/{}", secret_hash(&code)),
            &record,
        )?;
        Ok(code)
    }
}
