//! Discovery: rank capabilities for a need, within a consumer's constraints.
//!
//! Owns: the in-process index (HNSW over embeddings, BM25 over weighted
//! fields and BM25 over each agent's capabilities together), tombstones for
//! replaced or removed capabilities, constraint filters applied *inside* the
//! search, rank fusion, per-result explanations, and the index's own dump
//! (`persist.rs`: save, verified reload, reconciliation).
//!
//! Does not know about: the store, HTTP or the sandbox. It takes [`Entry`]
//! records and returns ranked keys; its only I/O is its dump directory.
//!
//! Invariants:
//! - A key (an unpinned capability id) is in the index at most once; a new
//!   version replaces the old entry, a removal tombstones it.
//! - Every result satisfies every filter of its query. Filters narrow the
//!   candidates before ranking: when few entries pass them, they are scanned
//!   exactly; when many do, the HNSW walk itself skips the others. So a tight
//!   query still returns `limit` results if that many match anywhere.
//! - HNSW parameters are fixed and valid (hnsw_rs exits the process on some
//!   invalid values); a dump reaches hnsw_rs only after its checksums match.
//! - Every live point either finds itself in the graph or is an orphan,
//!   scored exactly on every walk (hnsw_rs can leave points unreachable).
//! - A slot's packed facts live twice (by id, and in its category's group
//!   beside its code); `place`, `tombstone` and `update_facts` change both.
//! - At most one rebuild runs aside; while it does, every change is also
//!   queued for it, under the index's write lock, so none is lost in the swap.

mod bm25;
mod codes;
mod embed;
#[cfg(feature = "model")]
mod model;
mod persist;
mod text;

pub use embed::{Embedder, HashEmbedder, dot, normalise};
#[cfg(feature = "model")]
pub use model::ModelEmbedder;
pub use persist::Restored;

pub use crate::registry::Retention;
use bm25::{Bm25, WeightedTerms};
use codes::{Code, Group};
use hnsw_rs::prelude::{DistDot, Hnsw};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use utoipa::ToSchema;

/// HNSW: links per node (hnsw_rs refuses more than 256 by exiting).
const HNSW_M: usize = 16;
/// HNSW: candidate list while building.
const HNSW_EF_CONSTRUCTION: usize = 200;
/// HNSW: layers.
const HNSW_LAYERS: usize = 16;
/// HNSW: smallest candidate list while searching (recall@10 against an
/// exact scan stays 1.000 at 100,000 entries with 40; below 32 it drops).
const HNSW_EF_SEARCH_MIN: usize = 40;
/// HNSW: candidate list of the check that a point finds itself (generous:
/// a point it misses is scored exactly on every walk from then on).
const HNSW_EF_SELF_CHECK: usize = 64;
/// Below this many admitted entries, score them exactly instead of walking
/// the graph (a selective filter makes the walk visit most of the graph).
/// (100,000 × 384 here: a walk admitting 10% of the graph costs ~8 ms,
/// scanning those 10,000 by their codes ~0.3 ms; docs/BENCHMARKS.md §6.)
const EXACT_SCAN_MAX: usize = 32_768;
/// Above this many admitted entries an exact scan ranks by the 8-bit codes
/// first (below it the floats cost little).
const CODES_MIN: usize = 2_048;
/// Candidates taken from each ranking before fusion.
const CANDIDATES: usize = 200;
/// Reciprocal-rank fusion constant.
const RRF_K: f32 = 60.0;
/// Weight of a capability's agent's BM25 score (over the text of all its
/// capabilities) added to the capability's own in the lexical ranking.
const AGENT_WEIGHT: f32 = 0.5;
/// Agents whose admitted capabilities all join the lexical candidates.
const AGENTS_SPREAD: usize = 20;
/// Most capabilities of one agent that join the candidates that way.
const SIBLINGS_MAX: usize = 64;
/// Most results a query may ask for.
pub const LIMIT_MAX: usize = 100;
/// How much reputation moves a fused score by default: a 5-star capability
/// scores ×(1 + RATING_BOOST), a 1-star one ×(1 − RATING_BOOST), an unrated
/// one ×1. Small on purpose: relevance first, reputation breaks near-ties
/// (`Config::discovery_rating_boost` sets it).
pub const RATING_BOOST: f32 = 0.1;

/// What a capability offers, for filtering.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    /// Expected cost of a call (base price plus median observed fuel), micros.
    pub expected_cost_micros: u64,
    /// Promised latency.
    pub latency_ms_max: u64,
    /// Promised availability (0..=1).
    pub uptime: f64,
    /// Data retention.
    pub retention: Retention,
    /// Encryption promised.
    pub encryption: bool,
    /// Jurisdictions (upper-case codes).
    pub jurisdictions: Vec<String>,
    /// Reputation (1..=5), when there is one.
    pub rating: Option<f64>,
}

/// One capability to index.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The unpinned capability id.
    pub key: String,
    /// The agent offering it: capabilities of one agent share evidence in
    /// the ranking.
    pub agent: String,
    /// Capability name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Category.
    pub category: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Names (and descriptions) of the input schema's fields.
    pub fields: Vec<String>,
    /// Filterable facts.
    pub facts: Facts,
}

impl Entry {
    /// The text an embedder sees.
    pub fn text(&self) -> String {
        // Identifiers as words (`getOrderById` → `get order by id`): a
        // sentence model's vocabulary knows the words, not the joined name.
        let spaced = |s: &str| text::words(s).join(" ");
        format!(
            "{}. {}. {}. {}. {}. {}",
            spaced(&self.name),
            self.category,
            self.tags
                .iter()
                .map(|t| spaced(t))
                .collect::<Vec<_>>()
                .join(", "),
            self.description,
            self.fields
                .iter()
                .map(|f| spaced(f))
                .collect::<Vec<_>>()
                .join(", "),
            spaced(&self.key)
        )
    }

    fn weighted_terms(&self) -> WeightedTerms {
        let mut terms = Vec::new();
        let mut add = |text: &str, weight: f32| {
            terms.extend(text::terms(text).into_iter().map(|t| (t, weight)))
        };
        add(&self.name, 3.0);
        add(&self.key, 1.0);
        add(&self.category, 1.5);
        for tag in &self.tags {
            add(tag, 2.0);
        }
        add(&self.description, 1.0);
        for field in &self.fields {
            add(field, 0.5);
        }
        terms
    }
}

/// Data-policy constraints.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataPolicyFilter {
    /// Longest acceptable retention.
    #[serde(default)]
    pub retention: Option<Retention>,
    /// Require encryption.
    #[serde(default)]
    pub encryption: Option<bool>,
    /// A jurisdiction the provider must process in (for example `EU`).
    #[serde(default)]
    pub jurisdiction: Option<String>,
}

