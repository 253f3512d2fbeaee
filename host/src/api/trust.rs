//! Trust routes that are not an organisation's own: the marketplace's public
//! keys and re-attestation (admin).

use super::Problem;
use super::auth::Admin;
use super::body::Body;
use crate::identity::KeySet;
use crate::market::{Market, Reattested};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// The public keys that verify this marketplace's signed documents
/// (attestation reports), offline: `mercato verify report.json --keys keys.json`.
#[utoipa::path(get, path = "/.well-known/mercato-keys.json", tag = "trust",
    responses((status = 200, body = KeySet)))]
pub async fn well_known_keys(State(market): State<Arc<Market>>) -> Json<KeySet> {
    Json(market.key_set())
}

/// Which listings to re-attest.
#[derive(Debug, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reattest {
    /// Only versions with a capability in this category (all when absent).
    #[serde(default)]
    pub category: Option<String>,
}

/// Reloads the batteries and re-attests listed versions; those that now fail
/// are delisted, their reports kept (admin token).
#[utoipa::path(post, path = "/v1/admin/reattest", tag = "trust", security(("admin" = [])),
    request_body = Reattest,
    responses((status = 200, body = Reattested), (status = 400, body = super::ErrorBody),
              (status = 403, body = super::ErrorBody)))]
pub async fn admin_reattest(
    State(market): State<Arc<Market>>,
    _admin: Admin,
    body: Result<Body<Reattest>, Problem>,
) -> Result<Json<Reattested>, Problem> {
    let Body(body) = body?;
    Ok(Json(market.reattest(body.category.as_deref()).await?))
}
