//! Invoking a capability: validate, price, hold, run, validate, capture or
//! void, record with a signed receipt.

use super::blame::{Blame, blame};
use super::views::InvokeResult;
use super::{Error, Market, Result, now_ms};
use crate::identity::Org;
use crate::pricing;
use crate::registry::{CapabilityId, ListedCapability, violations};
use crate::sandbox::{CallOutput, Failure, Invocation};
use crate::settlement::Hold;
use crate::store::Tree;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::Sender;
use tokio_util::sync::CancellationToken;

/// A call as a front door hands it over.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    /// Pinned or unpinned capability id.
    pub capability_id: String,
    /// The input document.
    pub input: serde_json::Value,
    /// The most the caller will pay (cost plus fee); buys exactly the fuel it covers.
    pub max_price_micros: Option<u64>,
    /// The contract the call runs under: its version, price cap, rate limit
    /// and latency SLA apply.
    pub contract_id: Option<String>,
    /// An approval for a call above the consumer's approval threshold.
    pub approval_id: Option<String>,
    /// Cancels the call while it runs in the sandbox (an A2A `CancelTask`,
    /// an MCP `notifications/cancelled`): the hold is voided, nothing is
    /// charged or recorded. Once the sandbox has answered, the call completes.
    pub cancel: Option<CancellationToken>,
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
    /// The provider's price for the call: `price + ceil(fuel × rate / 10⁶)`
    /// (0 when nothing was charged).
    pub cost_micros: u64,
    /// The marketplace fee on it.
    #[serde(default)]
    pub fee_micros: u64,
    /// What the consumer paid: cost plus fee.
    #[serde(default)]
    pub charged_micros: u64,
    /// `free` (nothing to pay), `voided` (the hold was released: a provider
    /// fault or a refused call), `escrowed` (paid, in the dispute window),
    /// `released` (paid out to the provider), `refunded`.
    #[serde(default)]
    pub settlement: String,
    /// When escrow is released to the provider unless disputed.
    #[serde(default)]
    pub release_at_ms: Option<u64>,
    /// The caller's cap, if any.
    pub max_price_micros: Option<u64>,
    /// Wall time, whole milliseconds (rounded down).
    pub duration_ms: u64,
    /// Wall time, microseconds (0 in records written before it was kept).
    #[serde(default)]
    pub duration_us: u64,
    /// When the call ended, Unix milliseconds.
    pub at_ms: u64,
    /// SHA-256 of the input JSON text, hex.
    pub input_sha256: String,
    /// SHA-256 of the output JSON text, hex, for successful calls.
    pub output_sha256: Option<String>,
    /// SHA-256 of the component that ran, hex.
    #[serde(default)]
    pub component_sha256: String,
    /// The receipt, signed by the marketplace key.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub receipt: Option<super::SignedReceipt>,
    /// The consumer's dispute, if any.
    #[serde(default)]
    pub dispute: Option<super::money::DisputeRecord>,
    /// The contract the call ran under.
    #[serde(default)]
    pub contract_id: Option<String>,
    /// The call was slower than its contract's latency SLA (and so not charged).
    #[serde(default)]
    pub sla_missed: bool,
}

fn new_transaction_id() -> String {
    format!("tx_{}", uuid::Uuid::now_v7().simple())
}

/// Chunks a call's stream holds for a consumer that has not read them yet;
/// past these the guest waits in `emit` (its deadline still running).
pub const CHUNKS_BUFFERED: usize = 16;

/// The channel a front door gives [`Market::invoke`] for a call's chunks.
pub fn chunk_channel() -> (Sender<String>, tokio::sync::mpsc::Receiver<String>) {
    tokio::sync::mpsc::channel(CHUNKS_BUFFERED)
}

/// The fuel a call gets and the most it may be charged.
struct Metering {
    fuel_limit: u64,
    /// What to hold: the charge at `fuel_limit` (0 for a free capability).
    hold_micros: u64,
}

/// Whether a capability never costs anything (nothing to hold or capture).
fn is_free(capability: &ListedCapability) -> bool {
    let terms = &capability.record.terms;
    terms.price_micros == 0 && terms.micros_per_mfuel == 0
}

