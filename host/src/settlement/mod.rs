//! Settlement: the ledger made durable, and the money rules of a call.
//!
//! Owns: the journal of ledger operations (the only way money moves, each
//! entry on disk before the response that reports it, group-committed),
//! holds for calls in flight, capture (cost + marketplace fee, the rest
//! released), escrow until the dispute window closes, releases to providers,
//! refunds, deposits, budgets (per-call and daily limits, automatic pause),
//! and balances.
//!
//! Does not know about: HTTP, the sandbox, or what a capability is. The
//! market asks for a hold before a call and captures or drops it after.
//!
//! Invariants:
//! - The in-memory books are the journal replayed: at start every entry is
//!   applied in order; an entry that does not apply stops the start.
//! - A hold lives in memory only: it reserves funds against concurrent calls
//!   and is journaled together with its capture (`[Hold, Post]` in one
//!   entry), so a crash can never leave a hold pending. A hold that is
//!   dropped without a capture (a failed or cancelled call) is voided.
//! - Journal entries are appended to the journal file under the books' lock,
//!   so their order on disk is the order they were applied in, and a sync
//!   (one group-committed `fdatasync`) covers every entry applied before it.
//!   A capture's transaction record travels inside its entry: written to the
//!   store unsynced, and restored from the journal at start if a crash lost it.
//! - Free calls (price and rate zero) never reach this module.

mod books;
mod escrow;

pub use books::{Balance, Budget, EscrowState};

use crate::ledger::{self, ESCROW, FEES, Op, WORLD, org_account};
use crate::pricing;
use crate::store::{self, Store, Tree};
use books::Books;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// The settlement result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why money did not move.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ledger refused (insufficient funds, double settlement, ...).
    #[error(transparent)]
    Ledger(#[from] ledger::Error),
    /// The hold is above the consumer's per-call limit.
    #[error("this call may cost up to {amount} micros; the per-call budget is {limit}")]
    OverPerCallLimit {
        /// The hold.
        amount: u64,
        /// The limit.
        limit: u64,
    },
    /// The daily budget cannot cover the hold: calls are paused until the
    /// next UTC day or a higher budget.
    #[error(
        "the daily budget of {limit} micros is exhausted ({spent} spent or held today); calls are \
         paused until 00:00 UTC or a higher budget"
    )]
    BudgetExhausted {
        /// The daily limit.
        limit: u64,
        /// Spent and held today.
        spent: u64,
        /// This refusal paused the consumer (the first of the day).
        newly_paused: bool,
    },
    /// An amount that makes no sense (zero deposit, above the limit).
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    /// No such transaction in escrow.
    #[error("transaction {0} is not in escrow")]
    NotInEscrow(String),
    /// The journal on disk does not replay.
    #[error("the ledger journal does not replay at entry {seq}: {reason}")]
    Corrupt {
        /// The entry.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

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

/// The largest single deposit: a billion currency units, far from overflow.
pub const DEPOSIT_MICROS_MAX: u64 = 1_000_000_000_000_000;

/// What one journal entry records, beside its ledger operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// Outside money credited to an organisation.
    Deposit {
        /// The organisation.
        org_id: String,
        /// Micros.
        amount_micros: u64,
    },
    /// A call's charge captured into escrow.
    Capture {
        /// Transaction.
        transaction_id: String,
        /// Payer.
        consumer_org_id: String,
        /// Payee.
        provider_org_id: String,
        /// The provider's part.
        cost_micros: u64,
        /// The marketplace's part.
        fee_micros: u64,
        /// When the dispute window closes.
        release_at_ms: u64,
    },
    /// Escrow paid out to the provider and the fee account.
    Release {
        /// Transaction.
        transaction_id: String,
    },
    /// The consumer disputed: the escrow stays until a decision.
    Dispute {
        /// Transaction.
        transaction_id: String,
    },
    /// Escrow (or part of it) returned to the consumer; the rest paid out.
    Refund {
        /// Transaction.
        transaction_id: String,
        /// Returned to the consumer.
        refund_micros: u64,
    },
}

/// One journal entry: ledger operations applied atomically, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Position in the journal.
    pub seq: u64,
    /// When, Unix milliseconds.
    pub at_ms: u64,
    /// Why.
    pub event: Event,
    /// The ledger operations, applied all or none.
    pub ops: Vec<Op>,
    /// The transaction record written with it (a capture's), restored into
    /// the store at start if the store lost it in a crash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<(String, serde_json::Value)>,
}

/// The settlement settings.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Marketplace fee in basis points of the cost.
    pub fee_bps: u64,
    /// How long captured funds wait in escrow for a dispute.
    pub dispute_window_ms: u64,
    /// How long a hold may stay pending before it is expired.
    pub hold_timeout_ms: u64,
}

/// The settlement service.
pub struct Settlement {
    store: Store,
    books: Arc<Mutex<Books>>,
    rules: Rules,
}

