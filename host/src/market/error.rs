//! Everything a marketplace operation can fail with, each with a stable code.

use crate::registry::Violation;
use crate::sandbox::{Failure, GuestError};
use crate::{identity, ledger, pricing, registry, sandbox, settlement, store};

/// The market's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, in terms a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// No such thing (a capability, a contract, an approval…), or not the
    /// caller's: the message names what was looked for.
    #[error("no {0}")]
    NotFound(String),
    /// A request that cannot be done as sent; the message says what to change.
    #[error("{0}")]
    InvalidRequest(String),
    /// A discovery query that cannot run.
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// The agent belongs to another organisation.
    #[error("agent `{agent}` belongs to another organisation")]
    NotOwner {
        /// The agent.
        agent: String,
    },
    /// The component is over the size limit.
    #[error("the component is {bytes} bytes; the limit is {bytes_max}")]
    ComponentTooLarge {
        /// Its size.
        bytes: u64,
        /// The limit.
        bytes_max: u64,
    },
    /// This version was published before, with another component.
    #[error("{agent} {version} is already published")]
    VersionExists {
        /// The agent.
        agent: String,
        /// The version.
        version: String,
    },
    /// A version must be newer than the latest.
    #[error("{agent} {version} is not newer than the latest version {latest}")]
    VersionNotNewer {
        /// The agent.
        agent: String,
        /// The uploaded version.
        version: String,
        /// The latest published version.
        latest: String,
    },
    /// The input breaks the capability's input schema.
    #[error("the input breaks the capability's input schema")]
    InvalidInput {
        /// Each violation.
        violations: Vec<Violation>,
    },
    /// The consumer called this capability more often than its terms allow.
    #[error("rate limit of {per_minute} calls per minute reached; retry in {retry_after_ms} ms")]
    RateLimited {
        /// The capability's limit.
        per_minute: u32,
        /// When a call will be allowed again.
        retry_after_ms: u64,
    },
    /// The price cap does not cover the base price.
    #[error(transparent)]
    CapBelowPrice(#[from] pricing::CapBelowPrice),
    /// The call ran and failed in the sandbox.
    #[error("{failure}")]
    Call {
        /// Why.
        failure: Failure,
        /// The recorded transaction.
        transaction_id: Option<String>,
        /// Fuel burned.
        fuel_used: u64,
        /// What the consumer was charged (running out of its own fuel is
        /// charged; a provider fault is not).
        charged_micros: u64,
    },
    /// The caller cancelled the call before it finished; nothing was charged.
    #[error("the call was cancelled before it finished; nothing was charged")]
    Cancelled,
    /// The capability answered an error.
    #[error("the capability refused the call: {}", error.message())]
    Refused {
        /// What it said.
        error: GuestError,
        /// The recorded transaction.
        transaction_id: String,
        /// Fuel burned.
        fuel_used: u64,
    },
    /// The output breaks the declared output schema (or is not JSON).
    #[error("the capability's output breaks its declared output schema")]
    InvalidOutput {
        /// Each violation.
        violations: Vec<Violation>,
        /// The recorded transaction.
        transaction_id: String,
        /// Fuel burned.
        fuel_used: u64,
    },
    /// Only verified organisations publish.
    #[error(
        "organisation `{0}` is not verified yet; an admin verifies it (POST /v1/orgs/{{id}}/verify)"
    )]
    OrgNotVerified(String),
    /// The upload carries no signature.
    #[error(
        "the upload has no `signature` field: sign the component and manifest with one of the \
         organisation's keys (mercato publish --key)"
    )]
    SignatureMissing,
    /// The attestation battery failed; nothing is listed.
    #[error("attestation failed: {}", failures.first().map(String::as_str).unwrap_or("see the report"))]
    AttestationFailed {
        /// One line per failed check.
        failures: Vec<String>,
        /// The signed report.
        report: Box<serde_json::Value>,
    },
    /// A minor or patch version that breaks the version it replaces.
    #[error(
        "{version} is not compatible with {previous}: {}; publish the change as a new major version",
        failures.first().map(String::as_str).unwrap_or("see the report")
    )]
    Incompatible {
        /// The uploaded version.
        version: String,
        /// The version it would replace.
        previous: String,
        /// One line per incompatibility.
        failures: Vec<String>,
        /// The signed report.
        report: Box<serde_json::Value>,
    },
    /// The negotiation cannot take this step.
    #[error("{0}")]
    NegotiationClosed(String),
    /// A call does not fit its contract (expired, another capability or consumer).
    #[error("{0}")]
    ContractViolation(String),
    /// The call may cost more than the consumer's approval threshold: an
    /// approval was filed; repeat the call with its id once approved.
    #[error(
        "this call may cost {hold_micros} micros, above the approval threshold of \
         {threshold_micros}; approval {approval_id} waits for an approver"
    )]
    ApprovalRequired {
        /// The filed approval.
        approval_id: String,
        /// What the call may cost.
        hold_micros: u64,
        /// The threshold.
        threshold_micros: u64,
        /// When the approval lapses.
        expires_at_ms: u64,
    },
    /// The approval is not (or no longer) granted.
    #[error("approval {approval_id} is {status}")]
    ApprovalNotGranted {
        /// The approval.
        approval_id: String,
        /// Its status.
        status: String,
    },
    /// The approval was for another call.
    #[error("approval {0} was given for another capability, input or cap")]
    ApprovalMismatch(String),
    /// The OAuth access token the call came with lacks a scope it needs.
    #[error("this token's scopes do not include `{0}`; authorize the client again with it")]
    InsufficientScope(&'static str),
    /// This side already rated the transaction.
    #[error("you already rated transaction {0}")]
    AlreadyRated(String),
    /// The transaction is already disputed.
    #[error("transaction {0} is already disputed")]
    DisputeExists(String),
    /// No dispute waits for a decision.
    #[error("transaction {0} has no dispute pending review")]
    NoPendingDispute(String),
    /// Money could not move (funds, budget, escrow state).
    #[error(transparent)]
    Settlement(#[from] crate::settlement::Error),
    /// A battery file is broken.
    #[error(transparent)]
    Battery(#[from] crate::attestation::BatteryError),
    /// Registry rules.
    #[error(transparent)]
    Registry(#[from] registry::Error),
    /// The sandbox refused the component.
    #[error(transparent)]
    Sandbox(#[from] sandbox::Error),
    /// Identity rules or storage.
    #[error(transparent)]
    Identity(#[from] identity::Error),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// Registration without the admin token is closed, or this address
    /// registered too many organisations lately.
    #[error("{message}")]
    SignupRefused {
        /// Why.
        message: String,
        /// When to retry, if ever.
        retry_after_ms: Option<u64>,
    },
    /// An organisation that is neither verified nor funded created its
    /// share of stored objects lately.
    #[error(
        "an organisation that is neither verified nor funded may create {per_minute} \
         approver tokens, negotiations, approval requests or idempotency keys a minute; retry \
         later, or deposit funds"
    )]
    UnprovenLimit {
        /// The limit.
        per_minute: u32,
        /// When to retry.
        retry_after_ms: u64,
    },
    /// Every compilation slot stayed busy for the whole wait.
    #[error("the host is compiling other components; retry shortly")]
    CompilerBusy,
    /// This call cannot be rated (free, failed, self-dealt or too old).
    #[error("{0}")]
    RatingNotAllowed(String),
    /// The organisation already has its whole share of the call slots busy.
    #[error("your organisation already has {calls_max} calls running; retry when one ends")]
    TooManyCalls {
        /// Calls one organisation may have at once.
        calls_max: usize,
    },
    /// The need waits for the sentence-embedding model behind too many of
    /// the asker's own (`rate_limited`) or of everyone's (`overloaded`).
    #[error("{}", if *mine {
        "you already have needs waiting for the embedding model; retry when one is answered"
    } else {
        "the embedding model is busy with other needs; retry shortly"
    })]
    ModelBusy {
        /// The asker's own needs are what it waits behind.
        mine: bool,
        /// When to retry.
        retry_after_ms: u64,
    },
    /// A background task died.
    #[error("internal: {0}")]
    Internal(String),
}

