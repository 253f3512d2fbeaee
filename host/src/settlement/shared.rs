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
    /// Whether an entry must be durable before its caller answers (money
    /// moved; a hold, a void or a budget need not: nothing is reported on
    /// them that a crash could take back).
    durable: bool,
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
        let entry = books.next_entry(event, ops, now_ms, record)?;
        self.durable |= !matches!(
            entry.event,
            Event::Hold { .. } | Event::Void { .. } | Event::Budget { .. }
        );
        if let Some((key, record)) = &entry.record {
            let bytes = serde_json::to_vec(record).map_err(crate::store::Error::from)?;
            self.rows.push((Tree::Invocations, key.clone(), bytes));
        }
        books.enter(&entry)?;
        self.entries.push(entry.clone());
        Ok(entry)
    }
}

/// A caller's decision, run by the sequencer: whether it journaled anything.
type Decision = Box<dyn FnOnce(&mut Books, &mut Entries) -> bool + Send>;

/// A caller's slot for its decision's answer.
type Slot<R> = Arc<Mutex<Option<Result<R>>>>;

/// A caller waiting for a turn: its decision, and where its outcome goes.
struct Waiting {
    decide: Decision,
    outcome: tokio::sync::oneshot::Sender<Result<()>>,
}

/// Gives every waiting caller the same kind of answer.
fn answer_all(batch: Vec<Waiting>, answer: impl Fn(&Waiting) -> Result<()>) {
    for waiting in batch {
        let answered = answer(&waiting);
        let _ = waiting.outcome.send(answered);
    }
}

/// A store error again, for each caller it concerns.
fn copy_store(error: &crate::store::Error) -> crate::store::Error {
    use crate::store::Error as E;
    match error {
        E::Unavailable(reason) => E::Unavailable(reason.clone()),
        E::Closed => E::Closed,
        other => E::Postgres(other.to_string()),
    }
}

/// A settlement error again, for each caller it concerns.
fn copy(error: &Error) -> Error {
    match error {
        Error::Store(store) => Error::Store(copy_store(store)),
        Error::Unconfirmed(reason) => Error::Unconfirmed(reason.clone()),
        Error::Corrupt { seq, reason } => Error::Corrupt {
            seq: *seq,
            reason: reason.clone(),
        },
        other => Error::Store(crate::store::Error::Postgres(other.to_string())),
    }
}

/// A caller's answer: its own refusal, else the turn's outcome.
fn answer<R>(
    decided: Slot<R>,
    outcome: std::result::Result<Result<()>, tokio::sync::oneshot::error::RecvError>,
) -> Result<R> {
    let outcome = outcome.unwrap_or(Err(Error::Store(crate::store::Error::Closed)));
    let decided = decided.lock().unwrap_or_else(|p| p.into_inner()).take();
    match decided {
        // A refusal is the answer whatever became of the turn.
        Some(Err(refused)) => Err(refused),
        Some(Ok(answer)) => outcome.map(|()| answer),
        None => Err(outcome
            .err()
            .unwrap_or(Error::Store(crate::store::Error::Closed))),
    }
}