impl Market {
    fn metering(&self, capability: &ListedCapability, cap: Option<u64>) -> Result<Metering> {
        let terms = &capability.record.terms;
        let fuel_max = self.sandbox.limits().fuel_per_call_max;
        let fee_bps = self.settlement.rules().fee_bps;
        // The cap covers cost plus fee: the cost may use what is left of it.
        let cost_cap = cap.map(|cap| pricing::cost_within(cap, fee_bps));
        let fuel_limit = pricing::fuel_for_cap(
            cost_cap,
            terms.price_micros,
            terms.micros_per_mfuel,
            fuel_max,
        )
        .map_err(|e| pricing::CapBelowPrice {
            max_price_micros: cap.unwrap_or(e.max_price_micros),
            price_micros: pricing::charged_micros(terms.price_micros, fee_bps),
        })?;
        let hold_micros = if is_free(capability) {
            0
        } else {
            pricing::charged_micros(
                pricing::cost_micros(terms.price_micros, terms.micros_per_mfuel, fuel_limit),
                fee_bps,
            )
        };
        Ok(Metering {
            fuel_limit,
            hold_micros,
        })
    }

    /// Runs one call for `consumer`. Chunks the guest emits go to `emitter`.
    pub async fn invoke(
        &self,
        consumer: &Org,
        request: InvokeRequest,
        emitter: Option<Sender<String>>,
    ) -> Result<InvokeResult> {
        if let Some(token) = &consumer.token
            && !token.allows("invoke")
        {
            return Err(Error::InsufficientScope("invoke"));
        }
        let named = CapabilityId::parse(&request.capability_id)?;
        let contract = request
            .contract_id
            .as_deref()
            .map(|c| self.contract_for_call(consumer, c, &named))
            .transpose()?;
        // A contract pins the version it was signed for.
        let id = match &contract {
            Some(c) => CapabilityId::parse(&c.capability_id)?,
            None => named,
        };
        let listed = self.catalog.resolve(&id).ok_or_else(|| match &contract {
            Some(c) => Error::ContractViolation(format!(
                "{} is no longer listed; the contract cannot be honoured",
                c.capability_id
            )),
            None => Error::capability_not_found(&request.capability_id),
        })?;
        let capability = listed
            .capability(&id.capability)
            .ok_or_else(|| Error::capability_not_found(&request.capability_id))?;

        let input_violations = violations(&capability.input_validator, &request.input);
        if !input_violations.is_empty() {
            return Err(Error::InvalidInput {
                violations: input_violations,
            });
        }
        let terms = &capability.record.terms;
        // Under a contract, its rate limit replaces the listed one.
        let (bucket, per_minute) = match &contract {
            Some(c) => (
                format!("contract:{}", c.contract_id),
                c.terms.rate_limit_per_minute,
            ),
            None => (capability.unpinned_id.clone(), terms.rate_limit_per_minute),
        };
        self.rates
            .take(
                &consumer.org_id,
                &bucket,
                per_minute,
                std::time::Instant::now(),
            )
            .map_err(|wait| Error::RateLimited {
                per_minute,
                retry_after_ms: wait.as_millis() as u64 + 1,
            })?;
        // The organisation's fair share of the call slots, before any
        // money is held: a tenant's flood waits behind its own calls.
        let _share = self
            .fair
            .acquire(&consumer.org_id)
            .await
            .ok_or(Error::TooManyCalls {
                calls_max: self.fair.per_org(),
            })?;
        // How many calls of its own the consumer runs beside this one (at
        // its start and at its end: a flood overlaps itself), for `blame`.
        let own_calls_at_start = self.fair.in_flight(&consumer.org_id);
        // A per-call budget caps a call that names no cap of its own.
        let cap = match (
            request.max_price_micros,
            self.settlement.per_call_cap(&consumer.org_id),
        ) {
            (None, budget) => budget,
            (cap, _) => cap,
        };
        // An OAuth token's per-call cap caps a call that names none either
        // (a call naming more is refused at the hold, like the budget's).
        let token = consumer.token.as_deref();
        let cap = match (cap, token.and_then(|t| t.per_call_max_micros)) {
            (None, token_cap) => token_cap,
            (cap, _) => cap,
        };
        // A contract's price cap always holds.
        let cap = match (&contract, cap) {
            (Some(c), Some(cap)) => Some(cap.min(c.terms.max_price_micros)),
            (Some(c), None) => Some(c.terms.max_price_micros),
            (None, cap) => cap,
        };
        let metering = self.metering(capability, cap)?;
        let transaction_id = new_transaction_id();
        let approval = if metering.hold_micros > 0 {
            self.check_approval(consumer, &request, metering.hold_micros)?
        } else {
            None
        };
        // A call that never runs gives its approval back.
        let unused = |approval: &Option<super::Approval>| {
            if let Some(approval) = approval {
                self.restore_approval(approval);
            }
        };
        let hold = if metering.hold_micros == 0 {
            None
        } else {
            let allowance = token.map(|t| crate::settlement::Allowance {
                id: t.grant_id.clone(),
                per_call_max_micros: t.per_call_max_micros,
                daily_max_micros: t.daily_max_micros,
            });
            let held = self
                .settlement
                .hold(
                    &consumer.org_id,
                    &transaction_id,
                    metering.hold_micros,
                    now_ms(),
                    allowance.as_ref(),
                )
                .await;
            if held.is_err() {
                unused(&approval);
            }
            if let Err(crate::settlement::Error::BudgetExhausted {
                limit,
                spent,
                newly_paused: true,
            }) = &held
            {
                self.emit(
                    &consumer.org_id,
                    "budget_exhausted",
                    serde_json::json!({ "daily_max_micros": limit, "spent_today_micros": spent }),
                )?;
            }
            Some(held?)
        };

        let input = request.input.to_string();
        let call = self.sandbox.invoke(
            &listed.compiled,
            &capability.pinned_id,
            &capability.record.name,
            &input,
            metering.fuel_limit,
            emitter,
        );
        let cancel = request.cancel.clone().unwrap_or_default();
        // Dropping the sandbox future stops the guest at its next yield
        // (fuel and epoch checks); dropping the hold voids it.
        let Invocation {
            result,
            fuel_used,
            duration,
            timing,
        } = tokio::select! {
            biased;
            invocation = call => invocation,
            () = cancel.cancelled() => {
                drop(hold);
                unused(&approval);
                self.metrics.invocation("cancelled", 0, 0.0);
                return Err(Error::Cancelled);
            }
        };
        let duration_ms = duration.as_millis() as u64;
        let duration_us = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let record = InvocationRecord {
            transaction_id: transaction_id.clone(),
            capability_id: capability.pinned_id.clone(),
            consumer_org_id: consumer.org_id.clone(),
            provider_org_id: listed.record.owner_org_id.clone(),
            outcome: String::new(),
            fuel_limit: metering.fuel_limit,
            fuel_used,
            cost_micros: 0,
            fee_micros: 0,
            charged_micros: 0,
            settlement: if hold.is_some() { "voided" } else { "free" }.into(),
            release_at_ms: None,
            max_price_micros: request.max_price_micros,
            duration_ms,
            duration_us,
            at_ms: now_ms(),
            input_sha256: hex::encode(Sha256::digest(input.as_bytes())),
            output_sha256: None,
            component_sha256: listed.record.component_sha256.clone(),
            receipt: None,
            dispute: None,
            contract_id: contract.as_ref().map(|c| c.contract_id.clone()),
            sla_missed: contract.as_ref().is_some_and(|c| {
                duration > std::time::Duration::from_millis(c.terms.latency_ms_max)
            }),
        };

        if matches!(result, Err(Failure::Overloaded)) {
            // No slot: nothing ran, no transaction to record (the hold drops).
            unused(&approval);
            self.metrics.invocation("overloaded", 0, 0.0);
            return Err(Error::Call {
                failure: Failure::Overloaded,
                transaction_id: None,
                fuel_used: 0,
                charged_micros: 0,
            });
        }
        let mut blamed = blame(
            &result,
            timing,
            duration,
            own_calls_at_start.max(self.fair.in_flight(&consumer.org_id)),
            self.workers,
        );
        // A deadline the host's load caused is an overload: not charged,
        // not the provider's, retried by the client.
        let result = match result {
            Err(Failure::DeadlineExceeded { .. }) if blamed == Blame::Host => {
                Err(Failure::Overloaded)
            }
            result => result,
        };
        let outcome: Result<(serde_json::Value, String)> = match result {
            Err(failure) => Err(Error::Call {
                failure,
                transaction_id: Some(transaction_id.clone()),
                fuel_used,
                charged_micros: 0,
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
        if matches!(outcome, Err(Error::InvalidOutput { .. })) {
            blamed = Blame::Provider;
        }
        let retention = contract.as_ref().map(|c| c.terms.retention);
        self.conclude(capability, hold, record, outcome, blamed, duration)
            .await
            .map(|mut result| {
                result.retention = retention;
                result
            })
    }

    /// Settles and records a call that ran, and builds its answer. A call
    /// is listed for its organisations once its record is written, so a call
    /// whose client left before then (while its receipt waited its turn to
    /// be signed: the hold is dropped, so voided) is never listed without a
    /// record.
    async fn conclude(
        &self,
        capability: &ListedCapability,
        hold: Option<Hold>,
        mut record: InvocationRecord,
        outcome: Result<(serde_json::Value, String)>,
        blamed: Blame,
        duration: std::time::Duration,
    ) -> Result<InvokeResult> {
        let terms = &capability.record.terms;
        // The consumer pays for what it asked for (see `blame`); a call
        // slower than its contract's SLA is not charged.
        let chargeable = blamed == Blame::Consumer && !record.sla_missed;
        record.outcome = match &outcome {
            Ok(_) => "ok".into(),
            Err(e) => e.code().into(),
        };
        if let Ok((_, text)) = &outcome {
            record.output_sha256 = Some(hex::encode(Sha256::digest(text.as_bytes())));
        }
        let mut outcome = outcome;
        match hold {
            Some(hold) if chargeable => {
                let cost = pricing::cost_micros(
                    terms.price_micros,
                    terms.micros_per_mfuel,
                    record.fuel_used,
                );
                let fee = pricing::fee_micros(cost, self.settlement.rules().fee_bps);
                let release_at_ms = record.at_ms + self.settlement.rules().dispute_window_ms;
                record.cost_micros = cost;
                record.fee_micros = fee;
                record.charged_micros = cost + fee;
                record.settlement = "escrowed".into();
                record.release_at_ms = Some(release_at_ms);
                record.receipt = Some(self.receipt(&record).await?);
                let value =
                    serde_json::to_value(&record).map_err(|e| Error::Internal(e.to_string()))?;
                let written = (record.transaction_id.clone(), value);
                let captured = self
                    .settlement
                    .capture(
                        hold,
                        &record.provider_org_id,
                        cost,
                        record.at_ms,
                        release_at_ms,
                        written,
                    )
                    .await?;
                self.index_call(&record);
                debug_assert_eq!(captured.charged_micros, record.charged_micros);
                for percent in &captured.alerts {
                    let budget = self.settlement.budget(&record.consumer_org_id);
                    self.emit(
                        &record.consumer_org_id,
                        "budget_alert",
                        serde_json::json!({
                            "percent": percent,
                            "daily_max_micros": budget.daily_max_micros,
                            "transaction_id": record.transaction_id,
                        }),
                    )?;
                }
                // The charge is on disk before anyone hears of it.
                self.settlement.sync().await?;
                if let Err(Error::Call { charged_micros, .. }) = &mut outcome {
                    *charged_micros = record.charged_micros;
                }
            }
            hold => {
                // Dropping a hold voids it: nothing is charged.
                drop(hold);
                record.receipt = Some(self.receipt(&record).await?);
                // Flushed by the committer within `background_flush_ms`: a
                // call that moved no money does not wait for a disk sync.
                self.store
                    .put(Tree::Invocations, &record.transaction_id, &record)?;
                self.index_call(&record);
            }
        }

        // The host's overload says nothing about the provider.
        let successes = if blamed == Blame::Host {
            0
        } else {
            self.stats.record(
                &record.capability_id,
                record.outcome == "ok",
                record.fuel_used,
                record.duration_us,
                record.duration_ms <= terms.latency_ms_max && !record.sla_missed,
            )
        };
        // Discovery filters by expected cost: refresh it as observations
        // accumulate (at 1, 2, 4, ... successes, then every 1,024).
        if record.outcome == "ok"
            && (successes.is_power_of_two() || successes.is_multiple_of(1_024))
        {
            self.refresh_facts(&record.capability_id);
        }
        self.metrics
            .invocation(&record.outcome, record.fuel_used, duration.as_secs_f64());
        let (output, _) = outcome?;
        Ok(InvokeResult {
            output,
            transaction_id: record.transaction_id.clone(),
            capability_id: capability.pinned_id.clone(),
            fuel_used: record.fuel_used,
            fuel_limit: record.fuel_limit,
            cost_micros: record.cost_micros,
            fee_micros: record.fee_micros,
            charged_micros: record.charged_micros,
            duration_ms: record.duration_ms,
            duration_us: record.duration_us,
            receipt: record
                .receipt
                .ok_or_else(|| Error::Internal("a call without its receipt".into()))?,
            contract_id: record.contract_id,
            sla_missed: record.sla_missed,
            retention: None,
        })
    }

    fn checked_output(
        &self,
        capability: &ListedCapability,
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
