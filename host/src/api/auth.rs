//! Bearer authentication: `Authorization: Bearer <api key>`.

use super::Problem;
use crate::identity::Org;
use crate::market::Market;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use std::sync::Arc;

/// The authenticated calling organisation.
pub struct Caller(pub Org);

/// The admin, authenticated by the admin token.
pub struct Admin;

/// An approver of an organisation, authenticated by an approver token.
pub struct Approver(pub String);

pub(super) fn bearer(parts: &Parts) -> Result<&str, Problem> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| Problem::new("unauthorized", "missing Authorization: Bearer <api key>"))?;
    let value = header
        .to_str()
        .map_err(|_| Problem::new("unauthorized", "malformed Authorization header"))?;
    // The scheme is case-insensitive (RFC 9110 §11.1): `bearer` works too.
    value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| Problem::new("unauthorized", "expected Authorization: Bearer <api key>"))
}

impl FromRequestParts<Arc<Market>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        market: &Arc<Market>,
    ) -> Result<Self, Self::Rejection> {
        let key = bearer(parts)?;
        match market.authenticate(key)? {
            Some(org) => Ok(Caller(org)),
            None => Err(Problem::new("unauthorized", "unknown API key")),
        }
    }
}

/// Middleware for the agent front doors (`/mcp`, `/a2a`): the caller's API
/// key or OAuth access token is checked here, and the calling [`Org`] is put
/// in the request's extensions for the protocol handler (with the token's
/// scopes and cap on it). Refused with 401 and a `WWW-Authenticate`
/// challenge that says where the door's OAuth metadata is; a token without
/// the `invoke` scope sending a call is refused with 403
/// `insufficient_scope`.
pub async fn bearer_only(
    axum::extract::State(market): axum::extract::State<Arc<Market>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (mut parts, body) = request.into_parts();
    let base = super::oauth::base_url(&market, &parts.headers);
    let path = parts.uri.path().to_string();
    let door = super::oauth::door_of(&path);
    let protected = super::oauth::protected_path(&path);
    let refuse = |problem: Problem, error: Option<(&str, &str)>| {
        let mut response = problem.into_response();
        response.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            super::oauth::challenge(&base, &protected, error),
        );
        response
    };
    let token = match bearer(&parts) {
        Ok(token) => token.to_string(),
        Err(problem) => return refuse(problem, None),
    };
    if !token.starts_with("mat_") {
        return match Caller::from_request_parts(&mut parts, &market).await {
            Ok(Caller(org)) => {
                parts.extensions.insert(org);
                next.run(axum::extract::Request::from_parts(parts, body))
                    .await
            }
            Err(problem) => refuse(problem, None),
        };
    }
    let accepted = super::oauth::accepted(&base, &path);
    let org = match market.authenticate_token(&token, &accepted) {
        Ok(Some(org)) => org,
        Ok(None) => {
            let message = "the access token is unknown, expired, revoked or for another resource";
            return refuse(
                Problem::new("unauthorized", message),
                Some(("invalid_token", message)),
            );
        }
        Err(error) => return Problem::from(error).into_response(),
    };
    // A token without `invoke` may read the catalog, not send calls: the
    // body says which (bounded like every body).
    let allows_invoke = org.token.as_ref().is_none_or(|t| t.allows("invoke"));
    let body = if allows_invoke {
        body
    } else {
        let limit = market.config().body_bytes_max as usize;
        let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
            return Problem::new("body_too_large", "the request body is too large").into_response();
        };
        if sends_a_call(door, &bytes) {
            let message = "this token may discover but not call: authorize again with scope invoke";
            let mut response = Problem::new("insufficient_scope", message).into_response();
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                super::oauth::challenge(&base, &protected, Some(("insufficient_scope", message))),
            );
            return response;
        }
        axum::body::Body::from(bytes)
    };
    parts.extensions.insert(org);
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
}

/// Whether a JSON-RPC body (one message or a batch) asks a door to run a
/// call: MCP `tools/call`, an A2A message sent.
fn sends_a_call(door: &str, body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    let messages = match &value {
        serde_json::Value::Array(batch) => batch.iter().collect(),
        one => vec![one],
    };
    messages.iter().any(|m| {
        let method = m.get("method").and_then(|v| v.as_str()).unwrap_or("");
        match door {
            "/a2a" => matches!(
                method,
                "SendMessage" | "SendStreamingMessage" | "message/send" | "message/stream"
            ),
            _ => method == "tools/call",
        }
    })
}

impl FromRequestParts<Arc<Market>> for Admin {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        market: &Arc<Market>,
    ) -> Result<Self, Self::Rejection> {
        if market.is_admin(bearer(parts)?) {
            Ok(Admin)
        } else {
            Err(Problem::new("forbidden", "this needs the admin token"))
        }
    }
}

impl FromRequestParts<Arc<Market>> for Approver {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        market: &Arc<Market>,
    ) -> Result<Self, Self::Rejection> {
        match market.approver(bearer(parts)?)? {
            Some(org_id) => Ok(Approver(org_id)),
            None => Err(Problem::new(
                "forbidden",
                "this needs an approver token (POST /v1/orgs/{id}/approvers)",
            )),
        }
    }
}
