//! `/v1/orgs`: register an organisation (its API key is shown once).

use super::Problem;
use super::auth::{Admin, Caller};
use super::body::Body;
use crate::identity::{Org, OrgKey};
use crate::market::Market;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// Registration request.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    /// Display name, 1 to 100 characters, not all blank (surrounding space
    /// is dropped).
    #[schema(min_length = 1, max_length = 100, pattern = "\\S")]
    pub name: String,
}

/// A new organisation and its API key. The key is never shown again.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct OrgCreated {
    /// Organisation id.
    pub org_id: String,
    /// Display name.
    pub name: String,
    /// Bearer key for `Authorization: Bearer <api_key>`.
    pub api_key: String,
}

/// An organisation, as listed.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct OrgView {
    /// Organisation id.
    pub org_id: String,
    /// Display name.
    pub name: String,
    /// Registration time, Unix milliseconds.
    pub created_at_ms: u64,
    /// Whether an admin verified it (only verified organisations publish).
    pub verified: bool,
}

impl From<Org> for OrgView {
    fn from(o: Org) -> Self {
        OrgView {
            verified: o.verified_at_ms.is_some(),
            org_id: o.org_id,
            name: o.name,
            created_at_ms: o.created_at_ms,
        }
    }
}

/// Registers an organisation. Without the admin token this follows the
/// host's signup policy (by default a few per client address a minute).
#[utoipa::path(post, path = "/v1/orgs", tag = "orgs", request_body = CreateOrg,
    responses((status = 201, body = OrgCreated), (status = 400, body = super::ErrorBody),
              (status = 403, body = super::ErrorBody, description = "registration is operator-only here"),
              (status = 429, body = super::ErrorBody, description = "too many registrations from this address; see Retry-After")))]
pub async fn orgs_create(
    State(market): State<Arc<Market>>,
    admin: Result<Admin, Problem>,
    client: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    body: Result<Body<CreateOrg>, Problem>,
) -> Result<(StatusCode, Json<OrgCreated>), Problem> {
    if admin.is_err() {
        // Without a known address (a router driven in process) every
        // caller shares one bucket.
        let ip = client.map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.0.ip());
        market.signup_allowed(ip)?;
    }
    let Body(body) = body?;
    let new = market.create_org(&body.name).await?;
    Ok((
        StatusCode::CREATED,
        Json(OrgCreated {
            org_id: new.org.org_id,
            name: new.org.name,
            api_key: new.api_key,
        }),
    ))
}

/// Lists organisations (admin token), or the caller's own (API key).
#[utoipa::path(get, path = "/v1/orgs", tag = "orgs", security(("bearer" = [])),
    responses((status = 200, body = [OrgView]), (status = 401, body = super::ErrorBody)))]
pub async fn orgs_list(
    State(market): State<Arc<Market>>,
    admin: Result<Admin, Problem>,
    caller: Result<Caller, Problem>,
) -> Result<Json<Vec<OrgView>>, Problem> {
    let view = OrgView::from;
    if admin.is_ok() {
        return Ok(Json(market.orgs()?.into_iter().map(view).collect()));
    }
    let Caller(org) = caller?;
    Ok(Json(vec![view(org)]))
}

/// Verifies an organisation, allowing it to publish (admin token).
#[utoipa::path(post, path = "/v1/orgs/{id}/verify", tag = "orgs", security(("admin" = [])),
    params(("id" = String, Path, description = "organisation id")),
    responses((status = 200, body = OrgView), (status = 403, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody)))]
pub async fn orgs_verify(
    State(market): State<Arc<Market>>,
    _admin: Admin,
    Path(org_id): Path<String>,
) -> Result<Json<OrgView>, Problem> {
    Ok(Json(OrgView::from(market.verify_org(&org_id).await?)))
}

/// A public key to register.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddKey {
    /// Ed25519 public key, 64 hex digits (`mercato keys generate` prints it).
    pub public_key: String,
}

fn own(org: &Org, org_id: &str) -> Result<(), Problem> {
    if org.org_id == org_id {
        Ok(())
    } else {
        Err(Problem::new(
            "forbidden",
            "an organisation manages its own keys only",
        ))
    }
}

/// Registers a signing key of the caller's organisation (rotation: add the
/// new key, then revoke the old one).
#[utoipa::path(post, path = "/v1/orgs/{id}/keys", tag = "orgs", security(("bearer" = [])),
    params(("id" = String, Path, description = "organisation id (the caller's)")),
    request_body = AddKey,
    responses((status = 201, body = OrgKey), (status = 400, body = super::ErrorBody),
              (status = 403, body = super::ErrorBody), (status = 409, body = super::ErrorBody)))]
pub async fn keys_create(
    State(market): State<Arc<Market>>,
    Caller(org): Caller,
    Path(org_id): Path<String>,
    body: Result<Body<AddKey>, Problem>,
) -> Result<(StatusCode, Json<OrgKey>), Problem> {
    own(&org, &org_id)?;
    let Body(body) = body?;
    Ok((
        StatusCode::CREATED,
        Json(market.add_key(&org, &body.public_key).await?),
    ))
}

/// The caller's organisation's signing keys, revoked ones included.
#[utoipa::path(get, path = "/v1/orgs/{id}/keys", tag = "orgs", security(("bearer" = [])),
    params(("id" = String, Path, description = "organisation id (the caller's)")),
    responses((status = 200, body = [OrgKey]), (status = 403, body = super::ErrorBody)))]
pub async fn keys_list(
    State(market): State<Arc<Market>>,
    Caller(org): Caller,
    Path(org_id): Path<String>,
) -> Result<Json<Vec<OrgKey>>, Problem> {
    own(&org, &org_id)?;
    Ok(Json(market.keys(&org)?))
}

/// Revokes a signing key: uploads it signs are refused from now on.
#[utoipa::path(delete, path = "/v1/orgs/{id}/keys/{key_id}", tag = "orgs", security(("bearer" = [])),
    params(("id" = String, Path, description = "organisation id (the caller's)"),
           ("key_id" = String, Path, description = "key id, ed25519:<16 hex>")),
    responses((status = 200, body = OrgKey), (status = 403, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody)))]
pub async fn keys_revoke(
    State(market): State<Arc<Market>>,
    Caller(org): Caller,
    Path((org_id, key_id)): Path<(String, String)>,
) -> Result<Json<OrgKey>, Problem> {
    own(&org, &org_id)?;
    Ok(Json(market.revoke_key(&org, &key_id).await?))
}
