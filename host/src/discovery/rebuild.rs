//! Replacing a graph heavy with tombstones (hnsw_rs cannot delete): built
//! aside on its own thread from a snapshot while searches and changes go
//! on; the changes made meanwhile are queued and replayed before the swap.

use super::entry::Slot;
use super::graph::Inner;
use super::lock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// A change made while a rebuild runs aside.
pub(super) enum Change {
    Upsert(Slot, Vec<f32>),
    Remove(String),
}

/// The rebuild running aside, if any, and the changes it must replay.
#[derive(Default)]
pub(super) struct Aside {
    /// `Some` while a rebuild runs aside: the changes made since its
    /// snapshot, which it replays before it replaces the index.
    pending: Arc<Mutex<Option<Vec<Change>>>>,
    /// The thread of the last rebuild started.
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Aside {
    /// Queues `change` for the rebuild running aside, if one is (call under
    /// the index's write lock, with the change itself).
    pub(super) fn record(&self, change: impl FnOnce() -> Change) {
        if let Some(pending) = lock(&self.pending).as_mut() {
            pending.push(change());
        }
    }

    /// Whether a rebuild was started and not yet waited for.
    #[cfg(test)]
    pub(super) fn started(&self) -> bool {
        lock(&self.thread).is_some()
    }

    /// Whether changes are being queued for a rebuild running aside.
    #[cfg(test)]
    pub(super) fn queueing(&self) -> bool {
        lock(&self.pending).is_some()
    }

    /// Starts a rebuild without tombstones once they outnumber the live
    /// entries (hnsw_rs cannot delete). It runs on its own thread from a
    /// snapshot, so searches and changes go on meanwhile (at 100,000 entries
    /// a build takes minutes); the changes made in the meantime are replayed
    /// onto the new index, which then replaces the old under the lock.
    /// `inner` is `shared`, write-locked by the caller; `changes` counts
    /// the graph's changes.
    pub(super) fn start_if_due(
        &self,
        shared: &Arc<RwLock<Inner>>,
        inner: &mut Inner,
        changes: &Arc<AtomicU64>,
    ) {
        let live = inner.by_key.len();
        // After a failed rebuild, the next waits for twice the tombstones.
        if inner.tombstones < 64
            || inner.tombstones < live
            || inner.tombstones < 2 * inner.rebuild_failed_at
        {
            return;
        }
        let mut pending = lock(&self.pending);
        if pending.is_some() {
            return; // one rebuild at a time
        }
        *pending = Some(Vec::new());
        let snapshot: Vec<(Slot, Vec<f32>)> = inner
            .slots
            .iter()
            .enumerate()
            .filter_map(|(id, slot)| Some((slot.clone()?, inner.vector(id).to_vec())))
            .collect();
        let (shared, changes, queued) = (shared.clone(), changes.clone(), self.pending.clone());
        let build = move || {
            let built =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Inner::build(snapshot)));
            // Under the write lock no change can slip between the queue and
            // the swap.
            let mut inner = shared.write().unwrap_or_else(|p| p.into_inner());
            let queued = lock(&queued).take().unwrap_or_default();
            match built {
                Ok(mut built) => {
                    for change in queued {
                        match change {
                            Change::Upsert(slot, vector) => built.insert(slot, &vector),
                            Change::Remove(key) => built.tombstone(&key),
                        }
                    }
                    *inner = built;
                    changes.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    // The old index already holds every change: it stays.
                    inner.rebuild_failed_at = inner.tombstones;
                    tracing::error!("discovery: a rebuild failed; the index keeps its tombstones");
                }
            }
        };
        match std::thread::Builder::new()
            .name("discovery-rebuild".into())
            .spawn(build)
        {
            Ok(handle) => *lock(&self.thread) = Some(handle),
            Err(e) => {
                *pending = None;
                tracing::error!(error = %e, "discovery: cannot start a rebuild; tombstones stay");
            }
        }
    }

    /// Waits for a rebuild running aside to finish and take over.
    pub(super) fn settle(&self) {
        let handle = lock(&self.thread).take();
        if let Some(handle) = handle {
            // The rebuild catches its own panics; nothing else can fail.
            let _ = handle.join();
        }
    }
}
