//! OAuth 2.1 over HTTP: the metadata documents (RFC 9728 for each protected
//! door, RFC 8414 for the authorization server), client registration (RFC
//! 7591), the token endpoint and revocation (RFC 7009). The authorization
//! endpoint is a page (`pages/consent.rs`): a person signs in and consents.
//!
//! Tokens are accepted by `/mcp` and `/a2a` (bound to that door, or to the
//! whole marketplace); the REST API keeps API keys only, so a token never
//! does what a consent did not show (keys, budgets, deposits).

use crate::identity::oauth::SCOPES;
use crate::market::{ClientAuth, ClientMetadata, Market, OauthError};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::json;
use std::sync::Arc;

/// The doors a token may be bound to, by path.
pub const DOORS: [&str; 2] = ["/mcp", "/a2a"];

/// The URL clients reach this host at: the configured `public_url`, or the
/// `Host` they asked (https when the host serves TLS).
pub fn base_url(market: &Market, headers: &HeaderMap) -> String {
    let config = market.config();
    if let Some(url) = &config.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let scheme = if config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}")
}

/// The resource indicators this host answers for: the whole marketplace
/// first (a token bound to it works at every door), then each door.
pub fn resources(base: &str) -> Vec<String> {
    std::iter::once(base.to_string())
        .chain(DOORS.iter().map(|door| format!("{base}{door}")))
        .collect()
}

/// The door a request path belongs to (`/mcp/…` → `/mcp`).
pub fn door_of(path: &str) -> &'static str {
    DOORS
        .iter()
        .find(|door| path == **door || path.starts_with(&format!("{door}/")))
        .copied()
        .unwrap_or("/mcp")
}

/// The protected resource a request path is under: an agent's own MCP
/// endpoint (`/mcp/agents/{agent}`), or its door.
pub fn protected_path(path: &str) -> String {
    match path.strip_prefix("/mcp/agents/") {
        Some(agent) if !agent.is_empty() && !agent.contains('/') => path.to_string(),
        _ => door_of(path).to_string(),
    }
}

/// The resource indicators a token may be bound to for a request to
/// `path`: the whole host, the door, and the agent's endpoint.
pub fn accepted(base: &str, path: &str) -> Vec<String> {
    let mut accepted = vec![base.to_string(), format!("{base}{}", door_of(path))];
    let protected = protected_path(path);
    if protected != door_of(path) {
        accepted.push(format!("{base}{protected}"));
    }
    accepted
}

/// Where a door's protected-resource metadata is.
pub fn resource_metadata_url(base: &str, door: &str) -> String {
    format!("{base}/.well-known/oauth-protected-resource{door}")
}

fn metadata_response(value: serde_json::Value) -> Response {
    let mut response = Json(value).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

fn protected_resource(base: &str, resource: String, name: &str) -> Response {
    metadata_response(json!({
        "resource": resource,
        "authorization_servers": [base],
        "scopes_supported": SCOPES,
        "bearer_methods_supported": ["header"],
        "resource_name": name,
        "resource_documentation": format!("{base}/"),
    }))
}

/// `GET /.well-known/oauth-protected-resource`: the whole marketplace.
pub async fn resource_root(State(market): State<Arc<Market>>, headers: HeaderMap) -> Response {
    let base = base_url(&market, &headers);
    protected_resource(&base, base.clone(), "Mercato")
}

/// `GET /.well-known/oauth-protected-resource/mcp`.
pub async fn resource_mcp(State(market): State<Arc<Market>>, headers: HeaderMap) -> Response {
    let base = base_url(&market, &headers);
    protected_resource(&base, format!("{base}/mcp"), "Mercato MCP")
}

/// `GET /.well-known/oauth-protected-resource/a2a`.
pub async fn resource_a2a(State(market): State<Arc<Market>>, headers: HeaderMap) -> Response {
    let base = base_url(&market, &headers);
    protected_resource(&base, format!("{base}/a2a"), "Mercato A2A")
}

/// `GET /.well-known/oauth-protected-resource/mcp/agents/{agent}`: an
/// agent's own MCP endpoint (its registry listing's remote).
pub async fn resource_agent(
    State(market): State<Arc<Market>>,
    headers: HeaderMap,
    axum::extract::Path(agent): axum::extract::Path<String>,
) -> Response {
    if market.registry_versions(&agent).is_empty() {
        return super::Problem::new("not_found", "no such agent is listed").into_response();
    }
    let base = base_url(&market, &headers);
    protected_resource(
        &base,
        format!("{base}/mcp/agents/{agent}"),
        &format!("Mercato agent {agent}"),
    )
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
pub async fn server_metadata(State(market): State<Arc<Market>>, headers: HeaderMap) -> Response {
    let base = base_url(&market, &headers);
    let methods = ["none", "client_secret_post", "client_secret_basic"];
    metadata_response(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/oauth/authorize"),
        "token_endpoint": format!("{base}/oauth/token"),
        "registration_endpoint": format!("{base}/oauth/register"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": true,
        "service_documentation": format!("{base}/"),
    }))
}

/// An OAuth error answer (RFC 6749 §5.2), never cached.
pub fn oauth_error(error: OauthError) -> Response {
    let status = super::error::oauth_status(error.code);
    let mut response = (
        status,
        Json(json!({ "error": error.code, "error_description": error.description })),
    )
        .into_response();
    no_store(&mut response);
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"mercato\""),
        );
    }
    response
}

