//! `Idempotency-Key` on REST: the header read, the rule of
//! [`doors::once`](crate::doors::once) applied, and a replay answered with
//! its first status and `Idempotent-Replay: true`. A request without a key
//! is cancelled when its client leaves.

use super::{Problem, status_of};
use crate::doors::once;
pub use crate::doors::once::Scope;
use crate::market::{Claimed, Market, Remembered};
use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

pub use crate::doors::once::invoke_scope;

/// A handler's answer: a status and a JSON body, or an error.
pub type Answer = Result<(StatusCode, serde_json::Value), Problem>;

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
    match once::claim(market, key.to_str().unwrap_or_default(), scope, body) {
        Ok(once::Keyed::Fresh {
            claimed,
            body_sha256,
        }) => Keyed::Fresh {
            claimed,
            body_sha256,
        },
        Ok(once::Keyed::Replay(seen)) => Keyed::Replay(seen),
        Err(problem) => Keyed::Refused(problem.into_response()),
    }
}

/// Remembers `answer` for a claimed key (see [`once::remember`]) and
/// returns it.
pub async fn remember(
    market: &Market,
    claimed: Claimed,
    body_sha256: String,
    answer: Answer,
) -> Answer {
    let answer = answer.map(|(status, body)| (status.as_u16(), body));
    once::remember(market, claimed, body_sha256, answer)
        .await
        .map(|(status, body)| (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body))
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
                Err(_) => Problem::internal().into_response(),
            }
        }
    }
}

/// The HTTP status a remembered answer is sent again with.
pub fn replay_status(seen: &Remembered) -> StatusCode {
    match seen.error_code() {
        Some(code) => status_of(code),
        None => seen
            .status
            .and_then(|status| StatusCode::from_u16(status).ok())
            .unwrap_or(StatusCode::OK),
    }
}

/// The stored answer again, marked as a replay.
pub fn replay(seen: Remembered) -> Response {
    let status = replay_status(&seen);
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
