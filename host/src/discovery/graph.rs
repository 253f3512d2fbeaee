//! The index's inside: the HNSW graph, the slots beside it (terms, facts,
//! vectors end to end), tombstones and orphans. Changed under the
//! [`Discovery`](super::Discovery) write lock only.

use super::agents::Agents;
use super::bm25::Bm25;
use super::codes::Group;
use super::entry::Slot;
use super::filter::{Interned, Packed};
use hnsw_rs::prelude::{DistDot, Hnsw};
use std::collections::HashMap;

/// HNSW: links per node (hnsw_rs refuses more than 256 by exiting).
pub(super) const HNSW_M: usize = 16;
/// HNSW: candidate list while building.
pub(super) const HNSW_EF_CONSTRUCTION: usize = 200;
/// HNSW: layers.
pub(super) const HNSW_LAYERS: usize = 16;
/// HNSW: candidate list of the check that a point finds itself (generous:
/// a point it misses is scored exactly on every walk from then on).
const HNSW_EF_SELF_CHECK: usize = 64;

pub(super) struct Inner {
    pub(super) hnsw: Hnsw<'static, f32, DistDot>,
    pub(super) slots: Vec<Option<Slot>>,
    pub(super) by_key: HashMap<String, usize>,
    pub(super) bm25: Bm25,
    /// Each agent's document: every live capability's terms together.
    pub(super) agents: Agents,
    /// Points a search for their own vector missed (hnsw_rs can leave
    /// points unreachable, its issues #32 and #37): scored exactly on every
    /// walk, so they are never lost.
    pub(super) orphans: Vec<usize>,
    /// By interned category: its slots (tombstoned ones included until a
    /// rebuild) with their packed facts and 8-bit codes, so that a filter
    /// plans over one category (or each in turn) reading memory in order.
    pub(super) groups: Vec<Group<Packed>>,
    /// By slot id: its group and position there.
    pub(super) placed: Vec<(u32, u32)>,
    /// By slot id: its filterable facts, packed, so that filtering reads one
    /// small contiguous array rather than every slot.
    pub(super) packed: Vec<Packed>,
    /// Interned categories and jurisdictions (for [`Packed`]).
    pub(super) names: Interned,
    /// Every slot's vector, end to end (`dimension` floats each; a
    /// tombstone's until a rebuild): an exact scan reads one array.
    pub(super) vectors: Vec<f32>,
    pub(super) dimension: usize,
    pub(super) tombstones: usize,
    /// Tombstones when a rebuild last failed (0: none failed).
    pub(super) rebuild_failed_at: usize,
}

pub(super) fn new_hnsw(capacity: usize) -> Hnsw<'static, f32, DistDot> {
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

pub(super) fn new_inner(capacity: usize) -> Inner {
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

impl Inner {
    /// Point `id`'s vector.
    pub(super) fn vector(&self, id: usize) -> &[f32] {
        &self.vectors[id * self.dimension..(id + 1) * self.dimension]
    }

    /// The copy of slot `id`'s packed facts in its group.
    pub(super) fn group_facts(&mut self, id: usize) -> &mut Packed {
        let (group, position) = self.placed[id];
        self.groups[group as usize].facts_mut(position as usize)
    }

    /// Adds a slot whose vector is in the graph under the next id: to the
    /// vector arena, the lexical indexes, the key map and its agent's document.
    pub(super) fn place(&mut self, slot: Slot, vector: &[f32]) {
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
        self.agents.reindex(&agent, &self.slots);
    }

    pub(super) fn tombstone(&mut self, key: &str) {
        if let Some(id) = self.by_key.remove(key) {
            if let Some(slot) = self.slots[id].take() {
                self.packed[id].live = false;
                *self.group_facts(id) = self.packed[id];
                self.bm25.remove(id, &slot.terms);
                if let Some(ids) = self.agents.members.get_mut(&slot.agent) {
                    ids.retain(|&i| i != id);
                }
                self.agents.reindex(&slot.agent, &self.slots);
            }
            self.tombstones += 1;
        }
    }

    /// hnsw_rs cannot delete: once tombstones outnumber live entries (and
    /// there are enough to matter), rebuild from the live ones.
    /// A fresh index of `slots` (in order), checked for unreachable points.
    pub(super) fn build(slots: Vec<(Slot, Vec<f32>)>) -> Inner {
        let mut inner = new_inner(slots.len());
        for (slot, vector) in slots {
            inner.hnsw.insert_slice((&vector, inner.slots.len()));
            inner.place(slot, &vector);
        }
        inner.check_reachable();
        inner
    }

    /// Indexes `slot`, replacing the slot of its key.
    pub(super) fn insert(&mut self, slot: Slot, vector: &[f32]) {
        self.tombstone(&slot.key);
        let id = self.slots.len();
        self.hnsw.insert_slice((vector, id));
        if !self.finds_itself(id, vector) {
            self.orphans.push(id);
        }
        self.place(slot, vector);
    }

    /// Whether a search for point `id`'s own vector finds it.
    pub(super) fn finds_itself(&self, id: usize, vector: &[f32]) -> bool {
        self.hnsw
            .search_filter(vector, 4, HNSW_EF_SELF_CHECK, None)
            .iter()
            .any(|n| n.d_id == id)
    }

    /// After a build: every live point must find itself; those that do not
    /// become orphans (scored exactly).
    pub(super) fn check_reachable(&mut self) {
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
}
