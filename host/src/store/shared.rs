//! What only a store shared by several hosts (PostgreSQL) does: turns at
//! the one money journal, and the change feed replicas follow. On the
//! embedded store, which has no other writer, there are no turns and
//! nothing to tell.

use super::{Engine, Error, Result, Store, Tree, pg};
use std::sync::Arc;

/// Journal records in order: (sequence number, bytes).
pub type JournalRecords = Vec<(u64, Vec<u8>)>;

/// A turn at a shared journal ([`Store::begin_turn`]).
pub struct JournalTurn(pg::Turn);

impl JournalTurn {
    /// The sequence number this host's first record gets.
    pub fn first(&self) -> u64 {
        self.0.first
    }

    /// Appends `records` and writes `rows` (each only if its key is absent)
    /// in the same transaction, and ends the turn; `durable`: they are
    /// durable when it returns (else at the next sync). An `Unavailable`
    /// error leaves their fate unknown: read the journal again.
    pub fn commit(
        self,
        records: Vec<Vec<u8>>,
        rows: Vec<(Tree, String, Vec<u8>)>,
        durable: bool,
    ) -> Result<()> {
        self.0.commit(records, rows, durable)
    }
}

impl Store {
    /// Starts a turn at a shared journal (PostgreSQL): the records other
    /// hosts appended after `after`, and the turn that appends this host's
    /// next records after them. Turns never interleave, so every host
    /// applies one order of entries. The embedded store has no other
    /// writer and no turns.
    pub fn begin_turn(&self, after: u64) -> Result<(JournalTurn, JournalRecords)> {
        match &*self.engine {
            Engine::Postgres(e) => e
                .begin_turn(after)
                .map(|(turn, read)| (JournalTurn(turn), read)),
            Engine::Embedded(_) => Err(Error::Unavailable(
                "the embedded store's journal is not shared".into(),
            )),
        }
    }

    /// The journal's records after `after`, in order (on a shared store; the
    /// embedded one has nothing it did not append itself).
    pub fn journal_after(&self, after: u64) -> Result<JournalRecords> {
        match &*self.engine {
            Engine::Postgres(e) => e.journal_after(after),
            Engine::Embedded(_) => Ok(Vec::new()),
        }
    }

    /// On a shared store: records that `subject` (such as `agent:NAME`)
    /// changed and wakes the other replicas, which follow the feed. Nothing
    /// to tell on the embedded store.
    pub fn announce(&self, subject: &str) -> Result<()> {
        match &*self.engine {
            Engine::Postgres(e) => e.announce(subject),
            Engine::Embedded(_) => Ok(()),
        }
    }

    /// The subjects other replicas announced after change `after`, and the
    /// last change read (at most 1,000 at a time).
    pub fn changes_after(&self, after: u64) -> Result<(Vec<String>, u64)> {
        match &*self.engine {
            Engine::Postgres(e) => e.changes_after(after),
            Engine::Embedded(_) => Ok((Vec::new(), after)),
        }
    }

    /// Records that this host is alive; how many hosts share the store
    /// (seen in the last 5 s, this one included; 1 on the embedded store).
    pub fn beat(&self) -> Result<u32> {
        match &*self.engine {
            Engine::Postgres(e) => e.beat(),
            Engine::Embedded(_) => Ok(1),
        }
    }

    /// The last change's number (0 on the embedded store).
    pub fn changes_head(&self) -> Result<u64> {
        match &*self.engine {
            Engine::Postgres(e) => e.changes_head(),
            Engine::Embedded(_) => Ok(0),
        }
    }

    /// Raised when another replica announces a change; `None` on the
    /// embedded store, which has no other writer.
    pub fn change_signal(&self) -> Option<Arc<tokio::sync::Notify>> {
        match &*self.engine {
            Engine::Postgres(e) => Some(e.change_signal()),
            Engine::Embedded(_) => None,
        }
    }
}
