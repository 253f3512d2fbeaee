//! `/mcp`: the bearer key checked, then the fast path for a stateless
//! `tools/call` ([`crate::mcp::fast`]), and rmcp's Streamable HTTP service
//! for everything else.

use super::auth;
use crate::identity::Org;
use crate::market::Market;
use crate::mcp::{Mercato, Service, fast};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Router};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

struct Door {
    server: Mercato,
    service: Service,
    allowed_hosts: Vec<String>,
    body_bytes_max: usize,
}

/// The `/mcp` route, over `market`; `stopping` ends open streams.
pub fn routes(market: Arc<Market>, stopping: CancellationToken) -> Router<Arc<Market>> {
    let config = market.config();
    let door = Arc::new(Door {
        server: Mercato::new(market.clone()),
        service: crate::mcp::service(market.clone(), stopping),
        allowed_hosts: config.allowed_hosts.clone(),
        body_bytes_max: config.body_bytes_max as usize,
    });
    Router::new()
        .route("/mcp", any(entry))
        .route_layer(axum::middleware::from_fn_with_state(
            market,
            auth::bearer_only,
        ))
        .with_state(door)
}

async fn entry(
    State(door): State<Arc<Door>>,
    Extension(org): Extension<Org>,
    request: Request,
) -> Response {
    let request = if request.method() == Method::POST
        && fast::applies(request.headers())
        && fast::host_allowed(&door.allowed_hosts, request.headers())
    {
        let (parts, body) = request.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, door.body_bytes_max).await else {
            return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
        };
        if let Some(answer) = fast::answer(&door.server, &parts.headers, &bytes, org).await {
            return ([(header::CONTENT_TYPE, "application/json")], answer).into_response();
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        request
    };
    match door.service.clone().oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}