/// A need and its constraints.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Query {
    /// What the consumer needs, in plain language.
    pub need: String,
    /// Only this category.
    #[serde(default)]
    pub category: Option<String>,
    /// Only capabilities carrying all these tags.
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Expected cost at most this, micros.
    #[serde(default)]
    pub max_price_micros: Option<u64>,
    /// Promised latency at most this.
    #[serde(default)]
    pub latency_ms_max: Option<u64>,
    /// Promised availability at least this.
    #[serde(default)]
    pub uptime_min: Option<f64>,
    /// Data-policy constraints.
    #[serde(default)]
    pub data_policy: Option<DataPolicyFilter>,
    /// Rating at least this (unrated capabilities fail it).
    #[serde(default)]
    pub rating_min: Option<f64>,
    /// Results wanted (default 10, at most 100).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Why a result ranks where it does.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Explanation {
    /// Query terms found in the capability's text (stemmed).
    pub matched_terms: Vec<String>,
    /// Cosine similarity of the embeddings.
    pub dense_similarity: f32,
    /// Rank among dense candidates (1-based), if among them.
    pub dense_rank: Option<usize>,
    /// BM25 score.
    pub lexical_score: f32,
    /// Rank among lexical candidates (1-based), if among them.
    pub lexical_rank: Option<usize>,
    /// The filters this result passed.
    pub filters_passed: Vec<String>,
    /// The factor the capability's rating applied to its score (1 when unrated).
    #[serde(default = "no_boost")]
    pub rating_boost: f32,
    /// What its agent's BM25 score (over all the agent's capabilities)
    /// added to the lexical score.
    #[serde(default)]
    pub agent_score: f32,
}

fn no_boost() -> f32 {
    1.0
}

/// Checks a query's need and limit.
pub fn check_need(query: &Query) -> Result<(), InvalidQuery> {
    let limit = query.limit.unwrap_or(10);
    if limit == 0 || limit > LIMIT_MAX {
        return Err(InvalidQuery(format!("limit must be 1 to {LIMIT_MAX}")));
    }
    if query.need.trim().is_empty() || query.need.len() > 4_096 {
        return Err(InvalidQuery("need must be 1 to 4096 bytes of text".into()));
    }
    Ok(())
}

/// One ranked result.
#[derive(Debug, Clone)]
pub struct Hit {
    /// The unpinned capability id.
    pub key: String,
    /// Fused score (higher is better).
    pub score: f32,
    /// Why.
    pub explanation: Explanation,
}

/// Which rankings a search fuses (the API always uses [`Mode::Fused`]; the
/// others exist to measure each part alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Dense and lexical, fused by reciprocal rank.
    Fused,
    /// BM25 only.
    Lexical,
    /// Embedding similarity only.
    Dense,
}

/// A query that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidQuery(pub String);

#[derive(Clone)]
struct Slot {
    key: String,
    agent: String,
    terms: WeightedTerms,
    category: String,
    tags: Vec<String>,
    facts: Facts,
}

struct Inner {
    hnsw: Hnsw<'static, f32, DistDot>,
    slots: Vec<Option<Slot>>,
    by_key: HashMap<String, usize>,
    bm25: Bm25,
    /// Each agent's document: every live capability's terms together.
    agents: Agents,
    /// Points a search for their own vector missed (hnsw_rs can leave
    /// points unreachable, its issues #32 and #37): scored exactly on every
    /// walk, so they are never lost.
    orphans: Vec<usize>,
    /// By interned category: its slots (tombstoned ones included until a
    /// rebuild) with their packed facts and 8-bit codes, so that a filter
    /// plans over one category (or each in turn) reading memory in order.
    groups: Vec<Group<Packed>>,
    /// By slot id: its group and position there.
    placed: Vec<(u32, u32)>,
    /// By slot id: its filterable facts, packed, so that filtering reads one
    /// small contiguous array rather than every slot.
    packed: Vec<Packed>,
    /// Interned categories and jurisdictions (for [`Packed`]).
    names: Interned,
    /// Every slot's vector, end to end (`dimension` floats each; a
    /// tombstone's until a rebuild): an exact scan reads one array.
    vectors: Vec<f32>,
    dimension: usize,
    tombstones: usize,
    /// Tombstones when a rebuild last failed (0: none failed).
    rebuild_failed_at: usize,
}

fn new_hnsw(capacity: usize) -> Hnsw<'static, f32, DistDot> {
    let mut hnsw = Hnsw::new(
        HNSW_M,
        capacity.max(1_024),
        HNSW_LAYERS,
        HNSW_EF_CONSTRUCTION,
        DistDot {},
    );
    hnsw.set_searching_mode(true);
    hnsw
}

fn new_inner(capacity: usize) -> Inner {
    Inner {
        hnsw: new_hnsw(capacity),
        slots: Vec::new(),
        by_key: HashMap::new(),
        bm25: Bm25::default(),
        agents: Agents::default(),
        orphans: Vec::new(),
        groups: Vec::new(),
        placed: Vec::new(),
        packed: Vec::new(),
        names: Interned::default(),
        vectors: Vec::new(),
        dimension: 0,
        tombstones: 0,
        rebuild_failed_at: 0,
    }
}

impl Slot {
    fn new(entry: Entry) -> Slot {
        Slot {
            terms: entry.weighted_terms(),
            key: entry.key,
            agent: entry.agent,
            category: entry.category,
            tags: entry.tags.iter().map(|t| t.to_lowercase()).collect(),
            facts: entry.facts,
        }
    }
}

/// The discovery index. Thread-safe; searches run concurrently.
pub struct Discovery {
    embedder: Arc<dyn Embedder>,
    inner: Arc<RwLock<Inner>>,
    exact_scan_max: usize,
    /// See [`RATING_BOOST`].
    rating_boost: f32,
    /// Bumped by every change to the graph (what a dump must catch up on).
    changes: Arc<std::sync::atomic::AtomicU64>,
    /// One save at a time (the periodic one and the one at shutdown).
    saving: std::sync::Mutex<()>,
    /// `Some` while a rebuild runs aside: the changes made since its
    /// snapshot, which it replays before it replaces the index.
    pending: Arc<Mutex<Option<Vec<Change>>>>,
    /// The thread of the last rebuild started.
    rebuild: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// A change made while a rebuild runs aside.
enum Change {
    Upsert(Slot, Vec<f32>),
    Remove(String),
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
            pending: Arc::new(Mutex::new(None)),
            rebuild: Mutex::new(None),
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
        if let Some(pending) = lock(&self.pending).as_mut() {
            pending.push(Change::Upsert(slot.clone(), vector.clone()));
        }
        inner.insert(slot, &vector);
        self.maybe_rebuild(&mut inner);
        self.changed();
    }

