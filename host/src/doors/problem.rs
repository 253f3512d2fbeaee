//! A refusal or failure as every door reports it: a stable code, a message
//! for people, and structured details — the body `{"error": {code, message,
//! details}}`. REST answers it with its code's HTTP status (`api` alone
//! knows those), MCP as a tool error, A2A as a failed or rejected task.

use crate::market;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// A refused or failed operation. Server faults never carry internals.
#[derive(Debug, Clone)]
pub struct Problem {
    code: &'static str,
    message: String,
    details: Option<Value>,
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
    pub details: Option<Value>,
}

impl Problem {
    /// A problem with a stable `code`.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Problem {
            code,
            message: message.into(),
            details: None,
        }
    }

    /// The problem every unexpected fault becomes.
    pub fn internal() -> Self {
        Problem::new("internal", "internal error")
    }

    /// Adds structured details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Its details, if any.
    pub fn details(&self) -> Option<&Value> {
        self.details.as_ref()
    }

    /// The body.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.into(),
                message: self.message.clone(),
                details: self.details.clone(),
            },
        }
    }

    /// The body as JSON.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self.body()).unwrap_or_default()
    }
}

impl From<market::Error> for Problem {
    fn from(error: market::Error) -> Self {
        let code = error.code();
        if code == "internal" {
            tracing::error!(error = %error, "internal error");
            return Problem::new(
                "internal",
                "internal error; the operator's log has the details",
            );
        }
        let problem = Problem::new(code, error.to_string());
        match error.details() {
            Some(details) => problem.with_details(details),
            None => problem,
        }
    }
}

/// Whether an answer with this code may differ on a retry (the host was
/// busy, a limit refilled, the client left): such answers are never
/// remembered under an idempotency key.
pub fn is_transient(code: &str) -> bool {
    matches!(
        code,
        "overloaded"
            | "unavailable"
            | "rate_limited"
            | "request_timeout"
            | "internal"
            | "idempotency_in_progress"
            | "cancelled"
    )
}

/// Whether an error is the consumer's (a refusal before or instead of the
/// work: price, funds, budget, limits, approval, contract) rather than the
/// provider's fault.
pub fn is_refusal(code: &str) -> bool {
    matches!(
        code,
        "price_too_low"
            | "insufficient_funds"
            | "budget_exceeded"
            | "budget_exhausted"
            | "budget_paused"
            | "token_cap_exceeded"
            | "approval_required"
            | "approval_not_granted"
            | "approval_mismatch"
            | "rate_limited"
            | "contract_invalid"
            | "not_found"
            | "overloaded"
            | "idempotency_conflict"
            | "idempotency_in_progress"
    )
}
