//! Money at the market level: deposits, balances, budgets, the settlement
//! sweeper (escrow releases, stale holds), and disputes.

use super::{Error, Market, Result, now_ms};
use crate::identity::Org;
use crate::registry::{CapabilityId, violations};
use crate::sandbox::{CallOutput, Failure};
use crate::settlement::{Balance, Budget};
use crate::store::Tree;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Weak};
use utoipa::ToSchema;

/// A dispute and where it stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct DisputeRecord {
    /// When the consumer opened it, Unix milliseconds.
    pub opened_at_ms: u64,
    /// The consumer's reason.
    pub reason: String,
    /// What re-running the same input on the same component version found.
    pub rerun: Rerun,
    /// `refunded` (a provider fault, refunded at once), `pending_review`
    /// (waits for an admin), or the admin's decision: `refund`, `partial`, `reject`.
    pub status: String,
    /// Refunded to the consumer, in micros.
    pub refund_micros: u64,
    /// When it was decided.
    pub decided_at_ms: Option<u64>,
}

/// The re-run of a disputed call.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Rerun {
    /// `ok` or the failure code.
    pub outcome: String,
    /// Whether the output validates against the output schema.
    pub output_valid: bool,
    /// Whether the output is the one recorded (meaningful for deterministic
    /// capabilities).
    pub same_output: bool,
    /// The provider is at fault: a trap, an invalid output, or a different
    /// output from a capability that declared itself deterministic.
    pub provider_fault: bool,
}

/// An admin's decision on a dispute.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Refund everything.
    Refund,
    /// Refund part (`refund_micros`); the rest is paid out.
    Partial,
    /// Refund nothing; the escrow is paid out now.
    Reject,
}

const REASON_CHARS_MAX: usize = 2_000;

