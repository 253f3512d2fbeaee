//! Turns at the shared money journal: how replicas agree on one order of
//! entries.
//!
//! A turn is one transaction on one connection: it takes a
//! transaction-scoped advisory lock, reads the records appended after the
//! caller's last one, hands them to the caller (who applies them and then
//! decides), appends the caller's records after them and commits, which
//! releases the lock. Two turns never interleave, so every replica replays
//! the same sequence, and a decision (a hold against a balance) is always
//! made on every entry before it. A turn commits asynchronously; the
//! caller's next [`super::Postgres::sync_journal`] is a synchronous commit,
//! which makes it durable (the server's log is sequential, so an entry is
//! never durable before one it was decided on).

use super::super::{Error, Result, Tree};
use super::Shared;
use super::pool::Conn;
use std::sync::mpsc;
use std::time::Duration;

/// The advisory lock a turn holds ("mercato3").
const JOURNAL_LOCK: i64 = 0x6d65_7263_6174_6f33;

/// How long a turn waits for the lock before the database counts as
/// unavailable (a replica stuck in its turn loses its connection first:
/// `idle_in_transaction_session_timeout` below).
const LOCK_WAIT: &str = "5s";

/// How long a caller may take to decide; longer and its turn is rolled back.
const DECIDE_MAX: Duration = Duration::from_secs(5);

/// Journal records in order: (sequence number, bytes).
pub(in crate::store) type Records = Vec<(u64, Vec<u8>)>;

/// A record written in the same transaction as a turn's entries, only if
/// its key is absent (the caller also writes it the usual way).
pub(in crate::store) type Row = (Tree, String, Vec<u8>);

/// The records after `after`, in order, checked to be contiguous.
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

/// A turn in progress: the caller's records are awaited on a connection.
pub(in crate::store) struct Turn {
    records: mpsc::SyncSender<(Vec<Vec<u8>>, Vec<Row>)>,
    done: mpsc::Receiver<Result<()>>,
    /// The sequence number the caller's first record gets.
    pub first: u64,
}

impl Turn {
    /// Appends `records` (numbered from [`Turn::first`]) and `rows`, and
    /// ends the turn. An error after the records were sent leaves their
    /// fate unknown: the caller rereads the journal.
    pub fn commit(self, records: Vec<Vec<u8>>, rows: Vec<Row>) -> Result<()> {
        self.records
            .send((records, rows))
            .map_err(|_| Error::Unavailable("the journal turn ended early".into()))?;
        self.done
            .recv()
            .map_err(|_| Error::Unavailable("the journal turn ended early".into()))?
    }
}

impl Shared {
    /// Starts a turn after `after`: the records others appended since.
    pub(super) fn begin_turn(&self, after: u64) -> Result<(Turn, Records)> {
        let (others_to, others) = mpsc::sync_channel::<Records>(1);
        let (records_to, records) = mpsc::sync_channel::<(Vec<Vec<u8>>, Vec<Row>)>(1);
        let done = self.pool.submit(move |conn: &mut Conn| {
            let mut tx = conn.client.transaction()?;
            tx.batch_execute(&format!(
                "SET LOCAL lock_timeout = '{LOCK_WAIT}'; \
                 SET LOCAL idle_in_transaction_session_timeout = '{LOCK_WAIT}'"
            ))?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&JOURNAL_LOCK])?;
            let read = read_after(&mut tx, after)?;
            let first = read.last().map_or(after, |(seq, _)| *seq) + 1;
            if others_to.send(read).is_err() {
                return Ok(());
            }
            // The caller decides meanwhile; a caller gone rolls back.
            let Ok((mine, rows)) = records.recv_timeout(DECIDE_MAX) else {
                return Ok(());
            };
            if !mine.is_empty() {
                let seqs: Vec<i64> = (0..mine.len()).map(|n| (first + n as u64) as i64).collect();
                tx.execute(
                    "INSERT INTO journal (seq, record) \
                     SELECT * FROM unnest($1::bigint[], $2::bytea[])",
                    &[&seqs, &mine],
                )?;
            }
            if !rows.is_empty() {
                let trees: Vec<&str> = rows.iter().map(|(tree, _, _)| tree.name()).collect();
                let keys: Vec<&[u8]> = rows.iter().map(|(_, key, _)| key.as_bytes()).collect();
                let values: Vec<&[u8]> = rows.iter().map(|(_, _, value)| &value[..]).collect();
                tx.execute(
                    "INSERT INTO records (tree, key, value) \
                     SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[]) \
                     ON CONFLICT DO NOTHING",
                    &[&trees, &keys, &values],
                )?;
            }
            tx.commit()
        })?;
        let read = match others.recv() {
            Ok(read) => read,
            // The job ended before reading: its answer says why.
            Err(_) => {
                return Err(match done.recv() {
                    Ok(Err(error)) => error,
                    _ => Error::Unavailable("the journal turn ended early".into()),
                });
            }
        };
        let first = read.last().map_or(after, |(seq, _)| *seq) + 1;
        if let Some((seq, _)) = read.first()
            && *seq != after + 1
        {
            return Err(Error::Postgres(format!(
                "the journal skips from entry {after} to {seq}"
            )));
        }
        Ok((
            Turn {
                records: records_to,
                done,
                first,
            },
            read,
        ))
    }

    /// The records after `after`, read without a turn (a prefix of the
    /// journal: turns commit one after another).
    pub(super) fn journal_after(&self, after: u64) -> Result<Records> {
        self.pool
            .run_again(move |conn| read_after(&mut conn.client, after))
    }
}
