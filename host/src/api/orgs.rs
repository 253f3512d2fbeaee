//! `/v1/orgs`: register an organisation (its API key is shown once).

use super::ApiError;
use super::auth::{Admin, Caller};
use crate::market::Market;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// Registration request.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    /// Display name, 1 to 100 characters.
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
}

/// Registers an organisation.
#[utoipa::path(post, path = "/v1/orgs", tag = "orgs", request_body = CreateOrg,
    responses((status = 201, body = OrgCreated), (status = 400, body = super::ErrorBody)))]
pub async fn orgs_create(
    State(market): State<Arc<Market>>,
    body: Result<Json<CreateOrg>, JsonRejection>,
) -> Result<(StatusCode, Json<OrgCreated>), ApiError> {
    let Json(body) = body?;
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
    admin: Result<Admin, ApiError>,
    caller: Result<Caller, ApiError>,
) -> Result<Json<Vec<OrgView>>, ApiError> {
    let view = |o: crate::identity::Org| OrgView {
        org_id: o.org_id,
        name: o.name,
        created_at_ms: o.created_at_ms,
    };
    if admin.is_ok() {
        return Ok(Json(market.orgs()?.into_iter().map(view).collect()));
    }
    let Caller(org) = caller?;
    Ok(Json(vec![view(org)]))
}
