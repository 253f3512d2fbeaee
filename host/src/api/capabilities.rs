//! Components, capabilities, invocations and transactions.

use super::Problem;
use super::auth::Caller;
use super::body::Body;
use super::idempotency;
use crate::market::{
    CapabilityView, InvocationRecord, InvokeRequest, InvokeResult, Market, Published, Quote, Upload,
};
use axum::Json;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::ToSchema;

/// The multipart upload, as documented for OpenAPI.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "describes the multipart body for /openapi.json only"
)]
pub struct ComponentUpload {
    /// The component (`application/wasm`).
    #[schema(format = Binary, value_type = String)]
    component: Vec<u8>,
    /// The TOML manifest with the terms of each capability.
    manifest: String,
    /// JSON `{"key_id", "signature"}`: an ed25519 signature, by one of the
    /// organisation's keys, of `mercato-upload-v1\ncomponent-sha256:<hex>\nmanifest-sha256:<hex>\n`.
    signature: String,
}

/// Publishes a component with its manifest.
#[utoipa::path(post, path = "/v1/components", tag = "components", security(("bearer" = [])),
    request_body(content = ComponentUpload, content_type = "multipart/form-data"),
    responses((status = 201, body = Published, description = "a new version is listed"),
              (status = 200, body = Published, description = "this exact version was already listed"),
              (status = 400, body = super::ErrorBody), (status = 401, body = super::ErrorBody),
              (status = 403, body = super::ErrorBody), (status = 409, body = super::ErrorBody),
              (status = 413, body = super::ErrorBody),
              (status = 422, body = super::ErrorBody, description = "attestation failed; details hold the signed report")))]
pub async fn components_create(
    State(market): State<Arc<Market>>,
    Caller(org): Caller,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<(StatusCode, Json<Published>), Problem> {
    let mut multipart = multipart?;
    let (mut component, mut manifest, mut signature) = (None, None, None);
    while let Some(field) = multipart.next_field().await? {
        match field.name() {
            Some("component") => component = Some(field.bytes().await?.to_vec()),
            Some("manifest") => manifest = Some(field.text().await?),
            Some("signature") => signature = Some(field.text().await?),
            other => {
                let name = other.unwrap_or("").chars().take(64).collect::<String>();
                return Err(Problem::new(
                    "invalid_request",
                    format!("unexpected multipart field `{name}`"),
                ));
            }
        }
    }
    let component = component
        .ok_or_else(|| Problem::new("invalid_request", "missing multipart field `component`"))?;
    let manifest = manifest
        .ok_or_else(|| Problem::new("invalid_manifest", "missing multipart field `manifest`"))?;
    let upload = Upload {
        component,
        manifest,
        signature,
    };
    let published = market.publish(&org, upload).await?;
    let status = if published.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(published)))
}

/// A page of the catalog.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Capabilities to skip.
    #[serde(default)]
    pub offset: Option<usize>,
    /// Capabilities wanted (every one after `offset` when absent).
    #[param(minimum = 1)]
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Lists every capability of the latest version of every agent, or a page
/// of them (`offset`, `limit`), in catalog order.
#[utoipa::path(get, path = "/v1/capabilities", tag = "capabilities", params(Page),
    responses((status = 200, body = [CapabilityView]), (status = 400, body = super::ErrorBody)))]
pub async fn capabilities_list(
    State(market): State<Arc<Market>>,
    page: Result<axum::extract::Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<CapabilityView>>, Problem> {
    let axum::extract::Query(page) =
        page.map_err(|e| Problem::new("invalid_request", e.body_text()))?;
    if page.limit == Some(0) {
        return Err(Problem::new("invalid_request", "limit must be at least 1"));
    }
    Ok(Json(match (page.offset, page.limit) {
        (None, None) => market.capabilities(),
        (offset, limit) => {
            market.capabilities_page(offset.unwrap_or(0), limit.unwrap_or(usize::MAX))
        }
    }))
}

/// One capability, by `agent.capability` (latest) or `agent.capability@version`.
#[utoipa::path(get, path = "/v1/capabilities/{id}", tag = "capabilities",
    params(("id" = String, Path, description = "agent.capability or agent.capability@version")),
    responses((status = 200, body = CapabilityView), (status = 404, body = super::ErrorBody)))]