    /// Removes a key (a delisted capability).
    pub fn remove(&self, key: &str) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if let Some(pending) = lock(&self.pending).as_mut() {
            pending.push(Change::Remove(key.to_string()));
        }
        inner.tombstone(key);
        self.maybe_rebuild(&mut inner);
        self.changed();
    }

    /// Starts a rebuild without tombstones once they outnumber the live
    /// entries (hnsw_rs cannot delete). It runs on its own thread from a
    /// snapshot, so searches and changes go on meanwhile (at 100,000 entries
    /// a build takes minutes); the changes made in the meantime are replayed
    /// onto the new index, which then replaces the old under the lock.
    fn maybe_rebuild(&self, inner: &mut Inner) {
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
        let (shared, changes, queued) = (
            self.inner.clone(),
            self.changes.clone(),
            self.pending.clone(),
        );
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
                    changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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
            Ok(handle) => *lock(&self.rebuild) = Some(handle),
            Err(e) => {
                *pending = None;
                tracing::error!(error = %e, "discovery: cannot start a rebuild; tombstones stay");
            }
        }
    }

    /// Waits for a rebuild running aside to finish and take over.
    pub fn settle(&self) {
        let handle = lock(&self.rebuild).take();
        if let Some(handle) = handle {
            // The rebuild catches its own panics; nothing else can fail.
            let _ = handle.join();
        }
    }

    fn changed(&self) {
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

    /// Ranks the entries that pass every filter of `query`.
    pub fn search(&self, query: &Query) -> Result<Vec<Hit>, InvalidQuery> {
        self.search_with(query, Mode::Fused)
    }

    /// [`Discovery::search`] with a choice of rankings.
    pub fn search_with(&self, query: &Query, mode: Mode) -> Result<Vec<Hit>, InvalidQuery> {
        check_need(query)?;
        let vector = self.embedder.embed(&query.need);
        self.search_embedded(query, &vector, mode)
    }

    /// The embedder (to embed a need away from the caller's thread when it
    /// is slow, then [`Discovery::search_embedded`]).
    pub fn embedder(&self) -> Arc<dyn Embedder> {
        self.embedder.clone()
    }

    /// [`Discovery::search_with`] for a need already embedded.
    pub fn search_embedded(
        &self,
        query: &Query,
        vector: &[f32],
        mode: Mode,
    ) -> Result<Vec<Hit>, InvalidQuery> {
        check_need(query)?;
        let limit = query.limit.unwrap_or(10);
        let filter = Filter::new(query)?;
        if vector.len() != self.embedder.dimension() {
            return Err(InvalidQuery(
                "the need's vector has the wrong dimension".into(),
            ));
        }
        let vector = vector.to_vec();
        let terms = text::terms(&query.need);
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let packed = filter.pack(&inner.names);

        // Dense candidates: exact over the admitted few, or a filtered walk.
        // Plan by selectivity: how many entries does the filter admit? Read
        // group by group (one category's, or each in turn): in memory order.
        let unfiltered = filter.names.is_empty();
        let mut admitted: Vec<(&Group<Packed>, Vec<u32>)> = Vec::new();
        let admitted_count = if unfiltered && inner.by_key.len() > self.exact_scan_max {
            inner.by_key.len() // the walk runs without a filter
        } else {
            let groups: &[Group<Packed>] = match packed.category {
                Some(Some(c)) => inner.groups.get(c as usize..=c as usize).unwrap_or(&[]),
                Some(None) => &[],
                None => &inner.groups,
            };
            let admits = |id: usize, p: &Packed| {
                packed.admits(p)
                    && (!packed.needs_slot
                        || inner.slots[id].as_ref().is_some_and(|s| filter.admits(s)))
            };
            for group in groups {
                let mut positions = Vec::new();
                group.admitted(admits, &mut positions);
                if !positions.is_empty() {
                    admitted.push((group, positions));
                }
            }
            admitted.iter().map(|(_, p)| p.len()).sum()
        };
        // What the plan admitted, as one bit per slot (12.5 KB at 100,000:
        // the lexical side and the walk test it instead of reading facts
        // scattered over megabytes). Without filters: every live slot.
        let bits: Option<Vec<u64>> = (!unfiltered).then(|| {
            let mut bits = vec![0u64; inner.slots.len().div_ceil(64)];
            for (group, positions) in &admitted {
                for &position in positions {
                    let id = group.id(position);
                    bits[id / 64] |= 1 << (id % 64);
                }
            }
            bits
        });
        let admit = |id: usize| match &bits {
            Some(bits) => bits.get(id / 64).is_some_and(|w| (w >> (id % 64)) & 1 == 1),
            None => inner.packed.get(id).is_some_and(|p| p.live),
        };
        let mut dense: Vec<(usize, f32)> = if admitted_count <= CODES_MIN {
            admitted
                .iter()
                .flat_map(|(group, positions)| positions.iter().map(|&p| group.id(p)))
                .map(|id| (id, dot(&vector, inner.vector(id))))
                .collect()
        } else if admitted_count <= self.exact_scan_max {
            // Many admitted: rank by the 8-bit codes, rescore the best
            // exactly (the codes' error, ~0.005, only reorders near-ties).
            let code = Code::of(&vector);
            let mut approximate = Vec::with_capacity(admitted_count);
            for (group, positions) in &admitted {
                group.scan(&code, positions, &mut approximate);
            }
            best_first(&mut approximate, CANDIDATES, |c| c.1);
            approximate
                .into_iter()
                .map(|(id, _)| (id, dot(&vector, inner.vector(id))))
                .collect()
        } else {
            // The walk's cost grows with k: ask for what the fusion can use
            // (a dense rank past 4 × limit adds at most weight / 100 to a score).
            let k = (limit * 4).clamp(40, CANDIDATES).min(admitted_count);
            let walk = |id: &usize| admit(*id);
            // Tombstones stay in the graph until a rebuild: without them the
            // walk needs no filter at all (the fastest search).
            let bare = unfiltered && inner.tombstones == 0;
            let filter: Option<&dyn hnsw_rs::filter::FilterT> =
                if bare { None } else { Some(&walk) };
            let mut found: Vec<(usize, f32)> = inner
                .hnsw
                .search_filter(&vector, k, k.max(HNSW_EF_SEARCH_MIN), filter)
                .into_iter()
                // Tombstoned points are still in the graph.
                .filter(|n| inner.slots.get(n.d_id).is_some_and(Option::is_some))
                .map(|n| (n.d_id, 1.0 - n.distance))
                .collect();
            for &id in &inner.orphans {
                if admit(id) && !found.iter().any(|(f, _)| *f == id) {
                    found.push((id, dot(&vector, inner.vector(id))));
                }
            }
            found
        };
        best_first(&mut dense, CANDIDATES, |c| c.1);
        if mode == Mode::Lexical {
            dense.clear();
        }

        let mut lexical = match mode {
            Mode::Dense => Vec::new(),
            Mode::Lexical => inner
                .bm25
                .score(&terms, admit)
                .into_iter()
                .map(|(id, score)| (id, score, 0.0))
                .collect(),
            // Without filters every scored document is admitted (BM25 scores
            // live ones only): no per-document check, no slot to read.
            Mode::Fused if filter.names.is_empty() => inner.lexical(&terms, &|_| true),
            Mode::Fused => inner.lexical(&terms, &admit),
        };
        best_first(&mut lexical, CANDIDATES, |c| c.1);

        // Reciprocal-rank fusion of the two rankings.
        let mut fused: HashMap<usize, Explanation> =
            HashMap::with_capacity(dense.len() + lexical.len());
        let blank = || Explanation {
            matched_terms: Vec::new(),
            dense_similarity: 0.0,
            dense_rank: None,
            lexical_score: 0.0,
            lexical_rank: None,
            filters_passed: Vec::new(),
            rating_boost: 1.0,
            agent_score: 0.0,
        };
        for (rank, &(id, similarity)) in dense.iter().enumerate() {
            let e = fused.entry(id).or_insert_with(blank);
            e.dense_similarity = similarity;
            e.dense_rank = Some(rank + 1);
        }
        for (rank, (id, score, agent)) in lexical.into_iter().enumerate() {
            let e = fused.entry(id).or_insert_with(blank);
            e.lexical_score = score;
            e.lexical_rank = Some(rank + 1);
            e.agent_score = agent;
        }
        let dense_weight = self.embedder.fusion_weight();
        let mut ranked: Vec<(usize, f32, Explanation)> = fused
            .into_iter()
            .filter(|(id, _)| inner.slots[*id].is_some())
            .map(|(id, mut e)| {
                let rrf = |rank: Option<usize>| rank.map_or(0.0, |r| 1.0 / (RRF_K + r as f32));
                let rating = inner.packed[id].rating;
                e.rating_boost = if rating.is_nan() {
                    1.0
                } else {
                    1.0 + self.rating_boost * ((rating as f32 - 3.0) / 2.0).clamp(-1.0, 1.0)
                };
                let score =
                    (dense_weight * rrf(e.dense_rank) + rrf(e.lexical_rank)) * e.rating_boost;
                (id, score, e)
            })
            .collect();
        // The best `limit`, ties by key; only those become hits.
        let key = |id: usize| inner.slots[id].as_ref().map_or("", |s| s.key.as_str());
        let order = |a: &(usize, f32, Explanation), b: &(usize, f32, Explanation)| {
            b.1.total_cmp(&a.1).then_with(|| key(a.0).cmp(key(b.0)))
        };
        if ranked.len() > limit {
            ranked.select_nth_unstable_by(limit, order);
            ranked.truncate(limit);
        }
        ranked.sort_unstable_by(order);
        let mut hits: Vec<Hit> = ranked
            .into_iter()
            .map(|(id, score, mut explanation)| {
                // Lexical-only hits were not scored densely: say how similar.
                if explanation.dense_rank.is_none() {
                    explanation.dense_similarity = dot(&vector, inner.vector(id));
                }
                explanation.filters_passed = filter.names.clone();
                Hit {
                    key: key(id).to_string(),
                    score,
                    explanation,
                }
            })
            .collect();
        // Matched terms only for what is returned.
        for hit in &mut hits {
            if let Some(slot) = inner
                .by_key
                .get(&hit.key)
                .and_then(|&id| inner.slots[id].as_ref())
            {
                let mut matched: Vec<String> = terms
                    .iter()
                    .filter(|t| slot.terms.iter().any(|(s, _)| s == *t))
                    .cloned()
                    .collect();
                matched.dedup();
                hit.explanation.matched_terms = matched;
            }
        }
        Ok(hits)
    }
}

