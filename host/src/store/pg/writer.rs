//! The writer lock: one host writes to a database at a time, and a host that
//! lost its lock (the server restarted) writes again only when it has
//! retaken it and the journal shows nobody else wrote meanwhile.

use super::{LOCK_CHECK, Shared, WRITER_LOCK, pool};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Holds the writer lock: checks its connection, and when it broke, takes
/// the lock again on a new one, lifting the fence only if no other host
/// wrote to the journal meanwhile.
pub(super) fn keep_lock(shared: &Shared, config: &postgres::Config, mut lock: postgres::Client) {
    let mut held = Some(());
    while !shared.stop.load(Ordering::Acquire) {
        std::thread::sleep(LOCK_CHECK);
        if held.is_some() && lock.is_valid(Duration::from_secs(2)).is_ok() {
            continue;
        }
        if held.take().is_some() {
            tracing::error!("lost the database's writer lock; writes wait until it is retaken");
            shared.fenced.store(true, Ordering::Release);
        }
        let Ok(mut client) = pool::connect(config, "") else {
            continue;
        };
        let retaken = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&WRITER_LOCK])
            .map(|row| row.get::<_, bool>(0));
        let Ok(true) = retaken else { continue };
        if !only_ours_since(shared, &mut client) {
            tracing::error!("another host wrote to the journal meanwhile; this host stops writing");
            shared.superseded.store(true, Ordering::Release);
        }
        lock = client;
        held = Some(());
        shared.fenced.store(false, Ordering::Release);
        tracing::info!("writer lock retaken");
    }
}

/// Whether every journal record after the last one this host knows written
/// is one of its own (a flush whose commit landed but whose answer was lost
/// with the connection); those are then counted as written.
fn only_ours_since(shared: &Shared, client: &mut postgres::Client) -> bool {
    // No flush may run meanwhile: one between the read below and the
    // comparison would look like another host's records.
    let _sending = shared.overlay.sending();
    let last = shared.last_seq.load(Ordering::Acquire);
    let Ok(rows) = client.query(
        "SELECT record FROM journal WHERE seq > $1 ORDER BY seq",
        &[&last],
    ) else {
        return false;
    };
    let mut pending = shared.pending.lock().unwrap_or_else(|p| p.into_inner());
    let ours = rows.len() <= pending.len()
        && rows
            .iter()
            .zip(pending.iter())
            .all(|(row, record)| row.get::<_, &[u8]>(0) == record.as_slice());
    if ours {
        pending.drain(..rows.len());
        shared
            .last_seq
            .store(last + rows.len() as i64, Ordering::Release);
    }
    ours
}