fn no_store(response: &mut Response) {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

/// `POST /oauth/register` (RFC 7591): open to anyone, rate-limited per
/// address. A confidential client's secret is shown once.
pub async fn register(
    State(market): State<Arc<Market>>,
    client: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    body: axum::body::Bytes,
) -> Response {
    let metadata: ClientMetadata = match serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .filter(serde_json::Value::is_object)
        .map(serde_json::from_value)
    {
        Some(Ok(metadata)) => metadata,
        _ => {
            return oauth_error(OauthError {
                code: "invalid_client_metadata",
                description: "send the client's metadata as a JSON object (RFC 7591 §2)".into(),
            });
        }
    };
    let ip = client.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.0.ip());
    match market.oauth_register(metadata, ip).await {
        Ok(registered) => {
            let c = registered.client;
            let mut body = json!({
                "client_id": c.client_id,
                "client_id_issued_at": c.created_at_ms / 1000,
                "redirect_uris": c.redirect_uris,
                "token_endpoint_auth_method": c.token_endpoint_auth_method,
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "scope": SCOPES.join(" "),
            });
            if let Some(name) = c.client_name {
                body["client_name"] = json!(name);
            }
            if let Some(secret) = registered.client_secret {
                body["client_secret"] = json!(secret);
                body["client_secret_expires_at"] = json!(0);
            }
            let mut response = (StatusCode::CREATED, Json(body)).into_response();
            no_store(&mut response);
            response
        }
        Err(error) => oauth_error(error),
    }
}

/// The token endpoint's and revocation's form (RFC 6749 §4.1.3, §6; RFC
/// 7009 §2.1).
#[derive(Debug, Default, serde::Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    grant_type: String,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
    scope: Option<String>,
    resource: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    token: Option<String>,
}

