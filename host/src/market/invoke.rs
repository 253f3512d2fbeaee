//! Invoking a capability: validate, meter, run, validate, record.

use super::views::InvokeResult;
use super::{Error, Market, Result, now_ms};
use crate::identity::Org;
use crate::pricing;
use crate::registry::{CapabilityId, violations};
use crate::sandbox::{CallOutput, Invocation};
use crate::store::Tree;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::UnboundedSender;

/// A call as a front door hands it over.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    /// Pinned or unpinned capability id.
    pub capability_id: String,
    /// The input document.
    pub input: serde_json::Value,
    /// The most the caller will pay; buys exactly the fuel it covers.
    pub max_price_micros: Option<u64>,
}

/// What is kept of every call, as its parties see it
/// (`GET /v1/transactions/{id}`). Inputs and outputs are kept only as hashes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct InvocationRecord {
    /// Transaction id.
    pub transaction_id: String,
    /// Pinned capability id.
    pub capability_id: String,
    /// Calling organisation.
    pub consumer_org_id: String,
    /// Providing organisation.
    pub provider_org_id: String,
    /// `ok` or the error code.
    pub outcome: String,
    /// Fuel given.
    pub fuel_limit: u64,
    /// Fuel used.
    pub fuel_used: u64,
    /// Cost of the call (0 for failed calls).
    pub cost_micros: u64,
    /// The caller's cap, if any.
    pub max_price_micros: Option<u64>,
    /// Wall time, milliseconds.
    pub duration_ms: u64,
    /// When the call ended, Unix milliseconds.
    pub at_ms: u64,
    /// SHA-256 of the input JSON text, hex.
    pub input_sha256: String,
    /// SHA-256 of the output JSON text, hex, for successful calls.
    pub output_sha256: Option<String>,
}

fn new_transaction_id() -> String {
    format!("tx_{}", uuid::Uuid::now_v7().simple())
}

impl Market {
    /// Runs one call for `consumer`. Chunks the guest emits go to `emitter`.
    pub async fn invoke(
        &self,
        consumer: &Org,
        request: InvokeRequest,
        emitter: Option<UnboundedSender<String>>,
    ) -> Result<InvokeResult> {
        let id = CapabilityId::parse(&request.capability_id)?;
        let listed = self
            .catalog
            .resolve(&id)
            .ok_or_else(|| Error::NotFound(request.capability_id.clone()))?;
        let capability = listed
            .capability(&id.capability)
            .ok_or_else(|| Error::NotFound(request.capability_id.clone()))?;

        let input_violations = violations(&capability.input_validator, &request.input);
        if !input_violations.is_empty() {
            return Err(Error::InvalidInput {
                violations: input_violations,
            });
        }
        let terms = &capability.record.terms;
        let per_minute = terms.rate_limit_per_minute;
        self.rates
            .take(
                &consumer.org_id,
                &capability.unpinned_id,
                per_minute,
                std::time::Instant::now(),
            )
            .map_err(|wait| Error::RateLimited {
                per_minute,
                retry_after_ms: wait.as_millis() as u64 + 1,
            })?;
        let fuel_limit = pricing::fuel_for_cap(
            request.max_price_micros,
            terms.price_micros,
            terms.micros_per_mfuel,
            self.sandbox.limits().fuel_per_call_max,
        )?;

        let input = request.input.to_string();
        let label = capability.pinned_id.as_str();
        let Invocation {
            result,
            fuel_used,
            duration,
        } = self
            .sandbox
            .invoke(
                &listed.compiled,
                label,
                &capability.record.name,
                &input,
                fuel_limit,
                emitter,
            )
            .await;
        let duration_ms = duration.as_millis() as u64;

        let transaction_id = new_transaction_id();
        let mut record = InvocationRecord {
            transaction_id: transaction_id.clone(),
            capability_id: capability.pinned_id.clone(),
            consumer_org_id: consumer.org_id.clone(),
            provider_org_id: listed.record.owner_org_id.clone(),
            outcome: String::new(),
            fuel_limit,
            fuel_used,
            cost_micros: 0,
            max_price_micros: request.max_price_micros,
            duration_ms,
            at_ms: now_ms(),
            input_sha256: hex::encode(Sha256::digest(input.as_bytes())),
            output_sha256: None,
        };

        let outcome: Result<(serde_json::Value, String)> = match result {
            Err(failure) if failure == crate::sandbox::Failure::Overloaded => {
                // Nothing ran: no transaction to record.
                self.metrics.invocation(failure.code(), 0, 0.0);
                return Err(Error::Call {
                    failure,
                    transaction_id: None,
                    fuel_used: 0,
                });
            }
            Err(failure) => Err(Error::Call {
                failure,
                transaction_id: Some(transaction_id.clone()),
                fuel_used,
            }),
            Ok(CallOutput::Refused(error)) => Err(Error::Refused {
                error,
                transaction_id: transaction_id.clone(),
                fuel_used,
            }),
            Ok(CallOutput::Output(text)) => {
                self.checked_output(capability, text, &transaction_id, fuel_used)
            }
        };

        let answer = match outcome {
            Ok((output, text)) => {
                record.outcome = "ok".into();
                record.cost_micros =
                    pricing::cost_micros(terms.price_micros, terms.micros_per_mfuel, fuel_used);
                record.output_sha256 = Some(hex::encode(Sha256::digest(text.as_bytes())));
                Ok(InvokeResult {
                    output,
                    transaction_id,
                    capability_id: capability.pinned_id.clone(),
                    fuel_used,
                    fuel_limit,
                    cost_micros: record.cost_micros,
                    duration_ms,
                })
            }
            Err(error) => {
                record.outcome = error.code().into();
                Err(error)
            }
        };
        let successes = self.stats.record(
            &record.capability_id,
            answer.is_ok(),
            fuel_used,
            duration_ms,
        );
        // Discovery filters by expected cost: refresh it as observations
        // accumulate (at 1, 2, 4, ... successes, then every 1,024).
        if answer.is_ok() && (successes.is_power_of_two() || successes.is_multiple_of(1_024)) {
            self.refresh_facts(&record.capability_id);
        }
        self.metrics
            .invocation(&record.outcome, fuel_used, duration.as_secs_f64());
        // Flushed by the committer within `background_flush_ms`: a free
        // call's record does not wait for a disk sync.
        self.store
            .put(Tree::Invocations, &record.transaction_id, &record)?;
        answer
    }

    fn checked_output(
        &self,
        capability: &crate::registry::ListedCapability,
        text: String,
        transaction_id: &str,
        fuel_used: u64,
    ) -> Result<(serde_json::Value, String)> {
        let invalid = |violations| Error::InvalidOutput {
            violations,
            transaction_id: transaction_id.to_string(),
            fuel_used,
        };
        let output: serde_json::Value = match serde_json::from_str(&text) {
            Ok(output) => output,
            Err(e) => {
                return Err(invalid(vec![crate::registry::Violation {
                    path: String::new(),
                    message: format!("not JSON: {e}"),
                }]));
            }
        };
        let found = violations(&capability.output_validator, &output);
        if !found.is_empty() {
            return Err(invalid(found));
        }
        Ok((output, text))
    }

    /// A stored invocation record.
    pub fn invocation(&self, transaction_id: &str) -> Result<Option<InvocationRecord>> {
        Ok(self.store.get(Tree::Invocations, transaction_id)?)
    }
}