impl Inner {
    /// Point `id`'s vector.
    fn vector(&self, id: usize) -> &[f32] {
        &self.vectors[id * self.dimension..(id + 1) * self.dimension]
    }

    /// The copy of slot `id`'s packed facts in its group.
    fn group_facts(&mut self, id: usize) -> &mut Packed {
        let (group, position) = self.placed[id];
        self.groups[group as usize].facts_mut(position as usize)
    }

    /// Adds a slot whose vector is in the graph under the next id: to the
    /// vector arena, the lexical indexes, the key map and its agent's document.
    fn place(&mut self, slot: Slot, vector: &[f32]) {
        let id = self.slots.len();
        if self.dimension == 0 {
            self.dimension = vector.len();
        }
        assert_eq!(
            vector.len(),
            self.dimension,
            "vectors of one index share a dimension"
        );
        // Gaps (points tombstoned in a reloaded dump) hold zeros.
        self.vectors.resize(id * self.dimension, 0.0);
        self.vectors.extend_from_slice(vector);
        self.bm25.insert(id, &slot.terms);
        self.by_key.insert(slot.key.clone(), id);
        let agent = slot.agent.clone();
        let packed = self.names.pack(&slot.category, &slot.facts);
        self.packed.resize(id, Packed::default());
        self.packed.push(packed);
        let group = packed.category as usize;
        if self.groups.len() <= group {
            self.groups.resize_with(group + 1, Group::default);
        }
        let position = self.groups[group].push(id, packed, vector);
        self.placed.resize(id, (u32::MAX, u32::MAX));
        self.placed.push((group as u32, position as u32));
        self.slots.push(Some(slot));
        self.agents
            .members
            .entry(agent.clone())
            .or_default()
            .push(id);
        self.reindex_agent(&agent);
    }

    fn tombstone(&mut self, key: &str) {
        if let Some(id) = self.by_key.remove(key) {
            if let Some(slot) = self.slots[id].take() {
                self.packed[id].live = false;
                *self.group_facts(id) = self.packed[id];
                self.bm25.remove(id, &slot.terms);
                if let Some(ids) = self.agents.members.get_mut(&slot.agent) {
                    ids.retain(|&i| i != id);
                }
                self.reindex_agent(&slot.agent);
            }
            self.tombstones += 1;
        }
    }

    /// hnsw_rs cannot delete: once tombstones outnumber live entries (and
    /// there are enough to matter), rebuild from the live ones.
    /// A fresh index of `slots` (in order), checked for unreachable points.
    fn build(slots: Vec<(Slot, Vec<f32>)>) -> Inner {
        let mut inner = new_inner(slots.len());
        for (slot, vector) in slots {
            inner.hnsw.insert_slice((&vector, inner.slots.len()));
            inner.place(slot, &vector);
        }
        inner.check_reachable();
        inner
    }

    /// Indexes `slot`, replacing the slot of its key.
    fn insert(&mut self, slot: Slot, vector: &[f32]) {
        self.tombstone(&slot.key);
        let id = self.slots.len();
        self.hnsw.insert_slice((vector, id));
        if !self.finds_itself(id, vector) {
            self.orphans.push(id);
        }
        self.place(slot, vector);
    }

    /// Whether a search for point `id`'s own vector finds it.
    fn finds_itself(&self, id: usize, vector: &[f32]) -> bool {
        self.hnsw
            .search_filter(vector, 4, HNSW_EF_SELF_CHECK, None)
            .iter()
            .any(|n| n.d_id == id)
    }

    /// After a build: every live point must find itself; those that do not
    /// become orphans (scored exactly).
    fn check_reachable(&mut self) {
        self.orphans = (0..self.slots.len())
            .filter(|&id| self.slots[id].is_some() && !self.finds_itself(id, self.vector(id)))
            .collect();
        if !self.orphans.is_empty() {
            tracing::warn!(
                orphans = self.orphans.len(),
                "discovery: points the graph does not reach are scored exactly"
            );
        }
    }

