//! The change feed: what replicas tell each other about the catalog.
//!
//! A change is a row in `changes` (a sequence number, a subject such as
//! `agent:NAME`, and the replica that made it), announced with `NOTIFY` in
//! the same statement. A replica follows the feed from the last number it
//! applied: a listener on a connection of its own wakes it at each
//! notification, and it reads the feed at least every second anyway, so a
//! notification missed (the listener reconnecting) only delays it.

use super::super::{Error, Result};
use super::Shared;
use super::pool;
use postgres::fallible_iterator::FallibleIterator;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The channel changes are announced on.
const CHANNEL: &str = "mercato_changes";

/// A replica not seen for this long is counted gone.
pub(super) const ALIVE: Duration = Duration::from_secs(5);

/// How long the listener waits for a notification before checking that it
/// is still wanted.
const LISTEN_TICK: Duration = Duration::from_millis(500);

impl Shared {
    /// Records a change of `subject` by replica `origin` and announces it.
    pub(super) fn announce(&self, origin: &str, subject: &str) -> Result<()> {
        let (origin, subject) = (origin.to_string(), subject.to_string());
        self.pool.run(move |conn| {
            let sql = conn.prepared(
                "WITH change AS (INSERT INTO changes (origin, subject) VALUES ($1, $2) RETURNING seq) \
                 SELECT pg_notify('mercato_changes', seq::text) FROM change",
            )?;
            conn.client.execute(&sql, &[&origin, &subject]).map(|_| ())
        })
    }

    /// The changes after `after` made by other replicas than `origin`, and
    /// the last number read.
    pub(super) fn changes_after(&self, origin: &str, after: u64) -> Result<(Vec<String>, u64)> {
        let origin = origin.to_string();
        self.pool.run_again(move |conn| {
            let sql = conn.prepared(
                "SELECT seq, origin, subject FROM changes WHERE seq > $1 ORDER BY seq LIMIT 1000",
            )?;
            let rows = conn.client.query(&sql, &[&(after as i64)])?;
            let last = rows.last().map_or(after, |row| row.get::<_, i64>(0) as u64);
            let subjects = rows
                .iter()
                .filter(|row| row.get::<_, &str>(1) != origin)
                .map(|row| row.get::<_, String>(2))
                .collect();
            Ok((subjects, last))
        })
    }

    /// Records that replica `origin` is alive; how many are (itself
    /// included): those seen in the last [`ALIVE`]. Rows of replicas gone
    /// for an hour are dropped.
    pub(super) fn beat(&self, origin: &str) -> Result<u32> {
        let origin = origin.to_string();
        self.pool.run_again(move |conn| {
            let mut tx = conn.client.transaction()?;
            tx.execute(
                "INSERT INTO replicas (origin, seen_at) VALUES ($1, now()) \
                 ON CONFLICT (origin) DO UPDATE SET seen_at = now()",
                &[&origin],
            )?;
            tx.execute(
                "DELETE FROM replicas WHERE seen_at < now() - interval '1 hour'",
                &[],
            )?;
            let n: i64 = tx
                .query_one(
                    &format!(
                        "SELECT count(*) FROM replicas WHERE seen_at > now() - interval '{} milliseconds'",
                        ALIVE.as_millis()
                    ),
                    &[],
                )?
                .get(0);
            tx.commit()?;
            Ok(u32::try_from(n.max(1)).unwrap_or(u32::MAX))
        })
    }

    /// The last change's number.
    pub(super) fn changes_head(&self) -> Result<u64> {
        self.pool.run_again(|conn| {
            let n: i64 = conn
                .client
                .query_one("SELECT coalesce(max(seq), 0) FROM changes", &[])?
                .get(0);
            Ok(n as u64)
        })
    }
}

/// Listens for announcements on a connection of its own and raises
/// `signal` at each, until `signal` is dropped by everyone else.
pub(super) fn listen(config: postgres::Config, signal: Weak<tokio::sync::Notify>) {
    let _ = std::thread::Builder::new()
        .name("mercato-pg-feed".into())
        .spawn(move || {
            loop {
                let Some(strong) = signal.upgrade() else {
                    return;
                };
                drop(strong);
                match listen_once(&config, &signal) {
                    Ok(()) => return,
                    Err(error) => {
                        tracing::debug!(%error, "change feed listener reconnecting");
                        // A notification may have been missed: read the feed.
                        if let Some(strong) = signal.upgrade() {
                            strong.notify_one();
                        }
                        std::thread::sleep(Duration::from_secs(1));
                    }
                }
            }
        });
}

fn listen_once(config: &postgres::Config, signal: &Weak<tokio::sync::Notify>) -> Result<()> {
    let mut client = pool::connect(config, "")?;
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .map_err(pool::classify)?;
    loop {
        let heard = client
            .notifications()
            .timeout_iter(LISTEN_TICK)
            .next()
            .map_err(pool::classify)?;
        let Some(strong) = signal.upgrade() else {
            return Ok(());
        };
        if heard.is_some() {
            strong.notify_one();
        }
        if client.is_closed() {
            return Err(Error::Unavailable("the feed's connection closed".into()));
        }
    }
}

/// A signal kept alive by whoever follows the feed.
pub(super) fn signal() -> Arc<tokio::sync::Notify> {
    Arc::new(tokio::sync::Notify::new())
}
