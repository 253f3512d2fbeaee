//! Operations: health, metrics, the OpenAPI document, unknown routes.

use super::Problem;
use crate::market::Market;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;

/// Health.
#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the host answers.
    pub status: &'static str,
    /// Capabilities listed.
    pub capabilities: usize,
    /// The embedder discovery runs (`hash-384`, or `model:<dir>@<weights' SHA-256, 12 hex>`).
    pub embedder: String,
    /// Present when discovery runs on the built-in embedder, the fallback:
    /// why no sentence-embedding model runs, and how to give it one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedder_fallback: Option<String>,
    /// How the discovery index was made ready at start: `reloaded: …` from
    /// its dump, or `rebuilt: <why>`.
    pub index: String,
}

/// Liveness and a count of what is listed.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
pub async fn healthz(State(market): State<Arc<Market>>) -> Json<Health> {
    Json(Health {
        status: "ok",
        capabilities: market.capability_count(),
        embedder: market.embedder_name().to_string(),
        embedder_fallback: market.embedder_fallback().map(str::to_string),
        index: market.index_origin(),
    })
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
pub async fn metrics(State(market): State<Arc<Market>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        market.metrics().render(),
    )
}

pub async fn not_found() -> Problem {
    Problem::new("not_found", "no such route; GET /openapi.json lists them")
}