pub async fn capabilities_get(
    State(market): State<Arc<Market>>,
    Path(id): Path<String>,
) -> Result<Json<CapabilityView>, Problem> {
    Ok(Json(market.capability(&id)?))
}

/// The signed attestation report of the version an id names (a pinned id
/// also finds the report of a refused or delisted version).
#[utoipa::path(get, path = "/v1/capabilities/{id}/attestation", tag = "capabilities",
    params(("id" = String, Path, description = "agent.capability or agent.capability@version")),
    responses((status = 200, body = Object, description = "the report, signed by the marketplace key"),
              (status = 404, body = super::ErrorBody)))]
pub async fn capabilities_attestation(
    State(market): State<Arc<Market>>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    Ok(Json(market.attestation(&id)?))
}

/// Expected cost of a call, from observed fuel.
#[utoipa::path(get, path = "/v1/capabilities/{id}/quote", tag = "capabilities",
    params(("id" = String, Path, description = "agent.capability or agent.capability@version")),
    responses((status = 200, body = Quote), (status = 404, body = super::ErrorBody)))]
pub async fn capabilities_quote(
    State(market): State<Arc<Market>>,
    Path(id): Path<String>,
) -> Result<Json<Quote>, Problem> {
    Ok(Json(market.quote(&id)?))
}

/// An invocation request.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvokeBody {
    /// Input matching the capability's input schema.
    #[schema(value_type = Object)]
    pub input: serde_json::Value,
    /// The most this call may cost; it buys exactly the fuel it covers.
    /// Without it the call gets the host's fuel cap.
    #[serde(default)]
    pub max_price_micros: Option<u64>,
    /// A contract from a negotiation: its version, price cap, rate limit and
    /// latency SLA apply.
    #[serde(default)]
    pub contract_id: Option<String>,
    /// An approved approval, for a call above the approval threshold.
    #[serde(default)]
    pub approval_id: Option<String>,
}

/// Invokes a capability. With `Accept: text/event-stream` the response is a
/// stream of `chunk` events (from the guest's `emit`), then one `result` or
/// `error` event.
#[utoipa::path(post, path = "/v1/capabilities/{id}/invoke", tag = "capabilities", security(("bearer" = [])),
    params(("id" = String, Path, description = "agent.capability or agent.capability@version"),
           ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first answer and is never charged twice")),
    request_body = InvokeBody,
    responses((status = 200, body = InvokeResult), (status = 400, body = super::ErrorBody),
              (status = 401, body = super::ErrorBody), (status = 402, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody), (status = 422, body = super::ErrorBody),
              (status = 429, body = super::ErrorBody, description = "rate limit; see Retry-After"),
              (status = 502, body = super::ErrorBody), (status = 503, body = super::ErrorBody),
              (status = 504, body = super::ErrorBody)))]
