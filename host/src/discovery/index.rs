//! The discovery handle: settings, changes (upsert, remove, facts) and
//! counts. Searching is in `search`, rebuilding in `rebuild`.

use super::embed::Embedder;
use super::entry::Slot;
use super::entry::{Entry, Facts};
use super::graph::{Inner, new_inner};
use super::rebuild::{Aside, Change};
use std::sync::{Arc, RwLock};

/// Below this many admitted entries, score them exactly instead of walking
/// the graph (a selective filter makes the walk visit most of the graph).
/// (100,000 × 384 here: a walk admitting 10% of the graph costs ~8 ms,
/// scanning those 10,000 by their codes ~0.3 ms; docs/BENCHMARKS.md §6.)
pub(super) const EXACT_SCAN_MAX: usize = 32_768;
/// How much reputation moves a fused score by default: a 5-star capability
/// scores ×(1 + RATING_BOOST), a 1-star one ×(1 − RATING_BOOST), an unrated
/// one ×1. Small on purpose: relevance first, reputation breaks near-ties
/// (`Config::discovery_rating_boost` sets it).
pub const RATING_BOOST: f32 = 0.1;

/// The discovery index. Thread-safe; searches run concurrently.
pub struct Discovery {
    pub(super) embedder: Arc<dyn Embedder>,
    pub(super) inner: Arc<RwLock<Inner>>,
    pub(super) exact_scan_max: usize,
    /// See [`RATING_BOOST`].
    pub(super) rating_boost: f32,
    /// Bumped by every change to the graph (what a dump must catch up on).
    pub(super) changes: Arc<std::sync::atomic::AtomicU64>,
    /// One save at a time (the periodic one and the one at shutdown).
    pub(super) saving: std::sync::Mutex<()>,
    /// A rebuild without tombstones, run aside (see `rebuild`).
    pub(super) aside: Aside,
}

impl Discovery {
    /// An empty index using `embedder`.
    pub fn new(embedder: Arc<dyn Embedder>) -> Self {
        Discovery {
            embedder,
            inner: Arc::new(RwLock::new(new_inner(0))),
            changes: Arc::new(std::sync::atomic::AtomicU64::new(0)),
            saving: std::sync::Mutex::new(()),
            exact_scan_max: EXACT_SCAN_MAX,
            rating_boost: RATING_BOOST,
            aside: Aside::default(),
        }
    }

    /// Sets how many admitted entries are scanned exactly before the search
    /// walks the graph instead (tests use a small value to exercise the walk).
    pub fn with_exact_scan_max(mut self, entries: usize) -> Self {
        self.exact_scan_max = entries;
        self
    }

    /// Sets how much reputation moves a score (see [`RATING_BOOST`];
    /// clamped to 0–1).
    pub fn with_rating_boost(mut self, boost: f32) -> Self {
        self.rating_boost = if boost.is_finite() {
            boost.clamp(0.0, 1.0)
        } else {
            RATING_BOOST
        };
        self
    }

    /// The embedder's name.
    pub fn embedder_name(&self) -> &str {
        self.embedder.name()
    }

    /// Embeds an entry's text (CPU work: call off the async workers for big batches).
    pub fn embed(&self, entry: &Entry) -> Vec<f32> {
        self.embedder.embed(&entry.text())
    }

    /// Indexes an entry with its vector, replacing any entry with its key.
    pub fn upsert(&self, entry: Entry, vector: Vec<f32>) {
        if vector.len() != self.embedder.dimension() {
            tracing::error!(key = %entry.key, "discovery: a vector of the wrong dimension is not indexed");
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let slot = Slot::new(entry);
        self.aside
            .record(|| Change::Upsert(slot.clone(), vector.clone()));
        inner.insert(slot, &vector);
        self.aside
            .start_if_due(&self.inner, &mut inner, &self.changes);
        self.changed();
    }

    /// Removes a key (a delisted capability).
    pub fn remove(&self, key: &str) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        self.aside.record(|| Change::Remove(key.to_string()));
        inner.tombstone(key);
        self.aside
            .start_if_due(&self.inner, &mut inner, &self.changes);
        self.changed();
    }

    /// Waits for a rebuild running aside to finish and take over.
    pub fn settle(&self) {
        self.aside.settle();
    }

    pub(super) fn changed(&self) {
        self.changes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// A count that moves whenever the graph changes: equal counts, equal
    /// dumps.
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Every indexed key that starts with `prefix`.
    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner
            .by_key
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Replaces the filterable facts of a key (new observed cost, rating).
    pub fn update_facts(&self, key: &str, facts: Facts) {
        let mut guard = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *guard;
        if let Some(&id) = inner.by_key.get(key)
            && let Some(slot) = inner.slots[id].as_mut()
        {
            slot.facts = facts;
            inner.packed[id] = inner.names.pack(&slot.category, &slot.facts);
            *inner.group_facts(id) = inner.packed[id];
        }
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_key
            .len()
    }

    /// Whether nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The embedder (to embed a need away from the caller's thread when it
    /// is slow, then [`Discovery::search_embedded`]).
    pub fn embedder(&self) -> Arc<dyn Embedder> {
        self.embedder.clone()
    }
}
