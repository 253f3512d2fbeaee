//! An organisation's standing (budget, balance) and the books' audit.

use super::books::{Balance, Budget};
use super::{Error, Event, Result, Settlement};
use crate::ledger::{self, ESCROW, FEES, Op, WORLD};
use crate::store::Tree;
use serde::{Deserialize, Serialize};

/// Where all the money is: deposits equal organisations + escrow + fees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Audit {
    /// Outside money deposited.
    pub deposited_micros: u64,
    /// Held by organisations (posted; holds included).
    pub organisations_micros: u64,
    /// Of that, held for calls in flight.
    pub pending_micros: u64,
    /// Paid for calls, waiting for the dispute window.
    pub escrow_micros: u64,
    /// The marketplace's fees.
    pub fees_micros: u64,
    /// Entries in the journal.
    pub journal_entries: u64,
    /// A broken invariant, if any (none in a healthy ledger).
    pub problem: Option<String>,
}

impl Settlement {
    /// The budget of an organisation (the default, empty, when it set none).
    pub fn budget(&self, org_id: &str) -> Budget {
        self.lock().budgets.get(org_id).cloned().unwrap_or_default()
    }

    /// The per-call limit of an organisation's budget, if it set one.
    pub fn per_call_cap(&self, org_id: &str) -> Option<u64> {
        self.lock()
            .budgets
            .get(org_id)
            .and_then(|b| b.per_call_max_micros)
    }

    /// What an allowance (an OAuth token's cap) has spent and holds.
    pub fn allowance_spend(&self, id: &str, now_ms: u64) -> super::AllowanceSpend {
        let mut books = self.lock();
        books.roll_day(now_ms);
        books.allowance_spend(id)
    }

    /// An organisation's balances and budget.
    pub fn balance(&self, org_id: &str, now_ms: u64) -> Balance {
        let mut books = self.lock();
        books.roll_day(now_ms);
        books.balance(org_id)
    }

    /// Sets an organisation's budget; durable before it returns. A higher
    /// budget lifts a pause.
    pub async fn set_budget(&self, org_id: &str, budget: Budget, now_ms: u64) -> Result<Balance> {
        budget.check().map_err(Error::InvalidAmount)?;
        self.store.put(Tree::Budgets, org_id, &budget)?;
        if self.turns.is_some() {
            // Every replica applies it at the same point of the journal.
            let event = Event::Budget {
                org_id: org_id.into(),
                budget: budget.clone(),
            };
            self.book(move |books, journal| journal.append(books, event, Vec::new(), now_ms, None))
                .await?;
        }
        self.store.sync().await?;
        let mut books = self.lock();
        books.roll_day(now_ms);
        books.set_budget(org_id, budget);
        Ok(books.balance(org_id))
    }

    /// Expires holds past their timeout (a call that never came back, or
    /// on a shared store a replica that died); returns how many.
    pub async fn expire_holds(&self, now_ms: u64) -> Result<usize> {
        if self.turns.is_none() {
            return Ok(self.lock().expire(now_ms));
        }
        self.book(move |books, journal| {
            let expired = books.holds_expired(now_ms);
            for (id, transaction_id) in &expired {
                let event = Event::Void {
                    transaction_id: transaction_id.clone(),
                };
                let ops = vec![Op::Expire {
                    id: id.clone(),
                    now_ms,
                }];
                journal.append(books, event, ops, now_ms, None)?;
            }
            Ok(expired.len())
        })
        .await
    }

    /// Where all the money is, and whether the books balance (on a shared
    /// journal, after applying what other replicas appended).
    pub fn audit(&self) -> Audit {
        if let Err(error) = self.catch_up() {
            tracing::warn!(%error, "the audit could not catch up with the shared journal");
        }
        let books = self.lock();
        let net = |a: &ledger::Account| {
            u64::try_from((i128::from(a.credits_posted) - i128::from(a.debits_posted)).max(0))
                .unwrap_or(u64::MAX)
        };
        let world = books.ledger.account(WORLD);
        let (mut organisations, mut pending) = (0u64, 0u64);
        for (id, account) in books.ledger.accounts() {
            if id.starts_with("org:") {
                organisations = organisations.saturating_add(net(account));
                pending = pending.saturating_add(account.debits_pending);
            }
        }
        Audit {
            deposited_micros: world.debits_posted.saturating_sub(world.credits_posted),
            organisations_micros: organisations,
            pending_micros: pending,
            escrow_micros: net(&books.ledger.account(ESCROW)),
            fees_micros: net(&books.ledger.account(FEES)),
            journal_entries: books.seq,
            problem: books.ledger.check_invariants().err(),
        }
    }
}
