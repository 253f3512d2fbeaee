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
    /// The store's engine: `sled` (embedded) or `postgres`.
    pub store: &'static str,
    /// Hosts sharing the store, this one included (seen in the last 5 s; 1
    /// on the embedded store). Rate limits are split among them.
    pub replicas: u32,
}

/// Whether this host can serve requests that need its store.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// True when the store answers and (replicas on a shared store) the
    /// catalog follows the others' changes.
    pub ready: bool,
    /// The store's engine: `sled` (embedded) or `postgres`.
    pub store: &'static str,
    /// Why the host is not ready, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
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
        store: market.store_engine(),
        replicas: market.replicas(),
    })
}

/// Readiness (for a load balancer): 200 when the store answers and, on a
/// shared store, the catalog has followed the other replicas' changes in the
/// last 5 s; else 503 with `Retry-After`.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses(
    (status = 200, body = Ready),
    (status = 503, body = Ready, description = "the database is unreachable, or the catalog is behind the other replicas; see Retry-After"),
))]
pub async fn readyz(State(market): State<Arc<Market>>) -> axum::response::Response {
    let store = market.store_engine();
    let checked = {
        let market = market.clone();
        tokio::task::spawn_blocking(move || market.store_reachable())
            .await
            .unwrap_or_else(|_| Err("the check did not finish".to_string()))
    };
    match checked {
        Ok(()) => Json(Ready {
            ready: true,
            store,
            reason: None,
        })
        .into_response(),
        Err(reason) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            Json(Ready {
                ready: false,
                store,
                reason: Some(reason),
            }),
        )
            .into_response(),
    }
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
