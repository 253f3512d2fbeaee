//! The books: the ledger plus what settlement needs to answer quickly
//! (the escrow index, daily spend, budgets). All in memory but the escrow
//! index, kept on the host's own disk (`escrows`).

use super::compact::TxKey;
pub use super::escrows::Escrowed;
use super::escrows::Escrows;
use super::{Error, Event, JournalEntry, Result};
use crate::ledger::{Ledger, Op, org_account};
use crate::store;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use utoipa::ToSchema;

const DAY_MS: u64 = 86_400_000;

/// A consumer's spending rules. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// The most one call may hold (and so cost), in micros; it also caps
    /// calls that give no `max_price_micros`.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 9_007_199_254_740_991_f64)]
    pub per_call_max_micros: Option<u64>,
    /// The most spent and held per UTC day; reaching it pauses calls.
    #[serde(default)]
    #[schema(minimum = 1, maximum = 9_007_199_254_740_991_f64)]
    pub daily_max_micros: Option<u64>,
    /// A call that may cost more than this waits for an approver
    /// (`GET /v1/approvals`), in micros.
    #[serde(default)]
    #[schema(maximum = 9_007_199_254_740_991_f64)]
    pub approval_above_micros: Option<u64>,
    /// Percentages of the daily limit that raise an alert when today's
    /// spending crosses them (for example `[50, 80, 100]`).
    #[serde(default)]
    pub alert_percents: Vec<u8>,
    /// Where alerts are also POSTed (JSON), with retries.
    #[serde(default)]
    pub webhook_url: Option<String>,
    /// Paused by a person: no call holds money until a budget without it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

impl Budget {
    pub(super) fn check(&self) -> std::result::Result<(), String> {
        let limits = [
            self.per_call_max_micros,
            self.daily_max_micros,
            self.approval_above_micros,
        ];
        if limits
            .iter()
            .flatten()
            .any(|m| *m > crate::pricing::MICROS_MAX)
        {
            return Err(format!(
                "a limit is at most {} micros",
                crate::pricing::MICROS_MAX
            ));
        }
        if self.per_call_max_micros == Some(0) || self.daily_max_micros == Some(0) {
            return Err("a limit of 0 would refuse every paid call; omit it instead".into());
        }
        if self.alert_percents.len() > 10 || self.alert_percents.iter().any(|p| *p == 0 || *p > 100)
        {
            return Err("alert_percents: at most 10 values from 1 to 100".into());
        }
        if !self.alert_percents.is_empty() && self.daily_max_micros.is_none() {
            return Err("alert_percents needs a daily_max_micros to be a percentage of".into());
        }
        if let Some(url) = &self.webhook_url
            && (url.len() > 2_048 || !(url.starts_with("http://") || url.starts_with("https://")))
        {
            return Err("webhook_url is an http(s) URL of at most 2048 characters".into());
        }
        Ok(())
    }

    /// The alert percentages crossed when today's spending moves from
    /// `before` to `after`.
    pub fn crossed(&self, before: u64, after: u64) -> Vec<u8> {
        let Some(limit) = self.daily_max_micros else {
            return Vec::new();
        };
        let mut crossed: Vec<u8> = self
            .alert_percents
            .iter()
            .copied()
            .filter(|p| {
                let threshold = u128::from(limit) * u128::from(*p) / 100;
                u128::from(before) < threshold && u128::from(after) >= threshold
            })
            .collect();
        crossed.sort_unstable();
        crossed.dedup();
        crossed
    }
}

/// A spending allowance inside an organisation's budget: what one OAuth
/// access token may spend. Checked at every hold like the budget, after it;
/// its spending is counted from the captures that name it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allowance {
    /// What names it in the journal (the token's grant id).
    pub id: String,
    /// The most one call may hold, in micros.
    pub per_call_max_micros: Option<u64>,
    /// The most spent and held per UTC day, in micros.
    pub daily_max_micros: Option<u64>,
}

/// What an allowance has spent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AllowanceSpend {
    /// Captured today (UTC).
    pub today_micros: u64,
    /// Held for its calls in flight.
    pub held_micros: u64,
    /// Captured since it was granted, refunds deducted.
    pub total_micros: u64,
}

