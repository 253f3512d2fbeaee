//! A call's money: funds held before it (within the consumer's budget),
//! the metered cost plus the fee captured into escrow after it, the rest
//! released; a hold dropped without a capture is voided.

use super::books::{Allowance, Books};
use super::{Event, Result, Settlement};
use crate::ledger::{self, ESCROW, Op, org_account};
use crate::pricing;
use std::sync::{Arc, Mutex};

/// Funds held for one call. Dropping it without [`Settlement::capture`]
/// voids it.
pub struct Hold {
    pub(super) books: Arc<Mutex<Books>>,
    pub(super) transaction_id: String,
    pub(super) consumer_org_id: String,
    pub(super) amount: u64,
    pub(super) allowance_id: Option<String>,
    pub(super) settled: bool,
}

impl Hold {
    /// The amount held.
    pub fn amount(&self) -> u64 {
        self.amount
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if !self.settled {
            let mut books = self.books.lock().unwrap_or_else(|p| p.into_inner());
            books.drop_hold(&self.transaction_id, &self.consumer_org_id, self.amount);
        }
    }
}

/// A captured charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// The provider's part.
    pub cost_micros: u64,
    /// The marketplace's part.
    pub fee_micros: u64,
    /// What the consumer paid.
    pub charged_micros: u64,
    /// When the provider is paid, unless disputed.
    pub release_at_ms: u64,
    /// Alert percentages of the daily budget this charge crossed.
    pub alerts: Vec<u8>,
}

pub(super) fn hold_id(transaction_id: &str) -> String {
    format!("{transaction_id}:hold")
}

impl Settlement {
    /// Holds `amount` of `consumer`'s funds for a call, within its budget
    /// and, when the call spends through one, within `allowance`.
    pub fn hold(
        &self,
        consumer_org_id: &str,
        transaction_id: &str,
        amount: u64,
        now_ms: u64,
        allowance: Option<&Allowance>,
    ) -> Result<Hold> {
        let mut books = self.lock();
        books.roll_day(now_ms);
        books.check_budget(consumer_org_id, amount)?;
        if let Some(allowance) = allowance {
            books.check_allowance(allowance, amount)?;
        }
        let op = Op::Hold {
            id: hold_id(transaction_id),
            debit: org_account(consumer_org_id),
            credit: ESCROW.into(),
            amount,
            timeout_at_ms: now_ms.saturating_add(self.rules.hold_timeout_ms),
        };
        books.ledger.apply(&op)?;
        books.remember_hold(op);
        books.held_today(consumer_org_id, amount);
        if let Some(allowance) = allowance {
            books.held_through(&hold_id(transaction_id), &allowance.id, amount);
        }
        Ok(Hold {
            books: self.books.clone(),
            transaction_id: transaction_id.into(),
            consumer_org_id: consumer_org_id.into(),
            amount,
            allowance_id: allowance.map(|a| a.id.clone()),
            settled: false,
        })
    }

    /// Captures `cost` plus the fee from a hold into escrow, releasing the
    /// rest, and writes `writes` (the transaction record) in the same atomic
    /// step. The caller syncs before reporting it.
    pub fn capture(
        &self,
        mut hold: Hold,
        provider_org_id: &str,
        cost_micros: u64,
        now_ms: u64,
        release_at_ms: u64,
        record: (String, serde_json::Value),
    ) -> Result<Captured> {
        let fee_micros = pricing::fee_micros(cost_micros, self.rules.fee_bps);
        let mut captured = Captured {
            cost_micros,
            fee_micros,
            charged_micros: cost_micros.saturating_add(fee_micros),
            release_at_ms,
            alerts: Vec::new(),
        };
        let id = hold_id(&hold.transaction_id);
        let mut books = self.lock();
        let hold_op = books
            .hold_op(&id)
            .ok_or_else(|| ledger::Error::UnknownTransfer(id.clone()))?;
        // From here the hold is settled one way or the other: the in-memory
        // hold is replaced by the journaled pair [Hold, Post], or, if that
        // cannot be written, released.
        hold.settled = true;
        books.forget_hold(&id, &hold.consumer_org_id, hold.amount)?;
        let ops = vec![
            hold_op,
            Op::Post {
                id,
                amount: captured.charged_micros,
            },
        ];
        let event = Event::Capture {
            transaction_id: hold.transaction_id.clone(),
            consumer_org_id: hold.consumer_org_id.clone(),
            provider_org_id: provider_org_id.into(),
            cost_micros,
            fee_micros,
            release_at_ms,
            allowance_id: hold.allowance_id.clone(),
        };
        let spent_before = books.spent(&hold.consumer_org_id);
        self.journal(&mut books, event, ops, now_ms, Some(record))?;
        if let Some(budget) = books.budgets.get(&hold.consumer_org_id) {
            captured.alerts = budget.crossed(spent_before, books.spent(&hold.consumer_org_id));
        }
        Ok(captured)
    }
}
