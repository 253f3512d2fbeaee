//! Sending writes to PostgreSQL: the group commit's flush (pending writes,
//! journal records and a heartbeat in one synchronous commit) and the drain
//! (pending writes only, before a read that must see them).

use super::super::{Result, Tree};
use super::Shared;
use super::overlay::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Pending writes as statement parameters.
#[derive(Default, Clone)]
struct Rows {
    trees: Vec<&'static str>,
    keys: Vec<Vec<u8>>,
    values: Vec<Vec<u8>>,
    gone_trees: Vec<&'static str>,
    gone_keys: Vec<Vec<u8>>,
}

impl Rows {
    fn of(writes: &[Write]) -> Rows {
        let mut rows = Rows::default();
        for write in writes {
            let name = Tree::name(write.tree);
            match &write.value {
                Some(value) => {
                    rows.trees.push(name);
                    rows.keys.push(write.key.as_bytes().to_vec());
                    rows.values.push(value.to_vec());
                }
                None => {
                    rows.gone_trees.push(name);
                    rows.gone_keys.push(write.key.as_bytes().to_vec());
                }
            }
        }
        rows
    }

    fn send(&self, tx: &mut postgres::Transaction<'_>) -> std::result::Result<(), postgres::Error> {
        if !self.trees.is_empty() {
            tx.execute(
                "INSERT INTO records (tree, key, value) \
                 SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[]) \
                 ON CONFLICT (tree, key) DO UPDATE SET value = EXCLUDED.value",
                &[&self.trees, &self.keys, &self.values],
            )?;
        }
        if !self.gone_trees.is_empty() {
            tx.execute(
                "DELETE FROM records WHERE (tree, key) IN \
                 (SELECT * FROM unnest($1::text[], $2::bytea[]))",
                &[&self.gone_trees, &self.gone_keys],
            )?;
        }
        Ok(())
    }
}

impl Shared {
    /// One synchronous commit: the pending writes, the pending journal
    /// records, and a heartbeat that makes every earlier asynchronous commit
    /// durable with them.
    pub(super) fn flush(&self) -> Result<()> {
        let _sending = self.overlay.sending();
        let writes = self.overlay.pending();
        let rows = Rows::of(&writes);
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let first = self.last_seq.load(Ordering::Acquire) + 1;
        let count = batch.len() as i64;
        let records = Arc::new(batch);
        let written = records.clone();
        // Twice at most: a retry writes the same rows and journal numbers.
        let outcome = self.pool.run_again(move |conn| {
            let seqs: Vec<i64> = (first..first + count).collect();
            let mut tx = conn.client.transaction()?;
            tx.batch_execute("SET LOCAL synchronous_commit = on")?;
            rows.send(&mut tx)?;
            if count > 0 {
                // A retry after a commit whose answer was lost writes the
                // same records under the same numbers: nothing twice.
                tx.execute(
                    "INSERT INTO journal (seq, record) \
                     SELECT * FROM unnest($1::bigint[], $2::bytea[]) ON CONFLICT (seq) DO NOTHING",
                    &[&seqs, &*written],
                )?;
            }
            tx.execute("UPDATE heartbeat SET beats = beats + 1 WHERE id = 1", &[])?;
            tx.commit()
        });
        match outcome {
            Ok(()) => {
                self.overlay.sent(&writes);
                self.last_seq.store(first + count - 1, Ordering::Release);
                self.degraded.store(false, Ordering::Release);
                Ok(())
            }
            Err(error) => {
                if error.is_unavailable() {
                    self.degraded.store(true, Ordering::Release);
                }
                // Put the batch back in front of what came meanwhile.
                let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                let later = std::mem::take(&mut *pending);
                *pending = Arc::try_unwrap(records).unwrap_or_else(|shared| (*shared).clone());
                pending.extend(later);
                Err(error)
            }
        }
    }

    /// Sends the pending writes (committed asynchronously), so that a read
    /// of the database sees them.
    pub(super) fn drain(&self) -> Result<()> {
        if !self.overlay.has_pending() {
            return Ok(());
        }
        let _sending = self.overlay.sending();
        self.drain_sending()
    }

    /// [`Shared::drain`] by a caller that holds the right to send.
    pub(super) fn drain_sending(&self) -> Result<()> {
        self.writable()?;
        let writes = self.overlay.pending();
        if writes.is_empty() {
            return Ok(());
        }
        let rows = Rows::of(&writes);
        self.pool.run_again(move |conn| {
            let mut tx = conn.client.transaction()?;
            rows.send(&mut tx)?;
            tx.commit()
        })?;
        self.overlay.sent(&writes);
        Ok(())
    }
}
