//! Group commit: one flush serves every writer waiting when it starts.

use super::{Error, Result};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, Notify, watch};
use tokio::task::JoinHandle;

/// Tickets: a writer takes ticket `n` after writing; flush `k` covers every
/// ticket ≤ the highest issued when flush `k` started.
pub struct GroupCommit {
    issued: AtomicU64,
    flushed: watch::Receiver<u64>,
    wake: Arc<Notify>,
    dirty: Arc<AtomicBool>,
    syncs: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl GroupCommit {
    /// Starts the committer; `flush` makes everything written so far
    /// durable (a sled flush, or a file's `fdatasync`).
    pub fn start<F>(flush: F, background_flush: Duration) -> Arc<Self>
    where
        F: Fn() -> std::result::Result<(), String> + Send + Sync + 'static,
    {
        let flush = Arc::new(flush);
        let (flushed_tx, flushed) = watch::channel(0u64);
        let wake = Arc::new(Notify::new());
        let dirty = Arc::new(AtomicBool::new(false));
        let syncs = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let commit = Arc::new(GroupCommit {
            issued: AtomicU64::new(0),
            flushed,
            wake: wake.clone(),
            dirty: dirty.clone(),
            syncs: syncs.clone(),
            stop: stop.clone(),
            task: Mutex::new(None),
        });
        let weak = Arc::downgrade(&commit);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(background_flush) => {}
                }
                // Everything issued before this load is covered by the flush.
                let target = match weak.upgrade() {
                    Some(commit) => commit.issued.load(Ordering::Acquire),
                    None => return,
                };
                let pending = target > *flushed_tx.borrow();
                if pending || dirty.swap(false, Ordering::AcqRel) {
                    let flush = flush.clone();
                    let flushed = tokio::task::spawn_blocking(move || flush()).await;
                    let failure = match flushed {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(e),
                        Err(e) => Some(e.to_string()),
                    };
                    if let Some(error) = failure {
                        tracing::error!(%error, "store flush failed; retrying");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                    syncs.fetch_add(1, Ordering::Relaxed);
                    let _ = flushed_tx.send(target);
                }
                if stop.load(Ordering::Acquire) && target == *flushed_tx.borrow() {
                    return;
                }
            }
        });
        if let Ok(mut slot) = commit.task.try_lock() {
            *slot = Some(task);
        }
        commit
    }

    /// Marks unsynced writes, flushed within the background interval.
    pub fn dirty(&self) {
        self.dirty.store(true, Ordering::Release);
    }

    pub async fn sync(&self) -> Result<()> {
        let ticket = self.issued.fetch_add(1, Ordering::AcqRel) + 1;
        self.wake.notify_one();
        let mut flushed = self.flushed.clone();
        flushed
            .wait_for(|done| *done >= ticket)
            .await
            .map_err(|_| Error::Closed)?;
        Ok(())
    }

    pub async fn close(&self) -> Result<()> {
        self.dirty();
        self.stop.store(true, Ordering::Release);
        self.issued.fetch_add(1, Ordering::AcqRel);
        self.wake.notify_one();
        if let Some(task) = self.task.lock().await.take() {
            task.await.map_err(|_| Error::Closed)?;
        }
        Ok(())
    }

    pub fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }
}