    /// Rewrites an agent's document after its capabilities changed (BM25
    /// documents are immutable: the old one is removed, a new id indexed).
    fn reindex_agent(&mut self, agent: &str) {
        let agents = &mut self.agents;
        agents.doc_of.resize(self.slots.len(), None);
        if let Some((id, terms)) = agents.docs.remove(agent) {
            agents.bm25.remove(id, &terms);
        }
        let members = agents.members.get(agent).map_or(&[][..], Vec::as_slice);
        let doc = if members.len() < 2 {
            // One capability: the agent scores as the capability itself.
            if members.is_empty() {
                agents.members.remove(agent);
            }
            None
        } else {
            let terms: WeightedTerms = members
                .iter()
                .filter_map(|&id| self.slots[id].as_ref())
                .flat_map(|slot| slot.terms.iter().cloned())
                .collect();
            let id = agents.names.len();
            agents.names.push(agent.to_string());
            agents.bm25.insert(id, &terms);
            agents.docs.insert(agent.to_string(), (id, terms));
            Some(id)
        };
        for &member in agents.members.get(agent).into_iter().flatten() {
            agents.doc_of[member] = doc;
        }
        // Replaced documents leave dead ids behind: compact now and then.
        if agents.names.len() > 2 * agents.docs.len() + 1_024 {
            let docs = std::mem::take(&mut agents.docs);
            agents.bm25 = Bm25::default();
            agents.names.clear();
            for (agent, (_, terms)) in docs {
                let id = agents.names.len();
                agents.bm25.insert(id, &terms);
                agents.names.push(agent.clone());
                for &member in agents.members.get(&agent).into_iter().flatten() {
                    agents.doc_of[member] = Some(id);
                }
                agents.docs.insert(agent, (id, terms));
            }
        }
    }

    /// The lexical ranking: each admitted capability's BM25 score plus
    /// [`AGENT_WEIGHT`] × its agent's (over the text of all the agent's
    /// capabilities; an agent of one capability scores as that capability).
    /// An agent's capabilities serve one domain and needs often take several
    /// of them, so a need that matches an agent as a whole lifts each of its
    /// capabilities, also those whose own text is terse; the best agents'
    /// admitted capabilities all join. `(id, score, agent part)`.
    fn lexical(&self, terms: &[String], admit: &dyn Fn(usize) -> bool) -> Vec<(usize, f32, f32)> {
        self.bm25.with_scores(terms, |own, touched| {
            self.agents
                .bm25
                .with_scores(terms, |by_doc, agents_touched| {
                    let agent_part = |id: usize| {
                        AGENT_WEIGHT
                            * match self.agents.doc_of.get(id).copied().flatten() {
                                Some(doc) => by_doc[doc],
                                None => own[id],
                            }
                    };
                    let mut ranked: Vec<(usize, f32, f32)> = touched
                        .iter()
                        .filter(|&&id| admit(id))
                        .map(|&id| {
                            let agent = agent_part(id);
                            (id, own[id] + agent, agent)
                        })
                        .collect();
                    let mut agents: Vec<(usize, f32)> =
                        agents_touched.iter().map(|&d| (d, by_doc[d])).collect();
                    best_first(&mut agents, AGENTS_SPREAD, |a| a.1);
                    for (doc, _) in agents {
                        let members = self.agents.members.get(&self.agents.names[doc]);
                        for &member in members.into_iter().flatten().take(SIBLINGS_MAX) {
                            // Members with a score of their own are in already.
                            if own[member] == 0.0 && admit(member) {
                                let agent = agent_part(member);
                                ranked.push((member, agent, agent));
                            }
                        }
                    }
                    ranked
                })
        })
    }
}

/// Locks a mutex, also one a panicking thread left poisoned.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Keeps the `n` best of `items` by `score`, best first (ties by id): a
/// selection, then a sort of those `n` only.
fn best_first<T: Copy + HasId>(items: &mut Vec<T>, n: usize, score: impl Fn(&T) -> f32) {
    let order = |a: &T, b: &T| score(b).total_cmp(&score(a)).then(a.id().cmp(&b.id()));
    if items.len() > n {
        items.select_nth_unstable_by(n, order);
        items.truncate(n);
    }
    items.sort_unstable_by(order);
}

/// Ranked tuples lead with their slot id.
trait HasId {
    fn id(&self) -> usize;
}

impl HasId for (usize, f32) {
    fn id(&self) -> usize {
        self.0
    }
}

impl HasId for (usize, f32, f32) {
    fn id(&self) -> usize {
        self.0
    }
}

/// The documents of agents with two capabilities or more, for the agent
/// part of the lexical score.
#[derive(Default)]
struct Agents {
    /// Live capability slots of each agent.
    members: HashMap<String, Vec<usize>>,
    /// By slot id: its agent's current document, if the agent has one.
    doc_of: Vec<Option<usize>>,
    /// Each agent's current document id and terms.
    docs: HashMap<String, (usize, WeightedTerms)>,
    /// Agent of each document id (replaced ones included until compaction).
    names: Vec<String>,
    bm25: Bm25,
}

/// A slot's filterable facts, packed.
#[derive(Clone, Copy)]
struct Packed {
    live: bool,
    category: u32,
    encryption: bool,
    retention: Retention,
    /// Bit i: interned jurisdiction i (< 63); bit 63: any beyond those.
    jurisdictions: u64,
    cost: u64,
    latency_ms_max: u64,
    uptime: f64,
    /// NaN when unrated (fails every `rating_min`).
    rating: f64,
}

impl Default for Packed {
    fn default() -> Self {
        Packed {
            live: false,
            category: u32::MAX,
            encryption: false,
            retention: Retention::None,
            jurisdictions: 0,
            cost: 0,
            latency_ms_max: 0,
            uptime: 0.0,
            rating: f64::NAN,
        }
    }
}

/// Bit of jurisdictions past the first 63 interned.
const OTHER_JURISDICTION: u64 = 1 << 63;

#[derive(Default)]
struct Interned {
    categories: HashMap<String, u32>,
    jurisdictions: HashMap<String, u32>,
}

impl Interned {
    fn pack(&mut self, category: &str, f: &Facts) -> Packed {
        let next = self.categories.len() as u32;
        let category = *self.categories.entry(category.to_string()).or_insert(next);
        let mut jurisdictions = 0u64;
        for j in &f.jurisdictions {
            let next = self.jurisdictions.len() as u32;
            let bit = *self.jurisdictions.entry(j.to_uppercase()).or_insert(next);
            jurisdictions |= if bit < 63 {
                1 << bit
            } else {
                OTHER_JURISDICTION
            };
        }
        Packed {
            live: true,
            category,
            encryption: f.encryption,
            retention: f.retention,
            jurisdictions,
            cost: f.expected_cost_micros,
            latency_ms_max: f.latency_ms_max,
            uptime: f.uptime,
            rating: f.rating.unwrap_or(f64::NAN),
        }
    }
}