/// An organisation's money, as it sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Balance {
    /// The organisation.
    pub org_id: String,
    /// What it can spend now.
    pub available_micros: u64,
    /// Held for its calls in flight.
    pub pending_micros: u64,
    /// Paid by it, waiting in escrow for the dispute window.
    pub escrowed_out_micros: u64,
    /// Owed to it as a provider, waiting in escrow.
    pub escrowed_in_micros: u64,
    /// Captured today (UTC) for its calls.
    pub spent_today_micros: u64,
    /// Its budget.
    pub budget: Budget,
    /// Whether its calls are paused (its daily budget reached, or paused in
    /// its budget by a person).
    pub paused: bool,
}

/// Where a transaction's money stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EscrowState {
    /// Charged to the consumer, in escrow.
    pub charged_micros: u64,
    /// Disputed: waits for a decision instead of its window.
    pub disputed: bool,
    /// When it goes to the provider unless disputed.
    pub release_at_ms: u64,
}

#[derive(Default)]
pub struct Books {
    pub ledger: Ledger,
    pub seq: u64,
    pub budgets: HashMap<String, Budget>,
    /// Every paid call's escrow until its window closes.
    escrows: Escrows,
    escrow_out: HashMap<String, u64>,
    escrow_in: HashMap<String, u64>,
    /// Hold operations of calls in flight, journaled with their capture.
    holds: HashMap<String, Op>,
    held: HashMap<String, u64>,
    day: u64,
    spent_today: HashMap<String, u64>,
    paused: HashSet<String>,
    /// Disputed escrows: not released when their window closes.
    frozen: HashSet<TxKey>,
    /// Allowances: captured today, held now, captured in all (refunds
    /// deducted), and the allowance each hold in flight spends from.
    allowance_today: HashMap<String, u64>,
    allowance_held: HashMap<String, u64>,
    allowance_total: HashMap<String, u64>,
    hold_allowance: HashMap<String, (String, u64)>,
}

fn bump(map: &mut HashMap<String, u64>, key: &str, delta: i128) {
    let entry = map.entry(key.to_string()).or_default();
    *entry = u64::try_from((i128::from(*entry) + delta).max(0)).unwrap_or(u64::MAX);
    if *entry == 0 {
        map.remove(key);
    }
}

impl Books {
    /// The next journal entry, its operations checked against the books
    /// (not yet applied: see [`Books::enter`]).
    pub fn next_entry(
        &self,
        event: Event,
        ops: Vec<Op>,
        now_ms: u64,
        record: Option<(String, serde_json::Value)>,
    ) -> Result<JournalEntry> {
        self.ledger.check_all(&ops)?;
        Ok(JournalEntry {
            seq: self.seq + 1,
            at_ms: now_ms,
            event,
            ops,
            record,
        })
    }

    /// Applies an entry made by [`Books::next_entry`] once it is written.
    pub fn enter(&mut self, entry: &JournalEntry) -> Result<()> {
        self.ledger.apply_all(&entry.ops)?;
        self.seq = entry.seq;
        self.note(entry).map_err(|error| {
            // The entry is in the journal: a restart rebuilds the index
            // from it.
            tracing::error!(%error, seq = entry.seq, "the escrow index did not take a journal entry");
            Error::Store(error)
        })
    }

    /// Applies a journal entry read back from disk.
    pub fn replay(&mut self, entry: &JournalEntry) -> std::result::Result<(), String> {
        self.ledger
            .apply_all(&entry.ops)
            .map_err(|e| e.to_string())?;
        self.seq = entry.seq;
        self.note(entry).map_err(|e| e.to_string())
    }

    /// Moves the escrow index of books just replayed to two derived trees
    /// of the store, rewritten from it (where the store has none, it stays
    /// in memory).
    pub fn escrows_to_disk(&mut self, store: &store::Store) -> store::Result<()> {
        if let (Some(by_tx), Some(due)) = (
            store.derived_tree("escrow"),
            store.derived_tree("escrow-due"),
        ) {
            self.escrows.move_to_disk(by_tx, due)?;
        }
        Ok(())
    }

    /// Whether the escrow index lives on disk.
    #[cfg(test)]
    pub fn escrows_on_disk(&self) -> bool {
        self.escrows.on_disk()
    }

