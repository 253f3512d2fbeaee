//! `POST /v1/discover`: rank capabilities for a need.

use super::Problem;
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
    responses((status = 200, body = DiscoverResponse), (status = 400, body = super::ErrorBody)))]
pub async fn discover(
    State(market): State<Arc<Market>>,
    body: Result<Body<Query>, Problem>,
) -> Result<Json<DiscoverResponse>, Problem> {
    let Body(query) = body?;
    let results = market.discover(&query).await?;
    Ok(Json(DiscoverResponse {
        results,
        embedder: market.embedder_name().to_string(),
    }))
}
