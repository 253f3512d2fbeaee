//! `Idempotency-Key`: the same key with the same body returns the first
//! response and never acts twice; the same key with another body is 422.
//!
//! One rule for every keyed request, JSON or streamed: once claimed, the
//! request runs to its end on a task of its own, whether or not its client
//! stays to hear the answer, and the answer is remembered before the claim
//! is released. A retry meanwhile is 409 `idempotency_in_progress`; a retry
//! after it gets the answer (`Idempotent-Replay: true`), never a second run.
//! A request without a key is cancelled when its client leaves.

use super::ApiError;
use crate::identity::Org;
use crate::market::{Claim, Claimed, InvokeRequest, KEY_CHARS_MAX, Market, Remembered, now_ms};
use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Codes whose answer may change on retry: never remembered.
const TRANSIENT: &[&str] = &[
    "overloaded",
    "rate_limited",
    "request_timeout",
    "internal",
    "idempotency_in_progress",
    "cancelled",
];

/// A handler's answer: a status and a JSON body, or an error.
pub type Answer = Result<(StatusCode, serde_json::Value), ApiError>;

/// What a request's `Idempotency-Key` (if any) says to do.
pub enum Keyed {
    /// No key: act, remember nothing.
    Unkeyed,
    /// A fresh key, claimed: act, then [`remember`].
    Fresh {
        /// The claim, released by [`remember`] (or when dropped).
        claimed: Claimed,
        /// What the body hashes to.
        body_sha256: String,
    },
    /// Answered before: send this again.
    Replay(Remembered),
    /// Refused: a bad key, a key used with another body, a key in progress.
    Refused(Response),
}

/// Whose keys, for what: keys live under `name`, and an organisation's
/// fresh keys count towards what it may store while it is neither verified
/// nor funded (the operator's do not).
pub struct Scope {
    name: String,
    org_id: Option<String>,
}

impl Scope {
    /// `org_id`'s keys for `what` (a route and its target).
    pub fn org(org_id: &str, what: &str) -> Self {
        Scope {
            name: format!("{org_id}:{what}"),
            org_id: Some(org_id.to_string()),
        }
    }

    /// The operator's keys for `what`.
    pub fn operator(what: &str) -> Self {
        Scope {
            name: format!("admin:{what}"),
            org_id: None,
        }
    }
}

/// Claims the request's key, if it has one, in `scope`.
pub fn claim(
    market: &Market,
    headers: &HeaderMap,
    scope: &Scope,
    body: &serde_json::Value,
) -> Keyed {
    let Some(key) = headers.get("idempotency-key") else {
        return Keyed::Unkeyed;
    };
    match claim_key(market, key.to_str().unwrap_or_default(), scope, body) {
        Ok(keyed) => keyed,
        Err(e) => Keyed::Refused(e.into_response()),
    }
}

/// Claims `key` for `scope`: [`Keyed::Fresh`] or [`Keyed::Replay`], or the
/// error that refuses it (a bad key, a key used with another body, a key in
/// progress: retry after a second).
fn claim_key(
    market: &Market,
    key: &str,
    scope: &Scope,
    body: &serde_json::Value,
) -> Result<Keyed, ApiError> {
    if key.is_empty() || key.chars().count() > KEY_CHARS_MAX || key.chars().any(char::is_control) {
        return Err(ApiError::new(
            "invalid_request",
            format!("an idempotency key must be 1 to {KEY_CHARS_MAX} visible characters"),
        ));
    }
    let scoped = format!("{}:{key}", scope.name);
    let body_sha256 = hex::encode(Sha256::digest(body.to_string().as_bytes()));
    match market.claim(&scoped, &body_sha256)? {
        Claim::Replay(seen) => Ok(Keyed::Replay(seen)),
        Claim::Conflict => Err(ApiError::new(
            "idempotency_conflict",
            "this idempotency key was used with a different request",
        )),
        Claim::InProgress => Err(ApiError::new(
            "idempotency_in_progress",
            "a request with this idempotency key is being handled; retry shortly",
        )
        .with_details(serde_json::json!({ "retry_after_ms": 1_000 }))),
        Claim::Fresh(claimed) => {
            // A fresh key is stored for 48 h: counted for an organisation
            // that is neither verified nor funded (refused, the claim goes).
            if let Some(org_id) = &scope.org_id {
                market.creation_allowed(org_id)?;
            }
            Ok(Keyed::Fresh {
                claimed,
                body_sha256,
            })
        }
    }
}

