//! Errors over HTTP: one status per code (the only place a code becomes a
//! status), a [`Problem`] as a response (its body, and `Retry-After` when it
//! says when to retry), and axum's rejections as problems.

use crate::doors::Problem;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The one HTTP status for each code.
pub fn status_of(code: &str) -> StatusCode {
    match code {
        "invalid_request"
        | "invalid_input"
        | "invalid_manifest"
        | "invalid_component"
        | "forbidden_imports"
        | "wrong_world"
        | "invalid_description"
        | "invalid_battery" => StatusCode::BAD_REQUEST,
        "unauthorized" | "signature_missing" | "signature_malformed" | "signature_invalid" => {
            StatusCode::UNAUTHORIZED
        }
        "price_too_low" | "fuel_exhausted" | "insufficient_funds" | "budget_exceeded"
        | "budget_exhausted" | "budget_paused" | "token_cap_exceeded" | "approval_required" => {
            StatusCode::PAYMENT_REQUIRED
        }
        "forbidden"
        | "not_owner"
        | "org_not_verified"
        | "signing_key_unknown"
        | "signing_key_revoked" => StatusCode::FORBIDDEN,
        "not_found" => StatusCode::NOT_FOUND,
        "rating_not_allowed" | "signup_closed" | "insufficient_scope" => StatusCode::FORBIDDEN,
        "version_exists"
        | "version_not_newer"
        | "incompatible_version"
        | "too_many_keys"
        | "not_in_escrow"
        | "dispute_exists"
        | "no_pending_dispute"
        | "negotiation_closed"
        | "contract_invalid"
        | "already_rated"
        | "approval_not_granted"
        | "approval_mismatch"
        | "idempotency_in_progress"
        | "cancelled"
        | "transfer_exists" => StatusCode::CONFLICT,
        "rate_limited" => StatusCode::TOO_MANY_REQUESTS,
        "component_too_large" | "body_too_large" => StatusCode::PAYLOAD_TOO_LARGE,
        "unsupported_media_type" => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid_output"
        | "capability_failed"
        | "attestation_failed"
        | "idempotency_conflict"
        | "component_too_complex" => StatusCode::UNPROCESSABLE_ENTITY,
        "guest_trapped" | "memory_limit" | "output_too_large" => StatusCode::BAD_GATEWAY,
        "overloaded" | "unavailable" | "unconfirmed" => StatusCode::SERVICE_UNAVAILABLE,
        "deadline_exceeded" | "request_timeout" => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let retry_after = self
            .details()
            .and_then(|d| d.get("retry_after_ms"))
            .and_then(|v| v.as_u64())
            .map(|ms| ms.div_ceil(1_000).to_string());
        let mut response = (status_of(self.code()), axum::Json(self.body())).into_response();
        if let Some(seconds) = retry_after.and_then(|s| s.parse().ok()) {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds);
        }
        response
    }
}

impl From<axum::extract::rejection::JsonRejection> for Problem {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as R;
        match &rejection {
            R::MissingJsonContentType(_) => {
                Problem::new("unsupported_media_type", rejection.body_text())
            }
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Problem::new("body_too_large", "the request body is over the limit")
            }
            R::JsonSyntaxError(_) => Problem::new(
                "invalid_request",
                format!(
                    "the body is not valid JSON: {}",
                    plain(&rejection.body_text())
                ),
            ),
            _ => Problem::new(
                "invalid_request",
                format!(
                    "the body does not fit this request: {}",
                    plain(&rejection.body_text())
                ),
            ),
        }
    }
}

/// A body rejection in a client's words: without the extractor's preamble
/// ("Failed to deserialize the JSON body into the target type: ") and the
/// parser's position ("at line 1 column 164").
fn plain(text: &str) -> String {
    let text = match text.split_once(": ") {
        Some((preamble, rest)) if preamble.starts_with("Failed to") => rest,
        _ => text,
    };
    let text = match text.rfind(" at line ") {
        Some(at) if text[at..].contains(" column ") => &text[..at],
        _ => text,
    };
    text.to_string()
}

impl From<axum::extract::multipart::MultipartError> for Problem {
    fn from(error: axum::extract::multipart::MultipartError) -> Self {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return Problem::new("component_too_large", "the upload is over the size limit");
        }
        Problem::new("invalid_request", error.body_text())
    }
}

impl From<axum::extract::multipart::MultipartRejection> for Problem {
    fn from(rejection: axum::extract::multipart::MultipartRejection) -> Self {
        Problem::new("invalid_request", rejection.body_text())
    }
}

/// The status of an OAuth error (RFC 6749 §5.2: 400, or 401 for a client
/// that failed to authenticate).
pub fn oauth_status(code: &str) -> StatusCode {
    match code {
        "invalid_client" => StatusCode::UNAUTHORIZED,
        "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
        "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::BAD_REQUEST,
    }
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn rejections_lose_the_preamble_and_the_position() {
        assert_eq!(
            plain(
                "Failed to deserialize the JSON body into the target type: latency_ms_max: \
                 invalid value: integer `-1`, expected u64 at line 1 column 164"
            ),
            "latency_ms_max: invalid value: integer `-1`, expected u64"
        );
        assert_eq!(
            plain("Failed to parse the request body as JSON: expected value at line 1 column 2"),
            "expected value"
        );
        assert_eq!(plain("unknown field `x`"), "unknown field `x`");
    }
}
