//! `Idempotency-Key`: the same key with the same body returns the first
//! response and never acts twice; the same key with another body is 422.

use super::ApiError;
use crate::market::{Claim, KEY_CHARS_MAX, Market, Remembered, now_ms};
use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// Codes whose answer may change on retry: never remembered.
const TRANSIENT: &[&str] = &[
    "overloaded",
    "rate_limited",
    "request_timeout",
    "internal",
    "idempotency_in_progress",
];

/// Runs `action` at most once per key: with an `Idempotency-Key` header it is
/// claimed for `scope` (the caller and the route), and the first answer is
/// stored and replayed.
pub async fn once<F, Fut>(
    market: &Market,
    headers: &HeaderMap,
    scope: &str,
    body: &serde_json::Value,
    action: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(StatusCode, serde_json::Value), ApiError>>,
{
    let Some(key) = headers.get("idempotency-key") else {
        return answer(action().await);
    };
    let Some(key) = key
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.chars().count() <= KEY_CHARS_MAX)
    else {
        return ApiError::new(
            "invalid_request",
            format!("Idempotency-Key must be 1 to {KEY_CHARS_MAX} visible characters"),
        )
        .into_response();
    };
    let scoped = format!("{scope}:{key}");
    let body_sha256 = hex::encode(Sha256::digest(body.to_string().as_bytes()));
    match market.claim(&scoped, &body_sha256) {
        Err(e) => return ApiError::from(e).into_response(),
        Ok(Claim::Replay(seen)) => {
            let status = StatusCode::from_u16(seen.status).unwrap_or(StatusCode::OK);
            let mut response = (status, Json(seen.body)).into_response();
            response.headers_mut().insert(
                "idempotent-replay",
                axum::http::HeaderValue::from_static("true"),
            );
            return response;
        }
        Ok(Claim::Conflict) => {
            return ApiError::new(
                "idempotency_conflict",
                "this Idempotency-Key was used with a different body",
            )
            .into_response();
        }
        Ok(Claim::InProgress) => {
            return ApiError::new(
                "idempotency_in_progress",
                "a request with this Idempotency-Key is being handled; retry shortly",
            )
            .into_response();
        }
        Ok(Claim::Fresh) => {}
    }
    let result = action().await;
    let remembered = match &result {
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
    if let Err(e) = market.remember(&scoped, remembered).await {
        return ApiError::from(e).into_response();
    }
    answer(result)
}

fn answer(result: Result<(StatusCode, serde_json::Value), ApiError>) -> Response {
    match result {
        Ok((status, body)) => (status, Json(body)).into_response(),
        Err(e) => e.into_response(),
    }
}
