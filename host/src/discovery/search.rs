//! A search: plan by selectivity (how many entries the filter admits), the
//! dense ranking (exact, by 8-bit codes, or a filtered HNSW walk), the
//! lexical ranking (with its agent evidence), reciprocal-rank fusion with
//! the rating boost, and each result's explanation.

use super::codes::{Code, Group};
use super::embed::dot;
use super::filter::{Filter, Packed};
use super::index::Discovery;
use super::query::{Explanation, Hit, InvalidQuery, Mode, Query, check_need};
use super::rank::best_first;
use super::text;
use std::collections::HashMap;

/// HNSW: smallest candidate list while searching (recall@10 against an
/// exact scan stays 1.000 at 100,000 entries with 40; below 32 it drops).
const HNSW_EF_SEARCH_MIN: usize = 40;
/// Above this many admitted entries an exact scan ranks by the 8-bit codes
/// first (below it the floats cost little).
pub(super) const CODES_MIN: usize = 2_048;
/// Candidates taken from each ranking before fusion.
const CANDIDATES: usize = 200;
/// Reciprocal-rank fusion constant.
const RRF_K: f32 = 60.0;

impl Discovery {
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
            Mode::Fused if filter.names.is_empty() => {
                inner.agents.lexical(&inner.bm25, &terms, &|_| true)
            }
            Mode::Fused => inner.agents.lexical(&inner.bm25, &terms, &admit),
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