/// The shared journal's turns, for one replica.
pub(super) struct Turns {
    store: Store,
    books: Arc<Mutex<Books>>,
    /// Callers waiting for the next turn, and the sequencer's wake-up.
    queue: Mutex<Vec<Waiting>>,
    queued: std::sync::Condvar,
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
            queue: Mutex::new(Vec::new()),
            queued: std::sync::Condvar::new(),
            gate: Mutex::new(()),
            stale: AtomicBool::new(false),
        });
        // The sequencer: takes every caller queued into one turn, and
        // between turns catches up with the other replicas.
        let weak: Weak<Turns> = Arc::downgrade(&turns);
        let _ = std::thread::Builder::new()
            .name("mercato-books".into())
            .spawn(move || {
                loop {
                    let Some(turns) = weak.upgrade() else { return };
                    let batch = turns.next_batch();
                    let _gate = turns.gate();
                    if batch.is_empty() {
                        if let Err(error) = turns.catch_up_here() {
                            tracing::debug!(%error, "catching up with the shared journal");
                        }
                    } else {
                        turns.lead(batch);
                    }
                }
            });
        turns
    }

    /// The callers queued, waiting up to [`CATCH_UP_EVERY`] for one.
    fn next_batch(&self) -> Vec<Waiting> {
        let queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        let (mut queue, _) = self
            .queued
            .wait_timeout_while(queue, CATCH_UP_EVERY, |q| q.is_empty())
            .unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *queue)
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
        self.catch_up_here()
    }

    /// [`Turns::catch_up`] under the gate.
    fn catch_up_here(&self) -> Result<()> {
        self.reload_if_stale()?;
        let after = self.books().seq;
        let read = self.store.journal_after(after)?;
        self.apply(&mut self.books(), read)
    }

    /// Decides in a turn: after the entries other replicas appended,
    /// `decide` runs on the books and journals through [`Entries`]; its
    /// answer comes once what it journaled is appended. Callers share
    /// turns: the sequencer takes every caller queued meanwhile into its
    /// next turn (two round trips to the database, plus the wait for the
    /// lock), deciding for each in the order it queued.
    pub async fn turn<R: Send + 'static>(
        &self,
        decide: impl FnOnce(&mut Books, &mut Entries) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let (decided, outcome) = self.enqueue(decide);
        let outcome = outcome.await;
        answer(decided, outcome)
    }

    /// [`Turns::turn`] for a caller that cannot wait asynchronously (a
    /// dropped hold); blocks the thread.
    pub fn turn_blocking<R: Send + 'static>(
        &self,
        decide: impl FnOnce(&mut Books, &mut Entries) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        let (decided, outcome) = self.enqueue(decide);
        let outcome = futures::executor::block_on(outcome);
        answer(decided, outcome)
    }

    fn enqueue<R: Send + 'static>(
        &self,
        decide: impl FnOnce(&mut Books, &mut Entries) -> Result<R> + Send + 'static,
    ) -> (Slot<R>, tokio::sync::oneshot::Receiver<Result<()>>) {
        let decided: Slot<R> = Arc::default();
        let (outcome, answered) = tokio::sync::oneshot::channel();
        let slot = decided.clone();
        let waiting = Waiting {
            decide: Box::new(move |books, entries| {
                let before = entries.entries.len();
                let answer = decide(books, entries);
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(answer);
                entries.entries.len() > before
            }),
            outcome,
        };
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(waiting);
        self.queued.notify_one();
        (decided, answered)
    }

    /// One turn for a batch of callers (under the gate).
    fn lead(&self, batch: Vec<Waiting>) {
        let started = self.reload_if_stale().and_then(|()| {
            let after = self.books().seq;
            Ok(self.store.begin_turn(after)?)
        });
        let (turn, read) = match started {
            Ok(started) => started,
            Err(error) => return answer_all(batch, |_| Err(copy(&error))),
        };
        let mut entries = Entries::default();
        let mut answers = Vec::with_capacity(batch.len());
        {
            let mut books = self.books();
            if let Err(error) = self.apply(&mut books, read) {
                return answer_all(batch, |_| Err(copy(&error)));
            }
            debug_assert_eq!(books.seq + 1, turn.first());
            for waiting in batch {
                let appended = (waiting.decide)(&mut books, &mut entries);
                answers.push((waiting.outcome, appended));
            }
        }
        let records = entries
            .entries
            .iter()
            .map(serde_json::to_vec)
            .collect::<std::result::Result<Vec<_>, _>>();
        let committed = match records {
            Ok(records) => turn.commit(records, entries.rows, entries.durable),
            Err(error) => Err(crate::store::Error::from(error)),
        };
        if committed.is_err() && !entries.entries.is_empty() {
            // The books hold entries the journal may not: read it again
            // before the next decision.
            self.stale.store(true, Ordering::Release);
        }
        for (outcome, appended) in answers {
            let answer = match &committed {
                Ok(()) => Ok(()),
                Err(error) if appended => Err(Error::unconfirmed(copy_store(error))),
                Err(error) => Err(Error::Store(copy_store(error))),
            };
            let _ = outcome.send(answer);
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
        // Today's spending is counted as the entries replay (a later day
        // starts at its first entry), as at open. The escrow index's trees
        // are rewritten while nobody reads the books they replace.
        let mut books = self.books();
        fresh.escrows_to_disk(&self.store)?;
        *books = fresh;
        self.stale.store(false, Ordering::Release);
        tracing::info!("books read again from the shared journal");
        Ok(())
    }
}
