//! `POST /v1/discover`: rank capabilities for a need.

use super::Problem;
use super::auth::Caller;
use super::body::Body;
use crate::discovery::Query;
use crate::market::{DiscoveredCapability, Market};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// Ranked capabilities.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DiscoverResponse {
    /// Best first; every one passed every filter.
    pub results: Vec<DiscoveredCapability>,
    /// The embedder that ranked them.
    pub embedder: String,
}

/// Ranks capabilities for a need described in plain language, within the
/// caller's constraints (filters apply inside the search, not after it).
#[utoipa::path(post, path = "/v1/discover", tag = "discovery", request_body = Query,
    responses((status = 200, body = DiscoverResponse), (status = 400, body = super::ErrorBody),
        (status = 429, description = "the caller already has needs waiting for the embedding model (`rate_limited`, with Retry-After)", body = super::ErrorBody),
        (status = 503, description = "the embedding model is busy with other needs (`overloaded`, with Retry-After)", body = super::ErrorBody)))]
pub async fn discover(
    State(market): State<Arc<Market>>,
    caller: Result<Caller, Problem>,
    client: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    body: Result<Body<Query>, Problem>,
) -> Result<Json<DiscoverResponse>, Problem> {
    let Body(query) = body?;
    let results = market.discover(&query, &asker(caller.ok(), client)).await?;
    Ok(Json(DiscoverResponse {
        results,
        embedder: market.embedder_name().to_string(),
    }))
}

/// Who waits for the embedding model when a need must be embedded: the
/// caller's organisation when it gives a key (discovery needs none), else
/// its address (without one, a router driven in process, everyone shares a
/// turn).
pub fn asker(
    caller: Option<Caller>,
    client: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
) -> String {
    match (caller, client) {
        (Some(Caller(org)), _) => format!("org:{}", org.org_id),
        (None, Some(client)) => format!("ip:{}", client.0.0.ip()),
        (None, None) => "ip:unknown".into(),
    }
}
