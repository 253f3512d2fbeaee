//! The REST front door (`/v1`): the only module that names `axum`.
//!
//! Owns: routes, extractors, the JSON error shape, request limits (body size,
//! in-flight requests, timeout) as tower layers, SSE streaming, `/metrics`,
//! `/healthz` and `/openapi.json`.
//!
//! Does not know about: how anything is done. Every handler translates HTTP
//! into one [`Market`] call and its result back into HTTP.

mod a2a;
mod accounts;
mod auth;
mod body;
mod capabilities;
mod discover;
mod error;
mod idempotency;
mod listen;
mod mcp;
mod negotiations;
mod oauth;
mod openapi;
mod ops;
mod orgs;
mod pages;
mod registry;
mod tls;
mod trust;

use crate::doors::{ErrorBody, ErrorDetail, Problem};
pub use error::status_of;
pub use listen::{ConnectionLimits, serve};
pub use openapi::ApiDoc;
pub use tls::{Tls, TlsError};

use crate::market::Market;
use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

/// Multipart framing and the manifest on top of the component itself.
const UPLOAD_OVERHEAD_BYTES: u64 = 256 * 1024;

/// The REST application, separate from `main` so tests can drive it.
pub fn app(market: Arc<Market>) -> Router {
    app_until(market, CancellationToken::new())
}

/// The application with its agent front doors (`/mcp`, `/a2a`);
/// cancelling `stopping` ends their long-lived streams (a graceful stop
/// would otherwise wait for them).
pub fn app_until(market: Arc<Market>, stopping: CancellationToken) -> Router {
    let config = market.config().clone();
    let upload_limit = (config.component_bytes_max + UPLOAD_OVERHEAD_BYTES) as usize;
    let limits = ServiceBuilder::new()
        .layer(HandleErrorLayer::new(overload_or_timeout))
        .load_shed()
        .concurrency_limit(config.requests_in_flight_max)
        .timeout(Duration::from_millis(config.request_timeout_ms));
    Router::new()
        .route("/v1/orgs", post(orgs::orgs_create).get(orgs::orgs_list))
        .route("/v1/orgs/{id}/verify", post(orgs::orgs_verify))
        .route(
            "/v1/orgs/{id}/keys",
            post(orgs::keys_create).get(orgs::keys_list),
        )
        .route("/v1/orgs/{id}/keys/{key_id}", delete(orgs::keys_revoke))
        .route("/v1/admin/reattest", post(trust::admin_reattest))
        .route(
            "/.well-known/mercato-keys.json",
            get(trust::well_known_keys),
        )
        .route(
            "/v1/components",
            post(capabilities::components_create).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/v1/capabilities", get(capabilities::capabilities_list))
        .route("/v1/discover", post(discover::discover))
        .route("/v1/capabilities/{id}", get(capabilities::capabilities_get))
        .route(
            "/v1/capabilities/{id}/attestation",
            get(capabilities::capabilities_attestation),
        )
        .route(
            "/v1/capabilities/{id}/quote",
            get(capabilities::capabilities_quote),
        )
        .route(
            "/v1/capabilities/{id}/invoke",
            post(capabilities::capabilities_invoke),
        )
        .route("/v1/transactions/{id}", get(capabilities::transactions_get))
        .route(
            "/v1/transactions/{id}/dispute",
            post(accounts::disputes_create),
        )
        .route(
            "/v1/transactions/{id}/rating",
            post(accounts::ratings_create),
        )
        .route("/v1/orgs/{id}/reputation", get(accounts::orgs_reputation))
        .route(
            "/v1/transactions/{id}/dispute/decision",
            post(accounts::disputes_decide),
        )
        .route(
            "/v1/accounts/{org}/deposits",
            post(accounts::deposits_create),
        )
        .route("/v1/accounts/me", get(accounts::accounts_me))
        .route("/v1/accounts/me/events", get(accounts::events_list))
        .route(
            "/v1/accounts/me/webhook-secret",
            get(accounts::webhook_secret_get),
        )
        .route("/v1/orgs/{id}/approvers", post(accounts::approvers_create))
        .route("/v1/approvals", get(accounts::approvals_list))
        .route("/v1/approvals/{id}", post(accounts::approvals_decide))
        .route("/v1/admin/ledger", get(accounts::ledger_audit))
        .route("/v1/negotiations", post(negotiations::negotiations_create))
        .route("/v1/negotiations/{id}", get(negotiations::negotiations_get))
        .route(
            "/v1/negotiations/{id}/respond",
            post(negotiations::negotiations_respond),
        )
        .route("/v1/contracts/{id}", get(negotiations::contracts_get))
        .route("/v1/accounts/me/budget", put(accounts::budget_put))
        .route(
            "/.well-known/oauth-protected-resource",
            get(oauth::resource_root),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(oauth::resource_mcp),
        )
        .route(
            "/.well-known/oauth-protected-resource/a2a",
            get(oauth::resource_a2a),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp/agents/{agent}",
            get(oauth::resource_agent),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::server_metadata),
        )
        .route("/oauth/register", post(oauth::register))
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/revoke", post(oauth::revoke))
        .merge(mcp::routes(market.clone(), stopping))
        .merge(a2a::routes(market.clone()))
        .merge(registry::routes())
        .merge(pages::routes(market.clone()))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::serve))
        .fallback(ops::not_found)
        .layer(DefaultBodyLimit::max(config.body_bytes_max as usize))
        .layer(limits)
        .with_state(market)
}

async fn overload_or_timeout(error: tower::BoxError) -> axum::response::Response {
    if error.is::<tower::timeout::error::Elapsed>() {
        return Problem::new("request_timeout", "the request took too long").into_response();
    }
    if error.is::<tower::load_shed::error::Overloaded>() {
        return Problem::new("overloaded", "too many requests in flight; retry shortly")
            .into_response();
    }
    tracing::error!(%error, "middleware error");
    Problem::internal().into_response()
}