/// A filter resolved against the interned names: what [`Packed`] answers,
/// and whether the slot must be read for the rest (tags, rare jurisdictions).
struct PackedFilter<'a> {
    filter: &'a Filter,
    /// `Some(None)`: a category nothing has.
    category: Option<Option<u32>>,
    /// Bits any of which admit; `OTHER_JURISDICTION` sends to the slot.
    jurisdiction: Option<u64>,
    needs_slot: bool,
}

impl PackedFilter<'_> {
    fn admits(&self, p: &Packed) -> bool {
        let f = self.filter;
        p.live
            && self.category.is_none_or(|c| c == Some(p.category))
            && self
                .jurisdiction
                .is_none_or(|bits| p.jurisdictions & bits != 0)
            && f.max_price_micros.is_none_or(|m| p.cost <= m)
            && f.latency_ms_max.is_none_or(|l| p.latency_ms_max <= l)
            && f.uptime_min.is_none_or(|u| p.uptime >= u)
            && f.retention.is_none_or(|r| p.retention <= r)
            && f.encryption.is_none_or(|e| !e || p.encryption)
            && f.rating_min.is_none_or(|r| p.rating >= r)
    }
}

struct Filter {
    category: Option<String>,
    tags: Vec<String>,
    max_price_micros: Option<u64>,
    latency_ms_max: Option<u64>,
    uptime_min: Option<f64>,
    retention: Option<Retention>,
    encryption: Option<bool>,
    jurisdiction: Option<String>,
    rating_min: Option<f64>,
    names: Vec<String>,
}

