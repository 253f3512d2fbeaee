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

//!
//! The rooms:
//! - [`entry`]: what is indexed (an [`Entry`] and its [`Facts`]);
//! - [`query`]: what is asked ([`Query`]) and answered ([`Hit`], [`Explanation`]);
//! - [`index`]: the [`Discovery`] handle (changes, settings, counts);
//! - `graph`: the index's inside: HNSW, slots, vectors, tombstones, orphans;
//! - `rebuild`: replacing a tombstone-heavy graph aside, changes replayed;
//! - `agents`: per-agent lexical evidence (an agent's capabilities together);
//! - `filter`: constraints, packed for scanning;
//! - `search`: the plan by selectivity, the dense and lexical rankings, fusion;
//! - `bm25`, `codes`, `text`: lexical scoring, 8-bit codes, tokenising;
//! - `embed` (and `model`, `onnx`): embedders; `bert_onnx`, `mpnet_bias`,
//!   `onnx_proto`: the model's ONNX graph, written from its weights;
//!   `persist`: the dump.

mod agents;
#[cfg(feature = "model")]
mod bert_onnx;
mod bm25;
mod codes;
mod embed;
pub mod entry;
mod filter;
mod graph;
pub mod index;
#[cfg(feature = "model")]
mod model;
#[cfg(feature = "model")]
mod mpnet_bias;
#[cfg(feature = "model")]
mod onnx;
#[cfg(feature = "model")]
mod onnx_proto;
mod persist;
pub mod query;
mod rank;
mod rebuild;
mod search;
mod text;

pub use crate::registry::Retention;
pub use embed::{Embedder, HashEmbedder, dot, embed_need, normalise};
pub use entry::{Entry, Facts};
pub use index::{Discovery, RATING_BOOST};
#[cfg(feature = "model")]
pub use model::ModelEmbedder;
#[cfg(feature = "model")]
pub use onnx::{OnnxEmbedder, load_model};
pub use persist::Restored;
pub use query::{
    DataPolicyFilter, Explanation, Hit, InvalidQuery, LIMIT_MAX, Mode, Query, check_need,
};

use std::sync::Mutex;

/// Locks a mutex, also one a panicking thread left poisoned.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