/// Funds held for one call. Dropping it without [`Settlement::capture`]
/// voids it.
pub struct Hold {
    books: Arc<Mutex<Books>>,
    transaction_id: String,
    consumer_org_id: String,
    amount: u64,
    settled: bool,
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

fn hold_id(transaction_id: &str) -> String {
    format!("{transaction_id}:hold")
}

impl Settlement {
    /// Opens the books: replays the journal and loads budgets.
    pub fn open(store: Store, rules: Rules, now_ms: u64) -> Result<Settlement> {
        let mut books = Books::default();
        for (n, bytes) in store.take_journal().into_iter().enumerate() {
            let corrupt = |reason: String| Error::Corrupt {
                seq: n as u64 + 1,
                reason,
            };
            let entry: JournalEntry =
                serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
            books.replay(&entry).map_err(corrupt)?;
            // A record the store lost in a crash (written unsynced beside
            // the synced journal) comes back; a newer one is kept.
            if let Some((key, record)) = &entry.record
                && !store.contains(Tree::Invocations, key)?
            {
                store.put(Tree::Invocations, key, record)?;
            }
        }
        for (org_id, budget) in store.scan::<Budget>(Tree::Budgets)? {
            books.budgets.insert(org_id, budget);
        }
        books.roll_day(now_ms);
        books
            .ledger
            .check_invariants()
            .map_err(|reason| Error::Corrupt {
                seq: books.seq,
                reason,
            })?;
        Ok(Settlement {
            store,
            books: Arc::new(Mutex::new(books)),
            rules,
        })
    }

    /// The rules in force.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies and journals an entry under the lock; returns it. The caller
    /// syncs the journal ([`Settlement::sync`]) before reporting it.
    /// `record` is the transaction record written with it.
    fn journal(
        &self,
        books: &mut Books,
        event: Event,
        ops: Vec<Op>,
        now_ms: u64,
        record: Option<(String, serde_json::Value)>,
    ) -> Result<JournalEntry> {
        let entry = JournalEntry {
            seq: books.seq + 1,
            at_ms: now_ms,
            event,
            ops,
            record,
        };
        // Check first, write, then apply: the journal never holds an entry
        // the books refused, and the books never hold one the disk refused.
        books.ledger.check_all(&entry.ops)?;
        self.store
            .append_journal(&serde_json::to_vec(&entry).map_err(store::Error::from)?)?;
        if let Some((key, record)) = &entry.record {
            self.store.put(Tree::Invocations, key, record)?;
        }
        books.ledger.apply_all(&entry.ops)?;
        books.seq = entry.seq;
        books.note(&entry);
        Ok(entry)
    }

    /// Credits an organisation with outside money; durable before it returns.
    pub async fn deposit(
        &self,
        org_id: &str,
        amount_micros: u64,
        deposit_id: &str,
        now_ms: u64,
    ) -> Result<Balance> {
        if amount_micros == 0 || amount_micros > DEPOSIT_MICROS_MAX {
            return Err(Error::InvalidAmount(format!(
                "a deposit is 1 to {DEPOSIT_MICROS_MAX} micros"
            )));
        }
        {
            let mut books = self.lock();
            let ops = vec![Op::Transfer {
                id: deposit_id.into(),
                debit: WORLD.into(),
                credit: org_account(org_id),
                amount: amount_micros,
            }];
            let event = Event::Deposit {
                org_id: org_id.into(),
                amount_micros,
            };
            self.journal(&mut books, event, ops, now_ms, None)?;
        }
        self.store.sync_journal().await?;
        Ok(self.balance(org_id, now_ms))
    }

    /// Holds `amount` of `consumer`'s funds for a call, within its budget.
    pub fn hold(
        &self,
        consumer_org_id: &str,
        transaction_id: &str,
        amount: u64,
        now_ms: u64,
    ) -> Result<Hold> {
        let mut books = self.lock();
        books.roll_day(now_ms);
        books.check_budget(consumer_org_id, amount)?;
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
        Ok(Hold {
            books: self.books.clone(),
            transaction_id: transaction_id.into(),
            consumer_org_id: consumer_org_id.into(),
            amount,
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
        };
        let spent_before = books.spent(&hold.consumer_org_id);
        self.journal(&mut books, event, ops, now_ms, Some(record))?;
        if let Some(budget) = books.budgets.get(&hold.consumer_org_id) {
            captured.alerts = budget.crossed(spent_before, books.spent(&hold.consumer_org_id));
        }
        Ok(captured)
    }

    /// The budget of an organisation (the default, empty, when it set none).
    pub fn budget(&self, org_id: &str) -> Budget {
        self.lock().budgets.get(org_id).cloned().unwrap_or_default()
    }

    /// Waits until every journal entry made before the call is on disk.
    pub async fn sync(&self) -> Result<()> {
        Ok(self.store.sync_journal().await?)
    }

    /// The per-call limit of an organisation's budget, if it set one.
    pub fn per_call_cap(&self, org_id: &str) -> Option<u64> {
        self.lock()
            .budgets
            .get(org_id)
            .and_then(|b| b.per_call_max_micros)
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
        self.store.sync().await?;
        let mut books = self.lock();
        books.roll_day(now_ms);
        books.set_budget(org_id, budget);
        Ok(books.balance(org_id))
    }

    /// Expires holds past their timeout (a call that never came back).
    pub fn expire_holds(&self, now_ms: u64) -> usize {
        self.lock().expire(now_ms)
    }

    /// Where all the money is, and whether the books balance.
    pub fn audit(&self) -> Audit {
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
