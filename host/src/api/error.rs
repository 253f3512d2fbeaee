//! The one JSON error shape: `{"error": {"code", "message", "details"?}}`,
//! one HTTP status per code. Server faults never leak internals.

use crate::market;
use crate::sandbox::Failure;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

/// An error as clients see it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Option<serde_json::Value>,
}

/// The error body.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable code (for example `fuel_exhausted`).
    pub code: String,
    /// For humans.
    pub message: String,
    /// Structured context (violations, limits, transaction id).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

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
        | "budget_exhausted" | "approval_required" => StatusCode::PAYMENT_REQUIRED,
        "forbidden"
        | "not_owner"
        | "org_not_verified"
        | "signing_key_unknown"
        | "signing_key_revoked" => StatusCode::FORBIDDEN,
        "not_found" => StatusCode::NOT_FOUND,
        "rating_not_allowed" | "signup_closed" => StatusCode::FORBIDDEN,
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
        "overloaded" => StatusCode::SERVICE_UNAVAILABLE,
        "deadline_exceeded" | "request_timeout" => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    /// An error with a code from the table in [`status_of`].
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status: status_of(code),
            code,
            message: message.into(),
            details: None,
        }
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Its details, if any.
    pub fn details(&self) -> Option<&serde_json::Value> {
        self.details.as_ref()
    }

    /// The JSON body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.into(),
                message: self.message.clone(),
                details: self.details.clone(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self
            .details
            .as_ref()
            .and_then(|d| d.get("retry_after_ms"))
            .and_then(|v| v.as_u64())
            .map(|ms| ms.div_ceil(1_000).to_string());
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(seconds) = retry_after.and_then(|s| s.parse().ok()) {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds);
        }
        response
    }
}

fn failure_details(failure: &Failure) -> serde_json::Value {
    match failure {
        Failure::FuelExhausted { fuel } => json!({ "fuel_limit": fuel }),
        Failure::DeadlineExceeded { deadline_ms } => json!({ "deadline_ms": deadline_ms }),
        Failure::MemoryLimit { memory_bytes_max } => {
            json!({ "memory_bytes_max": memory_bytes_max })
        }
        Failure::Trapped { trap } => json!({ "trap": trap }),
        Failure::OutputTooLarge { bytes_max } => json!({ "bytes_max": bytes_max }),
        Failure::Overloaded => json!({ "retry_after_ms": 1_000 }),
    }
}

impl From<market::Error> for ApiError {
    fn from(error: market::Error) -> Self {
        use market::Error as E;
        let code = error.code();
        if code == "internal" {
            tracing::error!(error = %error, "internal error");
            return ApiError::new(
                "internal",
                "internal error; the operator's log has the details",
            );
        }
        let message = error.to_string();
        let details = match &error {
            E::InvalidInput { violations } => Some(json!({ "violations": violations })),
            E::CapBelowPrice(e) => Some(
                json!({ "max_price_micros": e.max_price_micros, "price_micros": e.price_micros }),
            ),
            E::Call {
                failure,
                transaction_id,
                fuel_used,
                charged_micros,
            } => {
                let mut d = failure_details(failure);
                d["fuel_used"] = json!(fuel_used);
                if let Some(tx) = transaction_id {
                    d["transaction_id"] = json!(tx);
                }
                d["charged_micros"] = json!(charged_micros);
                Some(d)
            }
            E::Settlement(crate::settlement::Error::Ledger(
                crate::ledger::Error::InsufficientFunds {
                    available, amount, ..
                },
            )) => Some(json!({ "available_micros": available, "hold_micros": amount })),
            E::Settlement(crate::settlement::Error::OverPerCallLimit { amount, limit }) => {
                Some(json!({ "hold_micros": amount, "per_call_max_micros": limit }))
            }
            E::Settlement(crate::settlement::Error::BudgetExhausted { limit, spent, .. }) => {
                Some(json!({ "daily_max_micros": limit, "spent_today_micros": spent }))
            }
            E::Refused {
                error,
                transaction_id,
                fuel_used,
            } => Some(json!({
                // The guest's text is in the message, once.
                "kind": error.kind(),
                "transaction_id": transaction_id,
                "fuel_used": fuel_used,
                "charged_micros": 0,
            })),
            E::InvalidOutput {
                violations,
                transaction_id,
                fuel_used,
            } => Some(json!({
                "violations": violations,
                "transaction_id": transaction_id,
                "fuel_used": fuel_used,
                "charged_micros": 0,
            })),
            E::RateLimited {
                per_minute,
                retry_after_ms,
            } => Some(json!({ "per_minute": per_minute, "retry_after_ms": retry_after_ms })),
            E::SignupRefused {
                retry_after_ms: Some(retry_after_ms),
                ..
            } => Some(json!({ "retry_after_ms": retry_after_ms })),
            E::UnprovenLimit {
                per_minute,
                retry_after_ms,
            } => Some(json!({ "retry_after_ms": retry_after_ms, "per_minute": per_minute })),
            E::ComponentTooLarge { bytes, bytes_max } => {
                Some(json!({ "bytes": bytes, "bytes_max": bytes_max }))
            }
            E::Sandbox(crate::sandbox::Error::ForbiddenImports(imports)) => {
                Some(json!({ "imports": imports }))
            }
            E::VersionNotNewer { latest, .. } => Some(json!({ "latest": latest })),
            E::ApprovalRequired {
                approval_id,
                hold_micros,
                threshold_micros,
                expires_at_ms,
            } => Some(json!({
                "approval_id": approval_id,
                "hold_micros": hold_micros,
                "approval_above_micros": threshold_micros,
                "expires_at_ms": expires_at_ms,
            })),
            E::AttestationFailed { failures, report } => {
                Some(json!({ "failures": failures, "report": report }))
            }
            E::Incompatible {
                previous,
                failures,
                report,
                ..
            } => Some(json!({ "previous": previous, "failures": failures, "report": report })),
            _ => None,
        };
        let api = ApiError::new(code, message);
        match details {
            Some(d) => api.with_details(d),
            None => api,
        }
    }
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        use axum::extract::rejection::JsonRejection as R;
        match &rejection {
            R::MissingJsonContentType(_) => {
                ApiError::new("unsupported_media_type", rejection.body_text())
            }
            _ if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                ApiError::new("body_too_large", "the request body is over the limit")
            }
            _ => ApiError::new("invalid_request", rejection.body_text()),
        }
    }
}

impl From<axum::extract::multipart::MultipartError> for ApiError {
    fn from(error: axum::extract::multipart::MultipartError) -> Self {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new("component_too_large", "the upload is over the size limit");
        }
        ApiError::new("invalid_request", error.body_text())
    }
}

impl From<axum::extract::multipart::MultipartRejection> for ApiError {
    fn from(rejection: axum::extract::multipart::MultipartRejection) -> Self {
        ApiError::new("invalid_request", rejection.body_text())
    }
}