/// The client's credentials: HTTP Basic (RFC 6749 §2.3.1, each part
/// form-urlencoded) or the form's `client_id` and `client_secret`.
fn client_auth(headers: &HeaderMap, form: &TokenForm) -> Result<ClientAuth, OauthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"));
    if let Some((_, encoded)) = basic {
        let bad = || OauthError {
            code: "invalid_client",
            description: "malformed Basic credentials".into(),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (id, secret) = decoded.split_once(':').ok_or_else(bad)?;
        let unescape = |s: &str| {
            url::form_urlencoded::parse(format!("v={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        return Ok(ClientAuth {
            client_id: Some(unescape(id)),
            client_secret: Some(unescape(secret)),
        });
    }
    Ok(ClientAuth {
        client_id: form.client_id.clone(),
        client_secret: form.client_secret.clone(),
    })
}

fn form_of(
    form: Result<axum::Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Result<TokenForm, OauthError> {
    form.map(|f| f.0).map_err(|_| OauthError {
        code: "invalid_request",
        description: "send an application/x-www-form-urlencoded body (RFC 6749 §4.1.3)".into(),
    })
}

/// `POST /oauth/token`: the authorization-code and refresh-token grants.
pub async fn token(
    State(market): State<Arc<Market>>,
    headers: HeaderMap,
    form: Result<axum::Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let answer = async {
        let form = form_of(form)?;
        let auth = client_auth(&headers, &form)?;
        let missing = |what: &str| OauthError {
            code: "invalid_request",
            description: format!("{what} is required"),
        };
        match form.grant_type.as_str() {
            "authorization_code" => {
                let code = form.code.as_deref().ok_or_else(|| missing("code"))?;
                let verifier = form
                    .code_verifier
                    .as_deref()
                    .ok_or_else(|| missing("code_verifier (PKCE)"))?;
                market
                    .oauth_exchange_code(
                        &auth,
                        code,
                        form.redirect_uri.as_deref(),
                        verifier,
                        form.resource.as_deref(),
                    )
                    .await
            }
            "refresh_token" => {
                let refresh = form
                    .refresh_token
                    .as_deref()
                    .ok_or_else(|| missing("refresh_token"))?;
                market
                    .oauth_refresh(
                        &auth,
                        refresh,
                        form.scope.as_deref(),
                        form.resource.as_deref(),
                    )
                    .await
            }
            "" => Err(missing("grant_type")),
            other => Err(OauthError {
                code: "unsupported_grant_type",
                description: format!(
                    "grant_type `{}` is not offered: use authorization_code or refresh_token",
                    crate::market::echoed(other)
                ),
            }),
        }
    };
    match answer.await {
        Ok(tokens) => {
            let mut response = Json(tokens).into_response();
            no_store(&mut response);
            response
        }
        Err(error) => oauth_error(error),
    }
}

/// `POST /oauth/revoke` (RFC 7009): 200 whether or not the token was known.
pub async fn revoke(
    State(market): State<Arc<Market>>,
    headers: HeaderMap,
    form: Result<axum::Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let answer = async {
        let form = form_of(form)?;
        let auth = client_auth(&headers, &form)?;
        let token = form.token.as_deref().ok_or_else(|| OauthError {
            code: "invalid_request",
            description: "token is required".into(),
        })?;
        market.oauth_revoke(&auth, token).await
    };
    match answer.await {
        Ok(()) => {
            let mut response = StatusCode::OK.into_response();
            no_store(&mut response);
            response
        }
        Err(error) => oauth_error(error),
    }
}

/// The `WWW-Authenticate` challenge of a door: where its metadata is, the
/// scopes it takes, and why a token was refused (RFC 6750 §3).
pub fn challenge(base: &str, protected: &str, error: Option<(&str, &str)>) -> HeaderValue {
    let mut value = format!(
        "Bearer realm=\"mercato\", resource_metadata=\"{}\", scope=\"{}\"",
        resource_metadata_url(base, protected),
        SCOPES.join(" ")
    );
    if let Some((code, description)) = error {
        value.push_str(&format!(
            ", error=\"{code}\", error_description=\"{}\"",
            description.replace(['"', '\\'], "'")
        ));
    }
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doors_are_found_by_path_prefix() {
        assert_eq!(door_of("/mcp"), "/mcp");
        assert_eq!(door_of("/a2a/agents/x"), "/a2a");
        assert_eq!(door_of("/a2ax"), "/mcp");
        assert_eq!(protected_path("/mcp/agents/x"), "/mcp/agents/x");
        assert_eq!(protected_path("/mcp/agents/x/y"), "/mcp");
        assert_eq!(
            accepted("http://h", "/mcp/agents/x"),
            ["http://h", "http://h/mcp", "http://h/mcp/agents/x"]
        );
        assert_eq!(accepted("http://h", "/a2a"), ["http://h", "http://h/a2a"]);
        assert_eq!(
            resources("http://h"),
            ["http://h", "http://h/mcp", "http://h/a2a"]
        );
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode("mc_a%2Bb:s%3Ac");
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        let auth = client_auth(&headers, &TokenForm::default()).unwrap();
        assert_eq!(auth.client_id.as_deref(), Some("mc_a+b"));
        assert_eq!(auth.client_secret.as_deref(), Some("s:c"));
    }
}
