//! Bearer authentication: `Authorization: Bearer <api key>`.

use super::ApiError;
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

fn bearer(parts: &Parts) -> Result<&str, ApiError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::new("unauthorized", "missing Authorization: Bearer <api key>"))?;
    let value = header
        .to_str()
        .map_err(|_| ApiError::new("unauthorized", "malformed Authorization header"))?;
    value
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::new("unauthorized", "expected Authorization: Bearer <api key>"))
}

impl FromRequestParts<Arc<Market>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        market: &Arc<Market>,
    ) -> Result<Self, Self::Rejection> {
        let key = bearer(parts)?;
        match market.authenticate(key)? {
            Some(org) => Ok(Caller(org)),
            None => Err(ApiError::new("unauthorized", "unknown API key")),
        }
    }
}

impl FromRequestParts<Arc<Market>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        market: &Arc<Market>,
    ) -> Result<Self, Self::Rejection> {
        if market.is_admin(bearer(parts)?) {
            Ok(Admin)
        } else {
            Err(ApiError::new("forbidden", "this needs the admin token"))
        }
    }
}

impl FromRequestParts<Arc<Market>> for Approver {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        market: &Arc<Market>,
    ) -> Result<Self, Self::Rejection> {
        match market.approver(bearer(parts)?)? {
            Some(org_id) => Ok(Approver(org_id)),
            None => Err(ApiError::new(
                "forbidden",
                "this needs an approver token (POST /v1/orgs/{id}/approvers)",
            )),
        }
    }
}
