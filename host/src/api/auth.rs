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
/// key is checked here, and the calling [`Org`] is put in the request's
/// extensions for the protocol handler. Refused with 401 and
/// `WWW-Authenticate: Bearer`.
pub async fn bearer_only(
    axum::extract::State(market): axum::extract::State<Arc<Market>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (mut parts, body) = request.into_parts();
    match Caller::from_request_parts(&mut parts, &market).await {
        Ok(Caller(org)) => {
            parts.extensions.insert(org);
            next.run(axum::extract::Request::from_parts(parts, body))
                .await
        }
        Err(error) => {
            let mut response = error.into_response();
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"mercato\""),
            );
            response
        }
    }
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