/// Ids echoed in messages are cut to this many characters.
const ECHOED_ID_CHARS_MAX: usize = 100;

/// An id a client sent, fit to echo in a message: at most
/// [`ECHOED_ID_CHARS_MAX`] characters, control characters dropped.
pub fn echoed(id: &str) -> String {
    let mut shown: String = id
        .chars()
        .filter(|c| !c.is_control())
        .take(ECHOED_ID_CHARS_MAX)
        .collect();
    if id.chars().count() > ECHOED_ID_CHARS_MAX {
        shown.push('…');
    }
    shown
}

impl Error {
    /// No capability listed under `id`.
    pub fn capability_not_found(id: &str) -> Error {
        Error::NotFound(format!("capability `{}`", echoed(id)))
    }

    /// Whether the failure is the database being away (or this host not
    /// allowed to write to it for now): `unavailable`, 503 with
    /// `Retry-After`, never a 500.
    pub fn database_unavailable(&self) -> bool {
        let store = match self {
            Error::Store(e)
            | Error::Settlement(settlement::Error::Store(e))
            | Error::Identity(identity::Error::Store(e)) => e,
            _ => return false,
        };
        store.is_unavailable()
    }

    /// The stable error code clients see.
    pub fn code(&self) -> &'static str {
        if self.database_unavailable() {
            return "unavailable";
        }
        match self {
            Error::Config(_) => "invalid_config",
            Error::NotFound(_) => "not_found",
            Error::InvalidQuery(_) | Error::InvalidRequest(_) => "invalid_request",
            Error::NotOwner { .. } => "not_owner",
            Error::ComponentTooLarge { .. } => "component_too_large",
            Error::VersionExists { .. } => "version_exists",
            Error::VersionNotNewer { .. } => "version_not_newer",
            Error::InvalidInput { .. } => "invalid_input",
            Error::CapBelowPrice(_) => "price_too_low",
            Error::RateLimited { .. } => "rate_limited",
            Error::Call { failure, .. } => failure.code(),
            Error::Cancelled => "cancelled",
            Error::TooManyCalls { .. } => "overloaded",
            Error::ModelBusy { mine: true, .. } => "rate_limited",
            Error::ModelBusy { mine: false, .. } => "overloaded",
            Error::RatingNotAllowed(_) => "rating_not_allowed",
            Error::CompilerBusy => "overloaded",
            Error::UnprovenLimit { .. } => "rate_limited",
            Error::SignupRefused {
                retry_after_ms: Some(_),
                ..
            } => "rate_limited",
            Error::SignupRefused { .. } => "signup_closed",
            Error::Refused {
                error: GuestError::InvalidInput(_),
                ..
            } => "invalid_input",
            Error::Refused { .. } => "capability_failed",
            Error::InvalidOutput { .. } => "invalid_output",
            Error::Registry(registry::Error::InvalidManifest(_)) => "invalid_manifest",
            Error::Registry(registry::Error::InvalidDescription(_)) => "invalid_description",
            Error::Registry(registry::Error::NotFound(_) | registry::Error::BadId(_)) => {
                "not_found"
            }
            Error::Sandbox(sandbox::Error::InvalidComponent(_)) => "invalid_component",
            Error::Sandbox(sandbox::Error::ForbiddenImports(_)) => "forbidden_imports",
            Error::Sandbox(sandbox::Error::WrongWorld(_)) => "wrong_world",
            Error::Sandbox(sandbox::Error::CompileBudget { .. }) => "component_too_complex",
            Error::Sandbox(sandbox::Error::Describe(_) | sandbox::Error::InvalidDescription(_)) => {
                "invalid_description"
            }
            Error::Sandbox(_) => "internal",
            Error::OrgNotVerified(_) => "org_not_verified",
            Error::SignatureMissing => "signature_missing",
            Error::AttestationFailed { .. } => "attestation_failed",
            Error::Incompatible { .. } => "incompatible_version",
            Error::Battery(_) => "invalid_battery",
            Error::DisputeExists(_) => "dispute_exists",
            Error::AlreadyRated(_) => "already_rated",
            Error::InsufficientScope(_) => "insufficient_scope",
            Error::ApprovalRequired { .. } => "approval_required",
            Error::ApprovalNotGranted { .. } => "approval_not_granted",
            Error::ApprovalMismatch(_) => "approval_mismatch",
            Error::NegotiationClosed(_) => "negotiation_closed",
            Error::ContractViolation(_) => "contract_invalid",
            Error::NoPendingDispute(_) => "no_pending_dispute",
            Error::Settlement(e) => match e {
                settlement::Error::Ledger(ledger::Error::InsufficientFunds { .. }) => {
                    "insufficient_funds"
                }
                settlement::Error::OverPerCallLimit { .. } => "budget_exceeded",
                settlement::Error::BudgetExhausted { .. } => "budget_exhausted",
                settlement::Error::Paused => "budget_paused",
                settlement::Error::OverAllowancePerCall { .. }
                | settlement::Error::AllowanceExhausted { .. } => "token_cap_exceeded",
                settlement::Error::InvalidAmount(_) => "invalid_request",
                settlement::Error::NotInEscrow(_) => "not_in_escrow",
                settlement::Error::Unconfirmed(_) => "unconfirmed",
                // A deposit id (its Idempotency-Key) already credited, its
                // idempotency record gone: refused, never credited twice.
                settlement::Error::Ledger(ledger::Error::TransferExists(_)) => "transfer_exists",
                _ => "internal",
            },
            Error::Identity(identity::Error::InvalidName | identity::Error::BadKey(_)) => {
                "invalid_request"
            }
            Error::Identity(identity::Error::UnknownOrg(_)) => "not_found",
            Error::Identity(identity::Error::TooManyKeys) => "too_many_keys",
            Error::Identity(identity::Error::UnknownKey(_)) => "signing_key_unknown",
            Error::Identity(identity::Error::RevokedKey(_)) => "signing_key_revoked",
            Error::Identity(identity::Error::BadSignature(_)) => "signature_malformed",
            Error::Identity(identity::Error::SignatureMismatch) => "signature_invalid",
            Error::Identity(_) | Error::Store(_) | Error::Internal(_) => "internal",
        }
    }

    /// Structured context for the error body's `details` (violations,
    /// limits, the transaction it concerns), when there is any.
    pub fn details(&self) -> Option<serde_json::Value> {
        use serde_json::json;
        let details = match self {
            Error::InvalidInput { violations } => json!({ "violations": violations }),
            Error::CapBelowPrice(e) => {
                json!({ "max_price_micros": e.max_price_micros, "price_micros": e.price_micros })
            }
            Error::Call {
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
                d
            }
            Error::Settlement(settlement::Error::Ledger(ledger::Error::InsufficientFunds {
                available,
                amount,
                ..
            })) => json!({ "available_micros": available, "hold_micros": amount }),
            Error::Settlement(settlement::Error::OverPerCallLimit { amount, limit }) => {
                json!({ "hold_micros": amount, "per_call_max_micros": limit })
            }
            Error::Settlement(settlement::Error::BudgetExhausted { limit, spent, .. }) => {
                json!({ "daily_max_micros": limit, "spent_today_micros": spent })
            }
            Error::Settlement(settlement::Error::OverAllowancePerCall { amount, limit }) => {
                json!({ "hold_micros": amount, "token_per_call_max_micros": limit })
            }
            Error::Settlement(settlement::Error::AllowanceExhausted { limit, spent }) => {
                json!({ "token_daily_max_micros": limit, "token_spent_today_micros": spent })
            }
            Error::Refused {
                error,
                transaction_id,
                fuel_used,
            } => json!({
                // The guest's text is in the message, once.
                "kind": error.kind(),
                "transaction_id": transaction_id,
                "fuel_used": fuel_used,
                "charged_micros": 0,
            }),
            Error::InvalidOutput {
                violations,
                transaction_id,
                fuel_used,
            } => json!({
                "violations": violations,
                "transaction_id": transaction_id,
                "fuel_used": fuel_used,
                "charged_micros": 0,
            }),
            Error::RateLimited {
                per_minute,
                retry_after_ms,
            } => json!({ "per_minute": per_minute, "retry_after_ms": retry_after_ms }),
            Error::ModelBusy { retry_after_ms, .. } => json!({ "retry_after_ms": retry_after_ms }),
            Error::SignupRefused {
                retry_after_ms: Some(retry_after_ms),
                ..
            } => json!({ "retry_after_ms": retry_after_ms }),
            Error::UnprovenLimit {
                per_minute,
                retry_after_ms,
            } => json!({ "retry_after_ms": retry_after_ms, "per_minute": per_minute }),
            Error::ComponentTooLarge { bytes, bytes_max } => {
                json!({ "bytes": bytes, "bytes_max": bytes_max })
            }
            Error::Sandbox(sandbox::Error::ForbiddenImports(imports)) => {
                json!({ "imports": imports })
            }
            Error::VersionNotNewer { latest, .. } => json!({ "latest": latest }),
            Error::ApprovalRequired {
                approval_id,
                hold_micros,
                threshold_micros,
                expires_at_ms,
            } => json!({
                "approval_id": approval_id,
                "hold_micros": hold_micros,
                "approval_above_micros": threshold_micros,
                "expires_at_ms": expires_at_ms,
            }),
            Error::AttestationFailed { failures, report } => {
                json!({ "failures": failures, "report": report })
            }
            Error::Incompatible {
                previous,
                failures,
                report,
                ..
            } => json!({ "previous": previous, "failures": failures, "report": report }),
            _ if self.database_unavailable() => json!({ "retry_after_ms": 1_000 }),
            Error::Settlement(settlement::Error::Unconfirmed(_)) => {
                json!({ "retry_after_ms": 1_000, "takes_effect_when_back": true })
            }
            _ => return None,
        };
        Some(details)
    }
}

/// What a sandbox failure adds to the details of the call it ended.
fn failure_details(failure: &Failure) -> serde_json::Value {
    use serde_json::json;
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
