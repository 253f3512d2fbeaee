//! Negotiations and contracts.

use super::Problem;
use super::auth::Caller;
use super::body::Body;
use super::idempotency;
use crate::market::{Market, Negotiation, Response as Answer};
use crate::negotiation::Proposal;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// Opening a negotiation.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Propose {
    /// The capability (`agent.capability`, `@major` or `@version`); the
    /// version it resolves to now is the one negotiated.
    pub capability_id: String,
    /// The proposed terms.
    #[serde(deserialize_with = "crate::discovery::query::object")]
    pub terms: Proposal,
}

/// A negotiation's state, and the signed contract once accepted.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct NegotiationAnswer {
    /// The negotiation.
    pub negotiation: Negotiation,
    /// The contract, signed by the marketplace key, when accepted.
    #[schema(value_type = Option<Object>)]
    pub contract: Option<serde_json::Value>,
}

fn answer(
    status: StatusCode,
    (negotiation, contract): (Negotiation, Option<serde_json::Value>),
) -> Result<(StatusCode, serde_json::Value), Problem> {
    let body = NegotiationAnswer {
        negotiation,
        contract,
    };
    let body = serde_json::to_value(body).map_err(|_| Problem::internal())?;
    Ok((status, body))
}

/// Proposes terms for a capability. The provider's policy (from its
/// manifest) answers at once: accepted (a signed contract), countered (one
/// reason per term it cannot accept, and counter-terms to accept or answer),
/// or rejected.
#[utoipa::path(post, path = "/v1/negotiations", tag = "negotiations", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "makes retries safe")),
    request_body = Propose,
    responses((status = 201, body = NegotiationAnswer), (status = 400, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody)))]
pub async fn negotiations_create(
    State(market): State<Arc<Market>>,
    Caller(org): Caller,
    headers: HeaderMap,
    body: Result<Body<Propose>, Problem>,
) -> Result<Response, Problem> {
    let Body(propose) = body?;
    let body = serde_json::to_value(&propose).map_err(|_| Problem::internal())?;
    let scope = idempotency::Scope::org(&org.org_id, "negotiate");
    Ok(idempotency::once(&market, &headers, &scope, &body, || {
        let market = market.clone();
        async move {
            let result = market
                .negotiate(&org, &propose.capability_id, propose.terms)
                .await?;
            answer(StatusCode::CREATED, result)
        }
    })
    .await)
}

/// Answers a countered negotiation: accept the counter-terms, propose new
/// ones (bounded rounds), or reject. Offers expire.
#[utoipa::path(post, path = "/v1/negotiations/{id}/respond", tag = "negotiations", security(("bearer" = [])),
    params(("id" = String, Path, description = "negotiation id")),
    request_body = Answer,
    responses((status = 200, body = NegotiationAnswer), (status = 404, body = super::ErrorBody),
              (status = 409, body = super::ErrorBody)))]
pub async fn negotiations_respond(
    State(market): State<Arc<Market>>,
    Caller(org): Caller,
    Path(id): Path<String>,
    body: Result<Body<Answer>, Problem>,
) -> Result<(StatusCode, Json<serde_json::Value>), Problem> {
    let Body(response) = body?;
    let (status, body) = answer(StatusCode::OK, market.respond(&org, &id, response).await?)?;
    Ok((status, Json(body)))
}

/// A negotiation of the caller's.
#[utoipa::path(get, path = "/v1/negotiations/{id}", tag = "negotiations", security(("bearer" = [])),
    params(("id" = String, Path, description = "negotiation id")),
    responses((status = 200, body = Negotiation), (status = 404, body = super::ErrorBody)))]
pub async fn negotiations_get(
    State(market): State<Arc<Market>>,
    Caller(org): Caller,
    Path(id): Path<String>,
) -> Result<Json<Negotiation>, Problem> {
    Ok(Json(market.negotiation(&org, &id)?))
}

/// A contract, signed by the marketplace key, for either party.
#[utoipa::path(get, path = "/v1/contracts/{id}", tag = "negotiations", security(("bearer" = [])),
    params(("id" = String, Path, description = "contract id")),
    responses((status = 200, body = Object), (status = 404, body = super::ErrorBody)))]
pub async fn contracts_get(
    State(market): State<Arc<Market>>,
    Caller(org): Caller,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    Ok(Json(market.contract(&org, &id)?))
}
