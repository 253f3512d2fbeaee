//! The A2A front door's HTTP: agent cards (public) and JSON-RPC at `/a2a`
//! and `/a2a/agents/{id}` (bearer API key), answered as JSON or, for
//! `SendStreamingMessage`, as server-sent events.

use super::auth;
use crate::a2a::{A2a, Reply, wire};
use crate::identity::Org;
use crate::market::Market;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures::StreamExt;
use std::sync::Arc;
use tokio_stream::wrappers::ReceiverStream;

/// The A2A routes, over `market`.
pub fn routes(market: Arc<Market>) -> Router<Arc<Market>> {
    let a2a = Arc::new(A2a::new(market.clone()));
    let calls = Router::new()
        .route("/a2a", post(rpc))
        .route("/a2a/agents/{id}", post(rpc_for_capability))
        .route_layer(axum::middleware::from_fn_with_state(
            market.clone(),
            auth::bearer_only,
        ))
        .with_state(a2a.clone());
    let cards = Router::new()
        .route("/.well-known/agent-card.json", get(card))
        // Beside the JSON-RPC endpoint too, where clients given its URL look.
        .route("/a2a/.well-known/agent-card.json", get(card))
        .route(
            "/a2a/agents/{id}/.well-known/agent-card.json",
            get(capability_card),
        )
        .with_state(a2a);
    calls.merge(cards)
}

/// The URL clients reach us at: the configured one, or the `Host` asked.
fn base(a2a: &A2a, headers: &HeaderMap) -> String {
    if let Some(url) = a2a.public_url() {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.len() <= 255 && !h.contains(['/', ' ']))
        .unwrap_or("localhost");
    format!("http://{host}")
}

async fn card(State(a2a): State<Arc<A2a>>, headers: HeaderMap) -> Json<serde_json::Value> {
    Json(a2a.card(&base(&a2a, &headers)))
}

async fn capability_card(
    State(a2a): State<Arc<A2a>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, super::Problem> {
    a2a.capability_card(&base(&a2a, &headers), &id)
        .map(Json)
        .ok_or_else(|| {
            super::Problem::new(
                "not_found",
                format!("no capability `{}`", crate::market::echoed(&id)),
            )
        })
}

async fn rpc(
    State(a2a): State<Arc<A2a>>,
    Extension(org): Extension<Org>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(a2a, org, headers, body, None).await
}

async fn rpc_for_capability(
    State(a2a): State<Arc<A2a>>,
    Extension(org): Extension<Org>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    answer(a2a, org, headers, body, Some(id)).await
}

async fn answer(
    a2a: Arc<A2a>,
    org: Org,
    headers: HeaderMap,
    body: Bytes,
    capability: Option<String>,
) -> Response {
    let request: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(_) => {
            let error = wire::error(&serde_json::Value::Null, wire::code::PARSE, "parse error");
            return (StatusCode::OK, Json(error)).into_response();
        }
    };
    let version = headers.get("a2a-version").and_then(|v| v.to_str().ok());
    match a2a.handle(org, request, version, capability).await {
        Reply::Json(value) => Json(value).into_response(),
        Reply::Stream(events) => {
            let events = ReceiverStream::new(events).map(|value| {
                Ok::<_, std::convert::Infallible>(
                    Event::default().json_data(value).unwrap_or_default(),
                )
            });
            Sse::new(events)
                .keep_alive(KeepAlive::default())
                .into_response()
        }
    }
}