/// The key space and body of an invoke: the same call through REST (with
/// `Idempotency-Key`), MCP (`_meta` `mercato/idempotency_key`) or A2A (the
/// message's `messageId`) under the same key is the same call.
pub fn invoke_scope(org: &Org, request: &InvokeRequest) -> (Scope, serde_json::Value) {
    let scope = Scope::org(&org.org_id, &format!("invoke:{}", request.capability_id));
    let body = serde_json::json!({
        "input": request.input,
        "max_price_micros": request.max_price_micros,
        "contract_id": request.contract_id,
        "approval_id": request.approval_id,
    });
    (scope, body)
}

/// What a keyed call through an agent door came to.
pub enum Once {
    /// It ran now: its answer (remembered, unless transient).
    Ran(Answer),
    /// It ran before: the remembered answer.
    Replayed(Remembered),
}

/// Invokes at most once per `key` for an agent door (MCP, A2A), by the
/// module's rule: a fresh key runs to its end on a task of its own (the
/// request's cancellation still cancels it; a cancelled call is not
/// remembered) and its answer is remembered as REST remembers it.
pub async fn invoke_once(
    market: &Arc<Market>,
    org: &Org,
    request: InvokeRequest,
    key: &str,
    emitter: Option<tokio::sync::mpsc::Sender<String>>,
) -> Result<Once, ApiError> {
    let (scope, body) = invoke_scope(org, &request);
    let (claimed, body_sha256) = match claim_key(market, key, &scope, &body)? {
        Keyed::Replay(seen) => return Ok(Once::Replayed(seen)),
        Keyed::Fresh {
            claimed,
            body_sha256,
        } => (claimed, body_sha256),
        Keyed::Unkeyed | Keyed::Refused(_) => {
            return Err(ApiError::new("internal", "internal error"));
        }
    };
    let market = market.clone();
    let org = org.clone();
    let task = tokio::spawn(async move {
        let answer = market
            .invoke(&org, request, emitter)
            .await
            .map_err(ApiError::from)
            .and_then(|result| {
                serde_json::to_value(&result)
                    .map(|body| (StatusCode::OK, body))
                    .map_err(|_| ApiError::new("internal", "internal error"))
            });
        remember(&market, claimed, body_sha256, answer).await
    });
    match task.await {
        Ok(answer) => Ok(Once::Ran(answer)),
        Err(_) => Err(ApiError::new("internal", "internal error")),
    }
}

/// Remembers `answer` for a claimed key (transient failures are not kept:
/// the claim is only released) and returns it.
pub async fn remember(
    market: &Market,
    claimed: Claimed,
    body_sha256: String,
    answer: Answer,
) -> Answer {
    let remembered = match &answer {
        Ok((status, body)) => Some((*status, body.clone())),
        Err(e) if !TRANSIENT.contains(&e.code()) => Some((
            super::status_of(e.code()),
            serde_json::to_value(e.body()).unwrap_or_default(),
        )),
        Err(_) => None,
    }
    .map(|(status, mut body)| {
        // Under a contract with retention `none` the output never reaches
        // the disk: a replay says it was withheld.
        if body["retention"] == "none"
            && let Some(object) = body.as_object_mut()
        {
            object.insert("output".into(), serde_json::Value::Null);
            object.insert("output_withheld".into(), true.into());
        }
        Remembered {
            body_sha256,
            status: status.as_u16(),
            body,
            at_ms: now_ms(),
        }
    });
    market.remember(claimed, remembered).await?;
    answer
}

/// Runs `action` at most once per key (see the module's rule) and answers
/// with JSON.
pub async fn once<Fut>(
    market: &Arc<Market>,
    headers: &HeaderMap,
    scope: &Scope,
    body: &serde_json::Value,
    action: impl FnOnce() -> Fut,
) -> Response
where
    Fut: Future<Output = Answer> + Send + 'static,
{
    match claim(market, headers, scope, body) {
        Keyed::Unkeyed => answer(action().await),
        Keyed::Replay(seen) => replay(seen),
        Keyed::Refused(response) => response,
        Keyed::Fresh {
            claimed,
            body_sha256,
        } => {
            let action = action();
            let market = market.clone();
            // Its own task: a client that leaves does not stop it half-way.
            let task = tokio::spawn(async move {
                let answer = action.await;
                remember(&market, claimed, body_sha256, answer).await
            });
            match task.await {
                Ok(result) => answer(result),
                Err(_) => ApiError::new("internal", "internal error").into_response(),
            }
        }
    }
}

/// The stored answer again, marked as a replay.
pub fn replay(seen: Remembered) -> Response {
    let status = StatusCode::from_u16(seen.status).unwrap_or(StatusCode::OK);
    let mut response = (status, Json(seen.body)).into_response();
    response
        .headers_mut()
        .insert("idempotent-replay", HeaderValue::from_static("true"));
    response
}

fn answer(result: Answer) -> Response {
    match result {
        Ok((status, body)) => (status, Json(body)).into_response(),
        Err(e) => e.into_response(),
    }
}
