//! Turns at the shared money journal: how replicas agree on one order of
//! entries.
//!
//! A turn is one transaction on a connection kept for turns: it takes a
//! transaction-scoped advisory lock, reads the records appended after the
//! caller's last one, hands them to the caller (who applies them and then
//! decides), appends the caller's records after them and commits, which
//! releases the lock. Two turns never interleave, so every replica replays
//! the same sequence, and a decision (a hold against a balance) is always
//! made on every entry before it. A turn whose records must be durable
//! commits synchronously; others commit asynchronously and become durable
//! with the next synchronous commit (the server's log is sequential, so an
//! entry is never durable before one it was decided on).
//!
//! The connection is used on the caller's own thread (settlement's
//! sequencer, never an async task): two round trips a turn, the lock and
//! the read in one, the appends and the commit in the other, in the simple
//! query protocol with values as hexadecimal text, so nothing a caller
//! wrote is ever parsed as SQL.

use super::super::{Error, Result, Tree};
use super::Shared;
use super::pool::{self, classify};
use std::sync::{Arc, Mutex};

/// The advisory lock a turn holds ("mercato3").
const JOURNAL_LOCK: i64 = 0x6d65_7263_6174_6f33;

/// Journal records in order: (sequence number, bytes).
pub(in crate::store) type Records = Vec<(u64, Vec<u8>)>;

/// A record written in the same transaction as a turn's entries, only if
/// its key is absent (the caller also writes it the usual way).
pub(in crate::store) type Row = (Tree, String, Vec<u8>);

/// The connection kept for turns, made on first use and again after it
/// broke.
pub(super) type TurnConnection = Arc<Mutex<Option<postgres::Client>>>;

/// The records after `after`, in order.
pub(super) fn read_after(
    client: &mut impl postgres::GenericClient,
    after: u64,
) -> std::result::Result<Records, postgres::Error> {
    let rows = client.query(
        "SELECT seq, record FROM journal WHERE seq > $1 ORDER BY seq",
        &[&(after as i64)],
    )?;
    Ok(rows
        .iter()
        .map(|row| (row.get::<_, i64>(0) as u64, row.get::<_, Vec<u8>>(1)))
        .collect())
}

/// A turn in progress: the lock is held until [`Turn::commit`], or until
/// the turn is dropped (rolled back).
pub(in crate::store) struct Turn {
    client: Option<postgres::Client>,
    slot: TurnConnection,
    /// The sequence number the caller's first record gets.
    pub first: u64,
}

impl Turn {
    /// Appends `records` (numbered from [`Turn::first`]) and `rows`, and
    /// ends the turn; `durable`: the commit is synchronous (otherwise the
    /// next synchronous commit makes it durable). An `Unavailable` error
    /// leaves their fate unknown: the caller rereads the journal.
    pub fn commit(mut self, records: Vec<Vec<u8>>, rows: Vec<Row>, durable: bool) -> Result<()> {
        let mut client = self.client.take().ok_or(Error::Closed)?;
        let mut sql = String::new();
        if durable {
            sql.push_str("SET LOCAL synchronous_commit = on; ");
        }
        if !records.is_empty() {
            sql.push_str("INSERT INTO journal (seq, record) VALUES ");
            for (n, record) in records.iter().enumerate() {
                let comma = if n == 0 { "" } else { ", " };
                let seq = self.first + n as u64;
                sql.push_str(&format!(
                    "{comma}({seq}, decode('{}', 'hex'))",
                    hex::encode(record)
                ));
            }
            sql.push_str("; ");
        }
        if !rows.is_empty() {
            sql.push_str("INSERT INTO records (tree, key, value) VALUES ");
            for (n, (tree, key, value)) in rows.iter().enumerate() {
                let comma = if n == 0 { "" } else { ", " };
                sql.push_str(&format!(
                    "{comma}('{}', decode('{}', 'hex'), decode('{}', 'hex'))",
                    tree.name(),
                    hex::encode(key.as_bytes()),
                    hex::encode(value)
                ));
            }
            sql.push_str(" ON CONFLICT DO NOTHING; ");
        }
        sql.push_str("COMMIT");
        match client.batch_execute(&sql) {
            Ok(()) => {
                self.give_back(client);
                Ok(())
            }
            Err(error) => {
                let _ = client.batch_execute("ROLLBACK");
                self.give_back(client);
                Err(classify(error))
            }
        }
    }

    /// The connection back for the next turn, unless it broke.
    fn give_back(&self, client: postgres::Client) {
        if !client.is_closed() {
            *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(client);
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(mut client) = self.client.take() {
            let _ = client.batch_execute("ROLLBACK");
            self.give_back(client);
        }
    }
}

impl Shared {
    /// Starts a turn after `after`: the records others appended since.
    /// Blocks the calling thread, which must not be an async task.
    pub(super) fn begin_turn(&self, after: u64) -> Result<(Turn, Records)> {
        let taken = self
            .turn_connection
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let mut client = match taken {
            Some(client) => client,
            None => {
                let client = pool::connect(&self.config, super::SESSION)?;
                self.pool.reached();
                client
            }
        };
        match read_locked(&mut client, after) {
            Ok(read) => {
                let first = read.last().map_or(after, |(seq, _)| *seq) + 1;
                let turn = Turn {
                    client: Some(client),
                    slot: self.turn_connection.clone(),
                    first,
                };
                if let Some((seq, _)) = read.first()
                    && *seq != after + 1
                {
                    return Err(Error::Postgres(format!(
                        "the journal skips from entry {after} to {seq}"
                    )));
                }
                Ok((turn, read))
            }
            Err(error) => {
                let _ = client.batch_execute("ROLLBACK");
                if !client.is_closed() {
                    *self
                        .turn_connection
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(client);
                }
                Err(error)
            }
        }
    }

    /// The records after `after`, read without a turn (a prefix of the
    /// journal: turns commit one after another).
    pub(super) fn journal_after(&self, after: u64) -> Result<Records> {
        self.pool
            .run_again(move |conn| read_after(&mut conn.client, after))
    }
}

/// Begins the transaction, takes the lock and reads what came after
/// `after` (one round trip).
fn read_locked(client: &mut postgres::Client, after: u64) -> Result<Records> {
    let messages = client
        .simple_query(&format!(
            "BEGIN; \
             SELECT pg_advisory_xact_lock({JOURNAL_LOCK}); \
             SELECT seq, encode(record, 'hex') FROM journal WHERE seq > {after} ORDER BY seq"
        ))
        .map_err(classify)?;
    let mut read = Records::new();
    for message in &messages {
        if let postgres::SimpleQueryMessage::Row(row) = message
            && row.len() == 2
        {
            let seq = row.get(0).and_then(|s| s.parse::<u64>().ok());
            let record = row.get(1).and_then(|h| hex::decode(h).ok());
            match (seq, record) {
                (Some(seq), Some(record)) => read.push((seq, record)),
                _ => {
                    return Err(Error::Postgres("a journal record did not read back".into()));
                }
            }
        }
    }
    Ok(read)
}
