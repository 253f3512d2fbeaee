//! The books on a shared store (PostgreSQL, many replicas): every entry is
//! appended in a turn at the one journal, after the entries the other
//! replicas appended, which this replica applies first. So every replica's
//! books are the same sequence of entries, and a decision (a hold against a
//! balance and a budget, a capture of a pending hold) is made on all of it.
//!
//! Holds are journaled here (on the embedded store they live in memory):
//! another replica must see them to not spend the same money, and a replica
//! that dies leaves them in the journal, where any replica's sweeper expires
//! them after their timeout.

use super::books::Books;
use super::{Error, Event, JournalEntry, Result};
use crate::ledger::Op;
use crate::store::{Store, Tree};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

/// How often a replica reads the entries the others appended, so that its
/// balances and audit are at most this far behind between its own turns.
const CATCH_UP_EVERY: Duration = Duration::from_millis(100);

/// The entries a turn appends, and the records written with them.
#[derive(Default)]
pub(super) struct Entries {
    entries: Vec<JournalEntry>,
    rows: Vec<(Tree, String, Vec<u8>)>,
}

impl Entries {
    /// Checks and applies an entry, and keeps it for the turn to append.
    pub fn journal(
        &mut self,
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
        books.ledger.check_all(&entry.ops)?;
        if let Some((key, record)) = &entry.record {
            let bytes = serde_json::to_vec(record).map_err(crate::store::Error::from)?;
            self.rows.push((Tree::Invocations, key.clone(), bytes));
        }
        books.ledger.apply_all(&entry.ops)?;
        books.seq = entry.seq;
        books.note(&entry);
        self.entries.push(entry.clone());
        Ok(entry)
    }
}

/// The shared journal's turns, for one replica.
pub(super) struct Turns {
    store: Store,
    books: Arc<Mutex<Books>>,
    /// One turn (or catch-up) of this replica at a time.
    gate: Mutex<()>,
    /// Set when a turn's outcome is unknown (the database went away while
    /// it committed): the books are read again from the journal first.
    stale: AtomicBool,
}

impl Turns {
    /// Starts following the journal for `books` (already replayed to the
    /// journal read at open).
    pub fn start(store: Store, books: Arc<Mutex<Books>>) -> Arc<Turns> {
        let turns = Arc::new(Turns {
            store,
            books,
            gate: Mutex::new(()),
            stale: AtomicBool::new(false),
        });
        let weak: Weak<Turns> = Arc::downgrade(&turns);
        let _ = std::thread::Builder::new()
            .name("mercato-books".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(CATCH_UP_EVERY);
                    let Some(turns) = weak.upgrade() else { return };
                    if let Err(error) = turns.catch_up() {
                        tracing::debug!(%error, "catching up with the shared journal");
                    }
                }
            });
        turns
    }

    fn books(&self) -> MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn gate(&self) -> MutexGuard<'_, ()> {
        self.gate.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies the entries other replicas appended since this one's last.
    pub fn catch_up(&self) -> Result<()> {
        let _gate = self.gate();
        self.reload_if_stale()?;
        let after = self.books().seq;
        let read = self.store.journal_after(after)?;
        self.apply(&mut self.books(), read)
    }

    /// One turn: catch up, `decide` (which journals through [`Entries`]),
    /// append what it journaled. Blocks for two round trips to the database
    /// plus the wait for the lock.
    pub fn turn<R>(&self, decide: impl FnOnce(&mut Books, &mut Entries) -> Result<R>) -> Result<R> {
        let _gate = self.gate();
        self.reload_if_stale()?;
        let after = self.books().seq;
        let (turn, read) = self.store.begin_turn(after)?;
        let mut entries = Entries::default();
        let decided = {
            let mut books = self.books();
            self.apply(&mut books, read)?;
            debug_assert_eq!(books.seq + 1, turn.first());
            decide(&mut books, &mut entries)
        };
        let appended = !entries.entries.is_empty();
        let records = entries
            .entries
            .iter()
            .map(serde_json::to_vec)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(crate::store::Error::from)?;
        match turn.commit(records, entries.rows) {
            Ok(()) => decided,
            Err(error) => {
                if appended {
                    // The books hold entries the journal may not: read it
                    // again before the next decision.
                    self.stale.store(true, Ordering::Release);
                    Err(Error::unconfirmed(error))
                } else {
                    Err(error.into())
                }
            }
        }
    }

    fn apply(&self, books: &mut Books, read: Vec<(u64, Vec<u8>)>) -> Result<()> {
        for (seq, bytes) in read {
            let applied = serde_json::from_slice::<JournalEntry>(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|entry| {
                    if entry.seq != seq || seq != books.seq + 1 {
                        return Err(format!(
                            "entry {} read as {seq} after {}",
                            entry.seq, books.seq
                        ));
                    }
                    books.replay(&entry)
                });
            if let Err(reason) = applied {
                self.stale.store(true, Ordering::Release);
                return Err(Error::Corrupt { seq, reason });
            }
        }
        Ok(())
    }

    /// The books read again from the whole journal, after a turn whose
    /// outcome is unknown.
    fn reload_if_stale(&self) -> Result<()> {
        if !self.stale.load(Ordering::Acquire) {
            return Ok(());
        }
        let read = self.store.journal_after(0)?;
        let mut fresh = Books::default();
        for (org_id, budget) in self.store.scan::<super::Budget>(Tree::Budgets)? {
            fresh.budgets.insert(org_id, budget);
        }
        self.apply(&mut fresh, read)?;
        // Today's spending is counted at the next `roll_day`, as at open.
        *self.books() = fresh;
        self.stale.store(false, Ordering::Release);
        tracing::info!("books read again from the shared journal");
        Ok(())
    }
}