    /// Updates the indexes after an entry applied.
    fn note(&mut self, entry: &JournalEntry) -> store::Result<()> {
        // An entry of a later day starts that day first, so every escrow
        // counts toward today's spending exactly when its day is today.
        if entry.at_ms / DAY_MS > self.day {
            self.roll_day(entry.at_ms);
        }
        // A call's transfers (its hold, then fees, payouts and refunds)
        // have ids made from its transaction id, and the escrow index
        // refuses a second release or refund: once final, the ledger need
        // not remember them. A deposit's id is the depositor's idempotency
        // key and stays known.
        if !matches!(entry.event, Event::Deposit { .. }) {
            for op in &entry.ops {
                let id = match op {
                    Op::Transfer { id, .. }
                    | Op::Hold { id, .. }
                    | Op::Post { id, .. }
                    | Op::Void { id }
                    | Op::Expire { id, .. } => id,
                };
                // Still pending (never, for the entries settlement writes)
                // or already forgotten: nothing to do.
                let _ = self.ledger.forget_settled(id);
            }
        }
        match &entry.event {
            Event::Deposit { .. } => {}
            Event::Hold {
                consumer_org_id,
                allowance_id,
                ..
            } => {
                if let Some(op @ Op::Hold { id, amount, .. }) = entry.ops.first() {
                    let (id, amount) = (id.clone(), *amount);
                    self.remember_hold(op.clone());
                    self.held_today(consumer_org_id, amount);
                    if let Some(allowance) = allowance_id {
                        self.held_through(&id, allowance, amount);
                    }
                }
            }
            Event::Void { transaction_id } => {
                self.settle_hold(&format!("{transaction_id}:hold"));
            }
            Event::Budget { org_id, budget } => {
                self.set_budget(org_id, budget.clone());
            }
            Event::Dispute { transaction_id } => {
                self.frozen.insert(TxKey::of(transaction_id));
            }
            Event::Capture {
                transaction_id,
                consumer_org_id,
                provider_org_id,
                cost_micros,
                fee_micros,
                release_at_ms,
                allowance_id,
            } => {
                // A journaled hold (shared store) is settled by its capture.
                self.settle_hold(&format!("{transaction_id}:hold"));
                let escrowed = Escrowed {
                    consumer_org_id: consumer_org_id.as_str().into(),
                    provider_org_id: provider_org_id.as_str().into(),
                    cost_micros: *cost_micros,
                    fee_micros: *fee_micros,
                    release_at_ms: *release_at_ms,
                    allowance_id: allowance_id.as_deref().map(Into::into),
                    day: entry.at_ms / DAY_MS,
                };
                let charged = i128::from(escrowed.charged());
                if let Some(allowance) = allowance_id {
                    bump(&mut self.allowance_total, allowance, charged);
                    if escrowed.day == self.day {
                        bump(&mut self.allowance_today, allowance, charged);
                    }
                }
                bump(&mut self.escrow_out, consumer_org_id, charged);
                bump(
                    &mut self.escrow_in,
                    provider_org_id,
                    i128::from(*cost_micros),
                );
                if escrowed.day == self.day {
                    bump(&mut self.spent_today, consumer_org_id, charged);
                }
                self.escrows.insert(TxKey::of(transaction_id), escrowed)?;
            }
            Event::Release { transaction_id } | Event::Refund { transaction_id, .. } => {
                let refund = match &entry.event {
                    Event::Refund { refund_micros, .. } => *refund_micros,
                    _ => 0,
                };
                let key = TxKey::of(transaction_id);
                self.frozen.remove(&key);
                if let Some(e) = self.escrows.remove(&key)? {
                    bump(
                        &mut self.escrow_out,
                        &e.consumer_org_id,
                        -i128::from(e.charged()),
                    );
                    bump(
                        &mut self.escrow_in,
                        &e.provider_org_id,
                        -i128::from(e.cost_micros),
                    );
                    if e.day == self.day {
                        bump(
                            &mut self.spent_today,
                            &e.consumer_org_id,
                            -i128::from(refund),
                        );
                    }
                    if let Some(allowance) = &e.allowance_id {
                        bump(&mut self.allowance_total, allowance, -i128::from(refund));
                        if e.day == self.day {
                            bump(&mut self.allowance_today, allowance, -i128::from(refund));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Starts a new UTC day, if `now_ms` is in a later one: today's
    /// spending starts at zero, pauses lift. Days only move forward (two
    /// clocks a moment apart around midnight never flip it back), and an
    /// entry of a later day starts that day before it is noted, so no escrow
    /// of the new day exists yet to count.
    pub fn roll_day(&mut self, now_ms: u64) {
        let day = now_ms / DAY_MS;
        if day > self.day {
            self.day = day;
            self.spent_today.clear();
            self.allowance_today.clear();
            self.paused.clear();
            self.escrows.forget_unheld_names();
        }
    }

    /// A new budget is a fresh decision: today's pause lifts (and comes back
    /// at the next call if the new budget is exhausted too).
    pub fn set_budget(&mut self, org_id: &str, budget: Budget) {
        self.budgets.insert(org_id.to_string(), budget);
        self.paused.remove(org_id);
    }

    pub fn check_budget(&mut self, org_id: &str, amount: u64) -> Result<()> {
        let Some(budget) = self.budgets.get(org_id) else {
            return Ok(());
        };
        if budget.paused {
            return Err(Error::Paused);
        }
        if let Some(limit) = budget.per_call_max_micros
            && amount > limit
        {
            return Err(Error::OverPerCallLimit { amount, limit });
        }
        if let Some(limit) = budget.daily_max_micros {
            let spent = self.spent_today.get(org_id).copied().unwrap_or(0)
                + self.held.get(org_id).copied().unwrap_or(0);
            if self.paused.contains(org_id) || spent.saturating_add(amount) > limit {
                let newly_paused = self.paused.insert(org_id.to_string());
                return Err(Error::BudgetExhausted {
                    limit,
                    spent,
                    newly_paused,
                });
            }
        }
        Ok(())
    }

    /// Whether `amount` may be held through `allowance` (after the
    /// organisation's own budget said yes).
    pub fn check_allowance(&self, allowance: &Allowance, amount: u64) -> Result<()> {
        if let Some(limit) = allowance.per_call_max_micros
            && amount > limit
        {
            return Err(Error::OverAllowancePerCall { amount, limit });
        }
        if let Some(limit) = allowance.daily_max_micros {
            let spend = self.allowance_spend(&allowance.id);
            let spent = spend.today_micros.saturating_add(spend.held_micros);
            if spent.saturating_add(amount) > limit {
                return Err(Error::AllowanceExhausted { limit, spent });
            }
        }
        Ok(())
    }

    /// What an allowance has spent and holds.
    pub fn allowance_spend(&self, id: &str) -> AllowanceSpend {
        AllowanceSpend {
            today_micros: self.allowance_today.get(id).copied().unwrap_or(0),
            held_micros: self.allowance_held.get(id).copied().unwrap_or(0),
            total_micros: self.allowance_total.get(id).copied().unwrap_or(0),
        }
    }

    /// Counts a hold against the allowance it spends from.
    pub fn held_through(&mut self, hold_id: &str, allowance_id: &str, amount: u64) {
        bump(&mut self.allowance_held, allowance_id, i128::from(amount));
        self.hold_allowance
            .insert(hold_id.to_string(), (allowance_id.to_string(), amount));
    }

    /// A hold no longer in flight no longer counts against its allowance.
    fn release_allowance(&mut self, hold_id: &str) {
        if let Some((allowance, amount)) = self.hold_allowance.remove(hold_id) {
            bump(&mut self.allowance_held, &allowance, -i128::from(amount));
        }
    }

    /// Today's captured spending of an organisation.
    pub fn spent(&self, org_id: &str) -> u64 {
        self.spent_today.get(org_id).copied().unwrap_or(0)
    }

    pub fn held_today(&mut self, org_id: &str, amount: u64) {
        bump(&mut self.held, org_id, i128::from(amount));
    }

    /// Records the hold operation of a call in flight.
    pub fn remember_hold(&mut self, op: Op) {
        if let Op::Hold { id, .. } = &op {
            self.holds.insert(id.clone(), op);
        }
    }

    pub fn hold_op(&self, id: &str) -> Option<Op> {
        self.holds.get(id).cloned()
    }

    /// Undoes an in-memory hold so its capture can journal it as
    /// `[Hold, Post]`.
    pub fn forget_hold(&mut self, id: &str, org_id: &str, amount: u64) -> Result<()> {
        self.ledger.forget_pending(id)?;
        self.holds.remove(id);
        self.release_allowance(id);
        bump(&mut self.held, org_id, -i128::from(amount));
        Ok(())
    }

    /// Voids the hold of a call that ended without a capture.
    pub fn drop_hold(&mut self, transaction_id: &str, org_id: &str, amount: u64) {
        let id = format!("{transaction_id}:hold");
        if self.holds.remove(&id).is_some() {
            // Already expired holds are gone from `holds`; nothing to undo.
            let _ = self.ledger.forget_pending(&id);
            self.release_allowance(&id);
            bump(&mut self.held, org_id, -i128::from(amount));
        }
    }

    /// Forgets a journaled hold that its capture or void settled (the ledger
    /// already did): its room under the budget and allowance comes back.
    fn settle_hold(&mut self, id: &str) {
        if let Some(Op::Hold { debit, amount, .. }) = self.holds.remove(id) {
            self.release_allowance(id);
            let org = debit.strip_prefix("org:").unwrap_or(&debit).to_string();
            bump(&mut self.held, &org, -i128::from(amount));
        }
    }

    /// Journaled holds past their timeout (on a shared store, expired by a
    /// journal entry every replica applies).
    pub fn holds_expired(&self, now_ms: u64) -> Vec<(String, String)> {
        self.ledger
            .expired(now_ms)
            .into_iter()
            .filter_map(|id| {
                self.holds.get(&id)?;
                let tx = id.strip_suffix(":hold")?.to_string();
                Some((id, tx))
            })
            .collect()
    }

    /// Whether a hold is pending (not captured, voided or expired).
    pub fn holds_pending(&self, id: &str) -> bool {
        self.holds.contains_key(id)
    }

    /// Expires holds past their timeout; returns how many.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let expired = self.ledger.expired(now_ms);
        for id in &expired {
            if let Some(Op::Hold { debit, amount, .. }) = self.holds.remove(id) {
                let _ = self.ledger.forget_pending(id);
                self.release_allowance(id);
                let org = debit.strip_prefix("org:").unwrap_or(&debit).to_string();
                bump(&mut self.held, &org, -i128::from(amount));
            }
        }
        expired.len()
    }

    /// Up to `limit` escrows whose window has closed at `now_ms`, but the
    /// disputed.
    pub fn due(&self, now_ms: u64, limit: usize) -> store::Result<Vec<(String, Escrowed)>> {
        Ok(self
            .escrows
            .due(now_ms, &self.frozen, limit)?
            .into_iter()
            .map(|(tx, e)| (tx.id(), e))
            .collect())
    }

    pub fn escrowed(&self, transaction_id: &str) -> store::Result<Option<Escrowed>> {
        self.escrows.get(&TxKey::of(transaction_id))
    }

    pub fn state_of(&self, transaction_id: &str) -> store::Result<Option<EscrowState>> {
        let key = TxKey::of(transaction_id);
        Ok(self.escrows.get(&key)?.map(|e| EscrowState {
            charged_micros: e.charged(),
            disputed: self.frozen.contains(&key),
            release_at_ms: e.release_at_ms,
        }))
    }

    pub fn balance(&self, org_id: &str) -> Balance {
        let account = self.ledger.account(&org_account(org_id));
        Balance {
            org_id: org_id.into(),
            available_micros: u64::try_from(account.available().max(0)).unwrap_or(0),
            pending_micros: account.debits_pending,
            escrowed_out_micros: self.escrow_out.get(org_id).copied().unwrap_or(0),
            escrowed_in_micros: self.escrow_in.get(org_id).copied().unwrap_or(0),
            spent_today_micros: self.spent_today.get(org_id).copied().unwrap_or(0),
            budget: self.budgets.get(org_id).cloned().unwrap_or_default(),
            paused: self.paused.contains(org_id)
                || self.budgets.get(org_id).is_some_and(|b| b.paused),
        }
    }
}