impl Filter {
    fn pack<'a>(&'a self, names: &Interned) -> PackedFilter<'a> {
        let jurisdiction = self.jurisdiction.as_ref().map(|j| {
            match names.jurisdictions.get(j) {
                Some(&bit) if bit < 63 => 1u64 << bit,
                Some(_) => OTHER_JURISDICTION,
                None => 0, // nothing has it
            }
        });
        PackedFilter {
            filter: self,
            category: self
                .category
                .as_ref()
                .map(|c| names.categories.get(c).copied()),
            jurisdiction,
            needs_slot: !self.tags.is_empty() || jurisdiction == Some(OTHER_JURISDICTION),
        }
    }

    fn new(q: &Query) -> Result<Filter, InvalidQuery> {
        if q.uptime_min.is_some_and(|u| !(0.0..=1.0).contains(&u)) {
            return Err(InvalidQuery("uptime_min must be between 0 and 1".into()));
        }
        if q.rating_min.is_some_and(|r| !(0.0..=5.0).contains(&r)) {
            return Err(InvalidQuery("rating_min must be between 0 and 5".into()));
        }
        let policy = q.data_policy.clone().unwrap_or_default();
        let mut names = Vec::new();
        let mut note = |on: bool, name: &str| {
            if on {
                names.push(name.to_string());
            }
        };
        note(q.category.is_some(), "category");
        note(q.tags.as_ref().is_some_and(|t| !t.is_empty()), "tags");
        note(q.max_price_micros.is_some(), "max_price_micros");
        note(q.latency_ms_max.is_some(), "latency_ms_max");
        note(q.uptime_min.is_some(), "uptime_min");
        note(policy.retention.is_some(), "data_policy.retention");
        note(policy.encryption.is_some(), "data_policy.encryption");
        note(policy.jurisdiction.is_some(), "data_policy.jurisdiction");
        note(q.rating_min.is_some(), "rating_min");
        Ok(Filter {
            category: q.category.clone(),
            tags: q
                .tags
                .clone()
                .unwrap_or_default()
                .iter()
                .map(|t| t.to_lowercase())
                .collect(),
            max_price_micros: q.max_price_micros,
            latency_ms_max: q.latency_ms_max,
            uptime_min: q.uptime_min,
            retention: policy.retention,
            encryption: policy.encryption,
            jurisdiction: policy.jurisdiction.map(|j| j.to_uppercase()),
            rating_min: q.rating_min,
            names,
        })
    }

    fn admits(&self, s: &Slot) -> bool {
        let f = &s.facts;
        self.category.as_ref().is_none_or(|c| *c == s.category)
            && self.tags.iter().all(|t| s.tags.contains(t))
            && self
                .max_price_micros
                .is_none_or(|p| f.expected_cost_micros <= p)
            && self.latency_ms_max.is_none_or(|l| f.latency_ms_max <= l)
            && self.uptime_min.is_none_or(|u| f.uptime >= u)
            && self.retention.is_none_or(|r| f.retention <= r)
            && self.encryption.is_none_or(|e| !e || f.encryption)
            && self
                .jurisdiction
                .as_ref()
                .is_none_or(|j| f.jurisdictions.iter().any(|x| x.eq_ignore_ascii_case(j)))
            && self
                .rating_min
                .is_none_or(|r| f.rating.is_some_and(|x| x >= r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        key: &str,
        description: &str,
        category: &str,
        cost: u64,
        jurisdictions: &[&str],
    ) -> Entry {
        Entry {
            key: key.into(),
            agent: key.split('.').next().unwrap_or(key).into(),
            name: key.rsplit('.').next().unwrap_or(key).into(),
            description: description.into(),
            category: category.into(),
            tags: Vec::new(),
            fields: Vec::new(),
            facts: Facts {
                expected_cost_micros: cost,
                latency_ms_max: 100,
                uptime: 0.99,
                retention: Retention::None,
                encryption: true,
                jurisdictions: jurisdictions.iter().map(|j| j.to_string()).collect(),
                rating: None,
            },
        }
    }

    fn index(entries: Vec<Entry>) -> Discovery {
        // A low exact-scan threshold so that broad queries walk the graph.
        let discovery =
            Discovery::new(Arc::new(HashEmbedder::default())).with_exact_scan_max(1_000);
        for e in entries {
            let v = discovery.embed(&e);
            discovery.upsert(e, v);
        }
        discovery
    }

    /// Words for synthetic descriptions: distinct enough that each
    /// description is its own best match.
    const VOCABULARY: &[&str] = &[
        "invoice",
        "weather",
        "translate",
        "currency",
        "stock",
        "genome",
        "flight",
        "hotel",
        "recipe",
        "music",
        "lyrics",
        "football",
        "tennis",
        "crypto",
        "mortgage",
        "insurance",
        "parcel",
        "shipping",
        "calendar",
        "email",
        "sms",
        "geocode",
        "satellite",
        "earthquake",
        "pollen",
        "vaccine",
        "patent",
        "trademark",
        "court",
        "election",
        "census",
        "tariff",
        "freight",
        "harbor",
        "railway",
        "subway",
        "bicycle",
        "scooter",
        "parking",
        "toll",
    ];

    /// Property: every indexed capability is found (rank 1) by its own
    /// description, whatever else is in the index, including after more
    /// than enough replacements to force a rebuild.
    /// Reputation is a configurable boost: equal relevance, the better rated
    /// first; with a boost of 0 ratings do not move the order (ties by key).
    #[test]
    fn the_rating_boost_is_configurable() {
        let rated = |key: &str, rating: f64| {
            let mut e = entry(
                key,
                "forecast the weather for a city",
                "weather",
                0,
                &["EU"],
            );
            e.facts.rating = Some(rating);
            e
        };
        let order = |boost: f32| {
            let discovery =
                Discovery::new(Arc::new(HashEmbedder::default())).with_rating_boost(boost);
            for e in [rated("a.low", 1.0), rated("b.high", 5.0)] {
                let v = discovery.embed(&e);
                discovery.upsert(e, v);
            }
            let hits = discovery
                .search(&Query {
                    need: "weather forecast".into(),
                    ..Query::default()
                })
                .unwrap();
            let boosts: Vec<f32> = hits.iter().map(|h| h.explanation.rating_boost).collect();
            (hits.into_iter().map(|h| h.key).collect::<Vec<_>>(), boosts)
        };
        assert_eq!(
            order(RATING_BOOST),
            (vec!["b.high".into(), "a.low".into()], vec![1.1, 0.9])
        );
        assert_eq!(
            order(0.0),
            (vec!["a.low".into(), "b.high".into()], vec![1.0, 1.0])
        );
        assert_eq!(order(0.5).1, vec![1.5, 0.5]);
    }

    /// Once tombstones outnumber the live entries the index rebuilds aside:
    /// searches and changes go on meanwhile, the changes made during the
    /// build are replayed onto the new index, and the swap loses nothing.
    #[test]
    fn a_rebuild_runs_aside_and_keeps_the_changes_made_meanwhile() {
        let described = |i: usize| {
            entry(
                &format!("agent-{i}.cap"),
                &format!(
                    "{} service {i} for {} and {} data",
                    VOCABULARY[i % VOCABULARY.len()],
                    VOCABULARY[(i * 7 + 3) % VOCABULARY.len()],
                    VOCABULARY[(i * 13 + 5) % VOCABULARY.len()]
                ),
                "general",
                0,
                &["EU"],
            )
        };
        let entries: Vec<Entry> = (0..300).map(described).collect();
        let discovery = index(entries.clone());
        // Replacing every entry makes tombstones equal the live entries.
        for e in &entries {
            let v = discovery.embed(e);
            discovery.upsert(e.clone(), v);
        }
        assert!(lock(&discovery.rebuild).is_some(), "a rebuild started");
        // Changes while it (probably) runs: removals and new entries.
        for e in entries.iter().take(10) {
            discovery.remove(&e.key);
        }
        let added: Vec<Entry> = (300..305).map(described).collect();
        for e in &added {
            let v = discovery.embed(e);
            discovery.upsert(e.clone(), v);
        }
        discovery.settle();
        assert!(lock(&discovery.pending).is_none());
        {
            let inner = discovery.inner.read().unwrap();
            // The 300 replaced slots are gone; only the 10 later removals
            // (replayed as tombstones, if the build was still running) remain.
            assert!(inner.tombstones <= 10, "{} tombstones", inner.tombstones);
            assert_eq!(inner.slots.len(), 295 + inner.tombstones);
        }
        assert_eq!(discovery.len(), 295);
        let top = |need: &str| {
            discovery
                .search(&Query {
                    need: need.into(),
                    limit: Some(3),
                    ..Query::default()
                })
                .unwrap()
        };
        for e in entries.iter().skip(10).chain(&added) {
            assert!(
                top(&e.description).iter().any(|h| h.key == e.key),
                "{}",
                e.key
            );
        }
        for e in entries.iter().take(10) {
            assert!(
                top(&e.description).iter().all(|h| h.key != e.key),
                "{}",
                e.key
            );
        }
    }

    #[test]
    fn every_capability_is_found_by_its_own_description() {
        let mut entries = Vec::new();
        for i in 0..300 {
            let words: Vec<&str> = (0..4)
                .map(|j| VOCABULARY[(i * 7 + j * 13 + i / 40) % VOCABULARY.len()])
                .collect();
            let description = format!(
                "{} service {i} for {} and {} data with {}",
                words[0], words[1], words[2], words[3]
            );
            entries.push(entry(
                &format!("agent-{i}.cap"),
                &description,
                "general",
                0,
                &["EU"],
            ));
        }
        let discovery = index(entries.clone());
        // Replace a third of them (same text): tombstones, no rebuild yet.
        for e in entries.iter().take(100) {
            let v = discovery.embed(e);
            discovery.upsert(e.clone(), v);
        }
        assert_eq!(discovery.len(), 300);
        for e in &entries {
            let hits = discovery.search(&Query {
                need: e.description.clone(),
                limit: Some(3),
                ..Query::default()
            });
            let hits = hits.unwrap_or_default();
            assert!(
                hits.iter().any(|h| h.key == e.key),
                "{} not found by its description",
                e.key
            );
        }
    }

    /// The filters run inside the search: a query whose few matching entries
    /// are textually far from the need still gets `limit` of them.
    /// Above `CODES_MIN` admitted entries the exact scan ranks by 8-bit
    /// codes and rescores the best: its dense ranking equals a brute-force
    /// scan of the admitted vectors, and it reads only the admitted.
    #[test]
    fn many_admitted_rank_by_codes_as_a_brute_force_scan_would() {
        let mut entries = Vec::new();
        for i in 0..3_000 {
            let words: Vec<&str> = (0..3)
                .map(|j| VOCABULARY[(i * 11 + j * 17 + i / 50) % VOCABULARY.len()])
                .collect();
            let category = if i % 5 == 0 { "rare" } else { "common" };
            let description = format!("{} {} {} service {i}", words[0], words[1], words[2]);
            entries.push(entry(
                &format!("a{i}.cap"),
                &description,
                category,
                10,
                &["EU"],
            ));
        }
        let discovery =
            Discovery::new(Arc::new(HashEmbedder::default())).with_exact_scan_max(10_000);
        let mut vectors = HashMap::new();
        for e in &entries {
            let v = discovery.embed(e);
            vectors.insert(e.key.clone(), (e.category.clone(), v.clone()));
            discovery.upsert(e.clone(), v);
        }
        for need in [
            "weather flight hotel",
            "crypto mortgage insurance",
            "court patent",
        ] {
            let query = Query {
                need: need.into(),
                category: Some("common".into()),
                limit: Some(20),
                ..Query::default()
            };
            assert!(
                entries.iter().filter(|e| e.category == "common").count() > CODES_MIN,
                "the codes path runs"
            );
            let q = discovery.embedder().embed(need);
            let mut exact: Vec<(f32, &String)> = vectors
                .iter()
                .filter(|(_, (c, _))| c == "common")
                .map(|(k, (_, v))| (dot(&q, v), k))
                .collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
            let hits = discovery.search_with(&query, Mode::Dense).unwrap();
            assert_eq!(hits.len(), 20);
            for (hit, (similarity, key)) in hits.iter().zip(&exact) {
                // Equal similarity may order either way; the values agree.
                assert!(
                    (hit.explanation.dense_similarity - similarity).abs() < 1e-5,
                    "{need}: {} {} vs {key} {similarity}",
                    hit.key,
                    hit.explanation.dense_similarity
                );
                assert!(vectors[&hit.key].0 == "common");
            }
        }
    }

    #[test]
    fn tight_filters_still_fill_the_limit_from_far_away() {
        let mut entries = Vec::new();
        for i in 0..5_000 {
            entries.push(entry(
                &format!("near-{i}.convert"),
                "convert units of length and mass",
                "utilities",
                10,
                &["EU"],
            ));
        }
        for i in 0..5 {
            entries.push(entry(
                &format!("far-{i}.poem"),
                "writes a poem about the sea",
                "art",
                10,
                &["JP"],
            ));
        }
        let discovery = index(entries);
        let query = Query {
            need: "convert units of length".into(),
            data_policy: Some(DataPolicyFilter {
                jurisdiction: Some("jp".into()),
                ..Default::default()
            }),
            limit: Some(5),
            ..Query::default()
        };
        let hits = discovery.search(&query).unwrap_or_default();
        assert_eq!(hits.len(), 5);
        assert!(hits.iter().all(|h| h.key.starts_with("far-")));
        assert_eq!(
            hits[0].explanation.filters_passed,
            vec!["data_policy.jurisdiction".to_string()]
        );

        // A broad filter (more admitted than the exact-scan threshold) walks
        // the HNSW graph with the filter applied during the walk.
        let broad = Query {
            need: "convert units".into(),
            category: Some("utilities".into()),
            limit: Some(10),
            ..Query::default()
        };
        let hits = discovery.search(&broad).unwrap_or_default();
        assert_eq!(hits.len(), 10);
        assert!(hits.iter().all(|h| h.key.starts_with("near-")));
        // The walk alone (dense ranking only) fills the limit with admitted entries.
        let walked = discovery
            .search_with(&broad, Mode::Dense)
            .unwrap_or_default();
        assert_eq!(walked.len(), 10);
        assert!(
            walked
                .iter()
                .all(|h| h.key.starts_with("near-") && h.explanation.dense_rank.is_some())
        );
    }

    /// Filters read packed facts: jurisdictions past the 63 that fit the
    /// bit set still filter exactly (through the slot), unknown categories
    /// and jurisdictions admit nothing, and refreshed facts take effect.
    #[test]
    fn packed_filters_agree_with_the_facts() {
        let codes: Vec<String> = (0..70).map(|i| format!("J{i:02}")).collect();
        let entries: Vec<Entry> = codes
            .iter()
            .enumerate()
            .map(|(i, code)| {
                entry(
                    &format!("agent-{i}.cap"),
                    "ledger reconciliation",
                    "finance",
                    10,
                    &[code.as_str()],
                )
            })
            .collect();
        let discovery = index(entries.clone());
        let find = |query: Query| -> Vec<String> {
            discovery
                .search(&Query {
                    need: "ledger reconciliation".into(),
                    limit: Some(100),
                    ..query
                })
                .expect("search")
                .into_iter()
                .map(|h| h.key)
                .collect()
        };
        for (i, code) in [(3, "j03"), (68, "J68")] {
            let policy = DataPolicyFilter {
                jurisdiction: Some(code.into()),
                ..DataPolicyFilter::default()
            };
            assert_eq!(
                find(Query {
                    data_policy: Some(policy),
                    ..Query::default()
                }),
                [format!("agent-{i}.cap")]
            );
        }
        let nowhere = DataPolicyFilter {
            jurisdiction: Some("XX".into()),
            ..DataPolicyFilter::default()
        };
        assert!(
            find(Query {
                data_policy: Some(nowhere),
                ..Query::default()
            })
            .is_empty()
        );
        assert!(
            find(Query {
                category: Some("nothing".into()),
                ..Query::default()
            })
            .is_empty()
        );
        assert_eq!(
            find(Query {
                max_price_micros: Some(10),
                ..Query::default()
            })
            .len(),
            70
        );
        let mut dearer = entries[5].facts.clone();
        dearer.expected_cost_micros = 11;
        discovery.update_facts("agent-5.cap", dearer);
        let cheap = find(Query {
            max_price_micros: Some(10),
            ..Query::default()
        });
        assert_eq!(cheap.len(), 69);
        assert!(!cheap.contains(&"agent-5.cap".to_string()));
    }

    /// A need that matches an agent lifts its terse capabilities: their own
    /// text matches nothing, their agent's does.
    #[test]
    fn an_agent_match_lifts_its_terse_capabilities() {
        let discovery = index(vec![
            entry(
                "parcel.history",
                "package tracking history with shipment events",
                "logistics",
                0,
                &["EU"],
            ),
            entry("parcel.count", "number of steps", "logistics", 0, &["EU"]),
            entry(
                "weather.now",
                "current weather for a city",
                "weather",
                0,
                &["EU"],
            ),
            entry("weather.week", "seven day forecast", "weather", 0, &["EU"]),
            entry(
                "finance.quote",
                "stock price of a company",
                "finance",
                0,
                &["EU"],
            ),
        ]);
        let hits = discovery
            .search(&Query {
                need: "package tracking".into(),
                ..Query::default()
            })
            .expect("search");
        let keys: Vec<&str> = hits.iter().map(|h| h.key.as_str()).collect();
        assert_eq!(keys[..2], ["parcel.history", "parcel.count"], "{keys:?}");
        let count = &hits[1].explanation;
        assert_eq!(count.lexical_rank, Some(2));
        assert!(count.agent_score > 0.0 && count.lexical_score == count.agent_score);
        assert!(count.matched_terms.is_empty());
        // BM25 alone does not see it.
        let lexical = discovery
            .search_with(
                &Query {
                    need: "package tracking".into(),
                    ..Query::default()
                },
                Mode::Lexical,
            )
            .expect("search");
        assert!(
            lexical.iter().all(|h| h.key != "parcel.count"),
            "{lexical:?}"
        );
    }

    #[test]
    fn removal_and_replacement_take_effect() {
        let discovery = index(vec![
            entry(
                "a.x",
                "translate text between languages",
                "text",
                5,
                &["EU"],
            ),
            entry("b.y", "forecast the weather", "weather", 5, &["EU"]),
        ]);
        let need = |n: &str| Query {
            need: n.into(),
            ..Query::default()
        };
        assert_eq!(
            discovery
                .search(&need("translate languages"))
                .unwrap_or_default()[0]
                .key,
            "a.x"
        );
        discovery.remove("a.x");
        assert!(
            discovery
                .search(&need("translate languages"))
                .unwrap_or_default()
                .iter()
                .all(|h| h.key != "a.x")
        );
        let replaced = entry(
            "b.y",
            "translate text between languages",
            "text",
            5,
            &["EU"],
        );
        let v = discovery.embed(&replaced);
        discovery.upsert(replaced, v);
        assert_eq!(discovery.len(), 1);
        assert_eq!(
            discovery
                .search(&need("translate languages"))
                .unwrap_or_default()[0]
                .key,
            "b.y"
        );
        assert!(
            discovery
                .search(&Query {
                    need: "x".into(),
                    limit: Some(0),
                    ..Query::default()
                })
                .is_err()
        );
    }
}