pub async fn capabilities_invoke(
    State(market): State<Arc<Market>>,
    Caller(org): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Body<InvokeBody>, Problem>,
) -> Result<Response, Problem> {
    let Body(body) = body?;
    let request = InvokeRequest {
        capability_id: id,
        input: body.input,
        max_price_micros: body.max_price_micros,
        contract_id: body.contract_id,
        approval_id: body.approval_id,
        cancel: None,
    };
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if !wants_stream && !headers.contains_key("idempotency-key") {
        // Nothing to remember: the answer is written straight from the result.
        let result = market.invoke(&org, request, None).await?;
        let body = serde_json::to_vec(&result).map_err(|_| Problem::internal())?;
        return Ok((
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response());
    }
    // Streamed or not, a key names the same call.
    let (scope, keyed_body) = idempotency::invoke_scope(&org, &request);
    if !wants_stream {
        return Ok(
            idempotency::once(&market, &headers, &scope, &keyed_body, || {
                let market = market.clone();
                async move {
                    let result = market.invoke(&org, request, None).await?;
                    let body = serde_json::to_value(&result).map_err(|_| Problem::internal())?;
                    Ok((StatusCode::OK, body))
                }
            })
            .await,
        );
    }
    let keyed = idempotency::claim(&market, &headers, &scope, &keyed_body);
    let claimed = match keyed {
        idempotency::Keyed::Refused(response) => return Ok(response),
        idempotency::Keyed::Replay(seen) => return Ok(stream_replay(seen)),
        idempotency::Keyed::Fresh {
            claimed,
            body_sha256,
        } => Some((claimed, body_sha256)),
        idempotency::Keyed::Unkeyed => None,
    };
    // Validate the id before committing to a 200 stream.
    market.capability(&request.capability_id)?;
    // Without a key, a client that leaves cancels its call (the hold is
    // voided, nothing is charged); with one the call runs to its end and
    // its answer is remembered for the retry.
    let cancel = tokio_util::sync::CancellationToken::new();
    let leaving = claimed.is_none().then(|| cancel.clone().drop_guard());
    let request = InvokeRequest {
        cancel: Some(cancel),
        ..request
    };
    let (chunks_tx, chunks_rx) = crate::market::chunk_channel();
    let call = tokio::spawn(async move {
        let result = market.invoke(&org, request, Some(chunks_tx)).await;
        let answer = result.map_err(Problem::from).and_then(|result| {
            serde_json::to_value(&result)
                .map(|body| (StatusCode::OK, body))
                .map_err(|_| Problem::internal())
        });
        match claimed {
            Some((claimed, body_sha256)) => {
                idempotency::remember(&market, claimed, body_sha256, answer).await
            }
            None => answer,
        }
    });
    let chunks =
        ReceiverStream::new(chunks_rx).map(|chunk| Ok(Event::default().event("chunk").data(chunk)));
    let last = futures::stream::once(async move {
        let event = match call.await {
            Ok(Ok((_, body))) => Event::default().event("result").json_data(body),
            Ok(Err(error)) => Event::default().event("error").json_data(error.body()),
            Err(_) => Event::default()
                .event("error")
                .json_data(Problem::internal().body()),
        };
        // The answer was sent: nothing left to cancel.
        drop(leaving.map(tokio_util::sync::DropGuard::disarm));
        Ok::<_, std::convert::Infallible>(event.unwrap_or_default())
    });
    Ok(Sse::new(chunks.chain(last))
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// A remembered answer sent again as a stream: its one `result` (or
/// `error`) event; the chunks of the first run are not kept.
fn stream_replay(seen: crate::market::Remembered) -> Response {
    let name = if seen.error_code().is_none() {
        "result"
    } else {
        "error"
    };
    let event = Event::default()
        .event(name)
        .json_data(seen.body)
        .unwrap_or_default();
    let events = futures::stream::once(async move { Ok::<_, std::convert::Infallible>(event) });
    let mut response = Sse::new(events).into_response();
    response.headers_mut().insert(
        "idempotent-replay",
        axum::http::HeaderValue::from_static("true"),
    );
    response
}

/// The record of one call; visible to its consumer and its provider.
#[utoipa::path(get, path = "/v1/transactions/{id}", tag = "transactions", security(("bearer" = [])),
    params(("id" = String, Path, description = "transaction id")),
    responses((status = 200, body = InvocationRecord), (status = 404, body = super::ErrorBody)))]
pub async fn transactions_get(
    State(market): State<Arc<Market>>,
    Caller(org): Caller,
    Path(id): Path<String>,
) -> Result<Json<InvocationRecord>, Problem> {
    let record = market
        .invocation(&id)?
        .filter(|r| r.consumer_org_id == org.org_id || r.provider_org_id == org.org_id)
        .ok_or_else(|| {
            Problem::new(
                "not_found",
                format!("no transaction `{}` of yours", crate::market::echoed(&id)),
            )
        })?;
    Ok(Json(record))
}