impl Market {
    pub(super) fn start_sweeper(self: &Arc<Self>) {
        let weak: Weak<Market> = Arc::downgrade(self);
        let tick = std::time::Duration::from_millis(self.config.settlement_tick_ms);
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(tick);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let purge_every = (3_600_000 / tick.as_millis().max(1)) as u64;
            let save_every = market_save_rounds(weak.upgrade().as_deref(), tick);
            let mut saved_at = None;
            for round in 0u64.. {
                interval.tick().await;
                let Some(market) = weak.upgrade() else { return };
                if let Err(e) = market.sweep().await {
                    tracing::error!(error = %e, "settlement sweep failed");
                }
                market.drain_call_index();
                if round % purge_every.max(1) == 0 {
                    if let Err(e) = market.purge_idempotency() {
                        tracing::error!(error = %e, "purging idempotency keys failed");
                    }
                    if let Err(e) = market.purge_shared() {
                        tracing::error!(error = %e, "purging shared front-door documents failed");
                    }
                }
                if let Some(every) = save_every
                    && round > 0
                    && round % every == 0
                {
                    saved_at = market.save_index_if_changed(saved_at).await;
                }
            }
        });
        *self.sweeper.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    /// Dumps the discovery index on the blocking pool if it changed since
    /// the dump of `saved_at` (a change count), returning the count saved.
    async fn save_index_if_changed(self: &Arc<Self>, saved_at: Option<u64>) -> Option<u64> {
        let changes = self.discovery.changes();
        if saved_at == Some(changes) {
            return saved_at;
        }
        let market = self.clone();
        let saved =
            tokio::task::spawn_blocking(move || market.discovery.save(&market.index_dir())).await;
        match saved {
            Ok(Ok(())) => Some(changes),
            Ok(Err(error)) => {
                tracing::warn!(%error, "discovery index not saved");
                saved_at
            }
            Err(_) => saved_at,
        }
    }

    /// Expires stale holds and pays out escrows whose window has closed.
    pub async fn sweep(&self) -> Result<()> {
        let now = now_ms();
        let expired = self.settlement.expire_holds(now).await?;
        if expired > 0 {
            tracing::warn!(expired, "expired stale holds");
        }
        for tx in self.settlement.release_due(now).await? {
            self.set_settlement_state(&tx, "released")?;
        }
        self.oauth_sweep(now)?;
        Ok(())
    }

    fn set_settlement_state(&self, transaction_id: &str, state: &str) -> Result<()> {
        if let Some(mut record) = self.invocation(transaction_id)? {
            record.settlement = state.into();
            // The money moved in the journal (synced); the record follows
            // within the background flush.
            self.store.put(Tree::Invocations, transaction_id, &record)?;
        }
        Ok(())
    }

    /// Credits an organisation (admin). `deposit_id` makes it idempotent:
    /// the same id never credits twice.
    pub async fn deposit(
        &self,
        org_id: &str,
        amount_micros: u64,
        deposit_id: &str,
    ) -> Result<Balance> {
        crate::identity::org(&self.store, org_id)?
            .ok_or_else(|| Error::NotFound(format!("organisation `{}`", super::echoed(org_id))))?;
        Ok(self
            .settlement
            .deposit(
                org_id,
                amount_micros,
                &format!("deposit:{org_id}:{deposit_id}"),
                now_ms(),
            )
            .await?)
    }

    /// An organisation's balances and budget.
    pub fn balance(&self, org: &Org) -> Balance {
        self.settlement.balance(&org.org_id, now_ms())
    }

    /// Sets the caller's budget.
    pub async fn set_budget(&self, org: &Org, budget: Budget) -> Result<Balance> {
        Ok(self
            .settlement
            .set_budget(&org.org_id, budget, now_ms())
            .await?)
    }

    /// The consumer disputes a call within its window, giving the input again
    /// (only its hash was kept). The same input runs again on the same
    /// component version: a provider fault refunds at once; otherwise the
    /// dispute waits for an admin.
    pub async fn dispute(
        &self,
        consumer: &Org,
        transaction_id: &str,
        input: serde_json::Value,
        reason: &str,
    ) -> Result<DisputeRecord> {
        let mut record = self
            .invocation(transaction_id)?
            .filter(|r| r.consumer_org_id == consumer.org_id)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "transaction `{}` of yours",
                    super::echoed(transaction_id)
                ))
            })?;
        if record.dispute.is_some() {
            return Err(Error::DisputeExists(transaction_id.into()));
        }
        let state = self
            .settlement
            .escrow_state(transaction_id)?
            .ok_or_else(|| crate::settlement::Error::NotInEscrow(transaction_id.into()))?;
        let input_text = input.to_string();
        if hex::encode(Sha256::digest(input_text.as_bytes())) != record.input_sha256 {
            return Err(Error::InvalidQuery(
                "this input is not the one the call received (its SHA-256 differs)".into(),
            ));
        }
        if reason.chars().count() > REASON_CHARS_MAX {
            return Err(Error::InvalidQuery(format!(
                "a reason is at most {REASON_CHARS_MAX} characters"
            )));
        }
        let rerun = self.rerun(&record, &input_text).await?;
        self.stats.dispute(&record.capability_id);
        let now = now_ms();
        self.settlement.freeze(transaction_id, now).await?;
        let mut dispute = DisputeRecord {
            opened_at_ms: now,
            reason: reason.into(),
            status: "pending_review".into(),
            refund_micros: 0,
            decided_at_ms: None,
            rerun,
        };
        if dispute.rerun.provider_fault {
            self.settlement
                .refund(transaction_id, state.charged_micros, now)
                .await?;
            dispute.status = "refunded".into();
            dispute.refund_micros = state.charged_micros;
            dispute.decided_at_ms = Some(now);
            record.settlement = "refunded".into();
        }
        record.dispute = Some(dispute.clone());
        self.store.put(Tree::Invocations, transaction_id, &record)?;
        self.store.sync().await?;
        Ok(dispute)
    }

    async fn rerun(&self, record: &super::InvocationRecord, input: &str) -> Result<Rerun> {
        let id = CapabilityId::parse(&record.capability_id)?;
        let listed = self
            .catalog
            .resolve(&id)
            .ok_or_else(|| Error::capability_not_found(&record.capability_id))?;
        let capability = listed
            .capability(&id.capability)
            .ok_or_else(|| Error::capability_not_found(&record.capability_id))?;
        let ran = self
            .sandbox
            .invoke(
                &listed.compiled,
                &capability.pinned_id,
                &capability.record.name,
                input,
                record.fuel_limit,
                None,
            )
            .await;
        let mut rerun = Rerun {
            outcome: "ok".into(),
            output_valid: false,
            same_output: false,
            provider_fault: false,
        };
        match ran.result {
            Ok(CallOutput::Output(text)) => {
                rerun.same_output = record.output_sha256.as_deref()
                    == Some(hex::encode(Sha256::digest(text.as_bytes())).as_str());
                rerun.output_valid = serde_json::from_str(&text)
                    .map(|v| violations(&capability.output_validator, &v).is_empty())
                    .unwrap_or(false);
                rerun.provider_fault =
                    !rerun.output_valid || (capability.record.deterministic && !rerun.same_output);
            }
            Ok(CallOutput::Refused(_)) => {
                rerun.outcome = "capability_failed".into();
                rerun.provider_fault = true;
            }
            Err(failure) => {
                rerun.outcome = failure.code().into();
                rerun.provider_fault =
                    !matches!(failure, Failure::FuelExhausted { .. } | Failure::Overloaded);
            }
        }
        Ok(rerun)
    }

    /// An admin decides a pending dispute.
    pub async fn decide(
        &self,
        transaction_id: &str,
        decision: Decision,
        refund_micros: Option<u64>,
    ) -> Result<DisputeRecord> {
        let mut record = self.invocation(transaction_id)?.ok_or_else(|| {
            Error::NotFound(format!("transaction `{}`", super::echoed(transaction_id)))
        })?;
        let mut dispute = record
            .dispute
            .clone()
            .filter(|d| d.status == "pending_review")
            .ok_or_else(|| Error::NoPendingDispute(transaction_id.into()))?;
        let state = self
            .settlement
            .escrow_state(transaction_id)?
            .ok_or_else(|| crate::settlement::Error::NotInEscrow(transaction_id.into()))?;
        let refund = match decision {
            Decision::Refund => state.charged_micros,
            Decision::Reject => 0,
            Decision::Partial => refund_micros.ok_or_else(|| {
                Error::InvalidQuery("a partial refund names refund_micros".into())
            })?,
        };
        let now = now_ms();
        self.settlement.refund(transaction_id, refund, now).await?;
        dispute.status = match decision {
            Decision::Refund => "refund",
            Decision::Partial => "partial",
            Decision::Reject => "reject",
        }
        .into();
        dispute.refund_micros = refund;
        dispute.decided_at_ms = Some(now);
        record.settlement = if refund > 0 { "refunded" } else { "released" }.into();
        record.dispute = Some(dispute.clone());
        self.store.put(Tree::Invocations, transaction_id, &record)?;
        self.store.sync().await?;
        Ok(dispute)
    }

    /// Where all the money is, and whether the books balance.
    pub fn audit(&self) -> crate::settlement::Audit {
        self.settlement.audit()
    }
}

/// Sweeper rounds between index saves (`None`: only at shutdown).
fn market_save_rounds(market: Option<&Market>, tick: std::time::Duration) -> Option<u64> {
    let every_ms = market?.config.index_save_ms;
    (every_ms > 0).then(|| (u128::from(every_ms) / tick.as_millis().max(1)).max(1) as u64)
}
