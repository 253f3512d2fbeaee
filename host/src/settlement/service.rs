//! The settlement service: its rules, opening the books (the journal
//! replayed), journaling an entry, deposits, and waiting for the disk.

use super::books::{Balance, Books, Budget};
use super::shared::{Entries, Turns};
use super::{Error, Event, JournalEntry, Result};
use crate::ledger::{Op, WORLD, org_account};
use crate::store::{self, Store, Tree};
use std::sync::{Arc, Mutex};

/// The largest single deposit: a billion currency units, far from overflow.
pub const DEPOSIT_MICROS_MAX: u64 = 1_000_000_000_000_000;

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
    pub(super) store: Store,
    pub(super) books: Arc<Mutex<Books>>,
    pub(super) rules: Rules,
    /// Turns at the journal, when the store is shared with other replicas.
    pub(super) turns: Option<Arc<Turns>>,
}

/// Where an operation's entries go: the embedded journal at once, or a turn
/// at the shared one.
pub(super) enum Journal<'a> {
    Embedded(&'a Settlement),
    Shared(&'a mut Entries),
}

impl Journal<'_> {
    /// Checks, applies and journals an entry (see [`Settlement::journal`]).
    pub fn append(
        &mut self,
        books: &mut Books,
        event: Event,
        ops: Vec<Op>,
        now_ms: u64,
        record: Option<(String, serde_json::Value)>,
    ) -> Result<JournalEntry> {
        match self {
            Journal::Embedded(settlement) => settlement.journal(books, event, ops, now_ms, record),
            Journal::Shared(entries) => entries.journal(books, event, ops, now_ms, record),
        }
    }
}

impl Settlement {
    /// Opens the books: replays the journal and loads budgets.
    pub fn open(store: Store, rules: Rules, now_ms: u64) -> Result<Settlement> {
        let shared = store.is_shared();
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
            // the synced journal) comes back; a newer one is kept. (A shared
            // journal's turn writes it in the same transaction.)
            if let Some((key, record)) = &entry.record
                && !shared
                && !store.contains(Tree::Invocations, key)?
            {
                store.put(Tree::Invocations, key, record)?;
            }
        }
        for (org_id, budget) in store.scan::<Budget>(Tree::Budgets)? {
            books.budgets.insert(org_id, budget);
        }
        books.roll_day(now_ms);
        books.escrows_to_disk(&store)?;
        books
            .ledger
            .check_invariants()
            .map_err(|reason| Error::Corrupt {
                seq: books.seq,
                reason,
            })?;
        let books = Arc::new(Mutex::new(books));
        let turns = shared.then(|| Turns::start(store.clone(), books.clone()));
        Ok(Settlement {
            store,
            books,
            rules,
            turns,
        })
    }

    /// Runs `decide` on the books with the journal its entries go to: the
    /// embedded one under the books' lock, or a turn at the shared one
    /// (after the entries other replicas appended).
    pub(super) async fn book<R: Send + 'static>(
        &self,
        decide: impl FnOnce(&mut Books, &mut Journal<'_>) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        match &self.turns {
            Some(turns) => {
                turns
                    .turn(move |books, entries| decide(books, &mut Journal::Shared(entries)))
                    .await
            }
            None => decide(&mut self.lock(), &mut Journal::Embedded(self)),
        }
    }

    /// On a shared journal: applies what other replicas appended (the books
    /// otherwise follow within 100 ms). Nothing to do on the embedded one.
    pub fn catch_up(&self) -> Result<()> {
        match &self.turns {
            Some(turns) => turns.catch_up(),
            None => Ok(()),
        }
    }

    /// The rules in force.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies and journals an entry under the lock; returns it. The caller
    /// syncs the journal ([`Settlement::sync`]) before reporting it.
    /// `record` is the transaction record written with it.
    pub(super) fn journal(
        &self,
        books: &mut Books,
        event: Event,
        ops: Vec<Op>,
        now_ms: u64,
        record: Option<(String, serde_json::Value)>,
    ) -> Result<JournalEntry> {
        // Check first, write, then apply: the journal never holds an entry
        // the books refused, and the books never hold one the disk refused.
        let entry = books.next_entry(event, ops, now_ms, record)?;
        self.store
            .append_journal(&serde_json::to_vec(&entry).map_err(store::Error::from)?)?;
        if let Some((key, record)) = &entry.record {
            self.store.put(Tree::Invocations, key, record)?;
        }
        books.enter(&entry)?;
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
        let (org_id_owned, deposit_id) = (org_id.to_string(), deposit_id.to_string());
        self.book(move |books, journal| {
            let ops = vec![Op::Transfer {
                id: deposit_id,
                debit: WORLD.into(),
                credit: org_account(&org_id_owned),
                amount: amount_micros,
            }];
            let event = Event::Deposit {
                org_id: org_id_owned,
                amount_micros,
            };
            journal.append(books, event, ops, now_ms, None)
        })
        .await?;
        self.store
            .sync_journal()
            .await
            .map_err(Error::unconfirmed)?;
        Ok(self.balance(org_id, now_ms))
    }

    /// Waits until every journal entry made before the call is on disk.
    pub async fn sync(&self) -> Result<()> {
        self.store.sync_journal().await.map_err(Error::unconfirmed)
    }
}
