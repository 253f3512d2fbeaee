//! A search: plan by selectivity (how many entries the filter admits), the
//! dense ranking (exact, by 8-bit codes, or a filtered HNSW walk), the
//! lexical ranking (with its agent evidence), score fusion with the rating
//! boost, and each result's explanation.

use super::codes::{Code, Group};
use super::embed::{dot, embed_need};
use super::filter::{Filter, Packed};
use super::graph::Inner;
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

/// Two rankings, best first: dense `(who, similarity)` and lexical `(who,
/// score, agent part)`.
pub type Rankings<K> = (Vec<(K, f32)>, Vec<(K, f32, f32)>);

impl Discovery {
    /// Ranks the entries that pass every filter of `query`.
    pub fn search(&self, query: &Query) -> Result<Vec<Hit>, InvalidQuery> {
        self.search_with(query, Mode::Fused)
    }

    /// [`Discovery::search`] with a choice of rankings.
    pub fn search_with(&self, query: &Query, mode: Mode) -> Result<Vec<Hit>, InvalidQuery> {
        check_need(query)?;
        let vectors = embed_need(self.embedder.as_ref(), &query.need);
        self.search_embedded(query, &vectors, mode)
    }

    /// [`Discovery::search_with`] for a need already embedded: `vectors` as
    /// [`embed_need`] gives them (the whole need's, then any sentences'),
    /// or the whole need's alone.
    pub fn search_embedded(
        &self,
        query: &Query,
        vectors: &[f32],
        mode: Mode,
    ) -> Result<Vec<Hit>, InvalidQuery> {
        check_need(query)?;
        let limit = query.limit.unwrap_or(10);
        let filter = Filter::new(query)?;
        let dimension = self.embedder.dimension();
        if vectors.is_empty() || !vectors.len().is_multiple_of(dimension) {
            return Err(InvalidQuery(
                "the need's vector has the wrong dimension".into(),
            ));
        }
        let (vector, sentences) = vectors.split_at(dimension);
        let terms = text::query_terms(&query.need);
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let (mut dense, lexical) = self.rankings(&inner, &filter, vector, &terms, limit, mode);
        // A need of several sentences: every candidate's similarity is the
        // best of the whole need's and each sentence's, so a capability that
        // answers one part of the need is not drowned by the others
        // (docs/BENCHMARKS.md §5g). The ranking above found the candidates.
        let rescored = !sentences.is_empty() && mode != Mode::Lexical;
        let best_of = |id: usize, whole: f32| {
            let v = inner.vector(id);
            sentences
                .chunks_exact(dimension)
                .fold(whole, |best, s| best.max(dot(s, v)))
        };
        if rescored {
            for (id, similarity) in &mut dense {
                *similarity = best_of(*id, *similarity);
            }
        }

        // Score fusion: each ranking scaled to [0, 1] over its candidates
        // (similarity min-max, lexical by its best), then a weighted sum.
        // Unlike rank fusion it keeps how far apart the candidates are, so a
        // confident side outweighs a flat one (docs/BENCHMARKS.md §5c).
        let dense_weight = match mode {
            Mode::Fused => self.embedder.fusion_weight().clamp(0.0, 1.0),
            Mode::Lexical => 0.0,
            Mode::Dense => 1.0,
        };
        let (low, high) = dense
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &(_, s)| {
                (lo.min(s), hi.max(s))
            });
        let spread = (high - low).max(f32::EPSILON);
        let best_lexical = lexical.first().map_or(0.0, |c| c.1).max(f32::EPSILON);
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
        let mut ranked: Vec<(usize, f32, Explanation)> = fused
            .into_iter()
            .filter(|(id, _)| inner.slots[*id].is_some())
            .map(|(id, mut e)| {
                let rating = inner.packed[id].rating;
                e.rating_boost = if rating.is_nan() {
                    1.0
                } else {
                    1.0 + self.rating_boost * ((rating as f32 - 3.0) / 2.0).clamp(-1.0, 1.0)
                };
                // A candidate only the lexical side found counts as the
                // least similar of the dense ones, unless the need's
                // sentences score it (within the dense candidates' range).
                let dense = match e.dense_rank {
                    Some(_) => (e.dense_similarity - low) / spread,
                    None if rescored => {
                        e.dense_similarity = best_of(id, dot(vector, inner.vector(id)));
                        ((e.dense_similarity - low) / spread).clamp(0.0, 1.0)
                    }
                    None => 0.0,
                };
                let lexical = e.lexical_score / best_lexical;
                let score =
                    (dense_weight * dense + (1.0 - dense_weight) * lexical) * e.rating_boost;
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
                if explanation.dense_rank.is_none() && !rescored {
                    explanation.dense_similarity = dot(vector, inner.vector(id));
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
                // Words, not pairs: a pair matched only where its words did.
                let mut matched: Vec<String> = terms
                    .iter()
                    .filter(|t| !text::is_pair(t))
                    .filter(|t| slot.terms.iter().any(|(s, _)| s == *t))
                    .cloned()
                    .collect();
                matched.dedup();
                hit.explanation.matched_terms = matched;
            }
        }
        Ok(hits)
    }

    /// The two rankings behind an unfiltered search, by key, best first:
    /// dense `(key, similarity)` and lexical `(key, score, agent part)`. For
    /// studying fusion (`discovery-eval --dump`), not for serving.
    #[doc(hidden)]
    pub fn rankings_of(&self, need: &str, vector: &[f32]) -> Rankings<String> {
        let query = Query {
            need: need.to_string(),
            ..Query::default()
        };
        let Ok(filter) = Filter::new(&query) else {
            return (Vec::new(), Vec::new());
        };
        let terms = text::query_terms(need);
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let (dense, lexical) =
            self.rankings(&inner, &filter, vector, &terms, CANDIDATES, Mode::Fused);
        let key = |id: usize| {
            inner.slots[id]
                .as_ref()
                .map_or("", |s| s.key.as_str())
                .to_string()
        };
        (
            dense.into_iter().map(|(id, s)| (key(id), s)).collect(),
            lexical
                .into_iter()
                .map(|(id, s, a)| (key(id), s, a))
                .collect(),
        )
    }

    /// The two rankings a search fuses, `CANDIDATES` each at most, best
    /// first: dense `(id, similarity)` and lexical `(id, score, agent part)`,
    /// both over the entries `filter` admits.
    fn rankings(
        &self,
        inner: &Inner,
        filter: &Filter,
        vector: &[f32],
        terms: &[String],
        limit: usize,
        mode: Mode,
    ) -> Rankings<usize> {
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
                .map(|id| (id, dot(vector, inner.vector(id))))
                .collect()
        } else if admitted_count <= self.exact_scan_max {
            // Many admitted: rank by the 8-bit codes, rescore the best
            // exactly (the codes' error, ~0.005, only reorders near-ties).
            let code = Code::of(vector);
            let mut approximate = Vec::with_capacity(admitted_count);
            for (group, positions) in &admitted {
                group.scan(&code, positions, &mut approximate);
            }
            best_first(&mut approximate, CANDIDATES, |c| c.1);
            approximate
                .into_iter()
                .map(|(id, _)| (id, dot(vector, inner.vector(id))))
                .collect()
        } else {
            // The walk's cost grows with k: ask for what the fusion can use
            // (candidates past 4 × limit seldom reach the first `limit`).
            let k = (limit * 4).clamp(40, CANDIDATES).min(admitted_count);
            let walk = |id: &usize| admit(*id);
            // Tombstones stay in the graph until a rebuild: without them the
            // walk needs no filter at all (the fastest search).
            let bare = unfiltered && inner.tombstones == 0;
            let filter: Option<&dyn hnsw_rs::filter::FilterT> =
                if bare { None } else { Some(&walk) };
            let mut found: Vec<(usize, f32)> = inner
                .hnsw
                .search_filter(vector, k, k.max(HNSW_EF_SEARCH_MIN), filter)
                .into_iter()
                // Tombstoned points are still in the graph.
                .filter(|n| inner.slots.get(n.d_id).is_some_and(Option::is_some))
                .map(|n| (n.d_id, 1.0 - n.distance))
                .collect();
            for &id in &inner.orphans {
                if admit(id) && !found.iter().any(|(f, _)| *f == id) {
                    found.push((id, dot(vector, inner.vector(id))));
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
                .score(terms, admit)
                .into_iter()
                .map(|(id, score)| (id, score, 0.0))
                .collect(),
            // Without filters every scored document is admitted (BM25 scores
            // live ones only): no per-document check, no slot to read.
            Mode::Fused if filter.names.is_empty() => {
                inner.agents.lexical(&inner.bm25, terms, &|_| true)
            }
            Mode::Fused => inner.agents.lexical(&inner.bm25, terms, &admit),
        };
        best_first(&mut lexical, CANDIDATES, |c| c.1);

        (dense, lexical)
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;
    use std::sync::Arc;

    /// An embedder whose vectors the test sets by hand (the need's is passed to
    /// `search_embedded`), weighted like a sentence model.
    struct Fixed;

    impl Embedder for Fixed {
        fn name(&self) -> &str {
            "fixed-4"
        }
        fn dimension(&self) -> usize {
            4
        }
        fn embed(&self, _: &str) -> Vec<f32> {
            vec![0.5; 4]
        }
        fn fusion_weight(&self) -> f32 {
            0.5
        }
    }

    /// Lists `key` with the vector `v` (made unit length).
    fn unit(discovery: &Discovery, key: &str, description: &str, v: [f32; 4]) {
        let mut v = v.to_vec();
        normalise(&mut v);
        discovery.upsert(
            Entry {
                key: key.into(),
                agent: key.into(),
                name: key.into(),
                description: description.into(),
                category: "text".into(),
                tags: Vec::new(),
                fields: Vec::new(),
                facts: Facts {
                    expected_cost_micros: 10,
                    latency_ms_max: 100,
                    uptime: 0.99,
                    retention: Retention::None,
                    encryption: true,
                    jurisdictions: Vec::new(),
                    rating: None,
                },
            },
            v,
        );
    }

    #[test]
    fn a_need_of_several_sentences_finds_what_answers_one_of_them() {
        let discovery = Discovery::new(Arc::new(Fixed));
        let d = &discovery;
        unit(d, "parcel.track", "track parcels", [1.0, 0.0, 0.0, 0.0]);
        unit(d, "parcel.locate", "locate parcels", [0.95, 0.3, 0.0, 0.0]);
        unit(d, "parcel.history", "parcel events", [0.9, 0.43, 0.0, 0.0]);
        unit(d, "units.convert", "convert weights", [0.0, 0.1, 0.99, 0.0]);
        let query = Query {
            need: "Where is my parcel? Also convert its weight to pounds.".into(),
            limit: Some(3),
            ..Query::default()
        };
        // The whole need reads as parcel tracking; its second sentence
        // asks for a conversion.
        let whole = [1.0, 0.0, 0.0, 0.0];
        let (first, second) = ([1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]);
        let keys = |vectors: &[f32]| -> Vec<String> {
            let hits = discovery
                .search_embedded(&query, vectors, Mode::Dense)
                .expect("search");
            hits.into_iter().map(|h| h.key).collect()
        };
        // By the whole need alone the converter is not in the best three...
        assert!(!keys(&whole).contains(&"units.convert".to_string()));
        // ...by its sentences too, it is: similarity is the best of them.
        let vectors: Vec<f32> = [whole, first, second].concat();
        assert_eq!(keys(&vectors)[..2], ["parcel.track", "units.convert"]);
        let hits = discovery
            .search_embedded(&query, &vectors, Mode::Fused)
            .expect("search");
        let convert = hits.iter().find(|h| h.key == "units.convert").expect("hit");
        let expected = 0.99 / (0.1f32 * 0.1 + 0.99 * 0.99).sqrt();
        assert!(
            (convert.explanation.dense_similarity - expected).abs() < 1e-5,
            "{convert:?}"
        );
        // Vectors that are not whole multiples of the dimension are refused.
        assert!(
            discovery
                .search_embedded(&query, &vectors[..6], Mode::Fused)
                .is_err()
        );
        assert!(discovery.search_embedded(&query, &[], Mode::Fused).is_err());
    }

    #[test]
    fn fusion_keeps_how_far_ahead_each_side_is() {
        let discovery = Discovery::new(Arc::new(Fixed));
        let unit =
            |key: &str, description: &str, v: [f32; 4]| unit(&discovery, key, description, v);
        // `close.both`: the need's own meaning, and nearly the best words.
        unit(
            "close.both",
            "translate french documents",
            [1.0, 0.0, 0.0, 0.0],
        );
        // `words.only`: the best words, far in meaning.
        unit(
            "words.only",
            "translate french text, translate french",
            [0.2, 0.98, 0.0, 0.0],
        );
        unit("far.one", "weather forecasts", [0.0, 0.0, 1.0, 0.0]);
        unit("far.two", "stock prices", [0.1, 0.0, 0.0, 0.995]);
        let query = Query {
            need: "translate french text".into(),
            ..Query::default()
        };
        let need = [1.0, 0.0, 0.0, 0.0];
        let keys = |mode| -> Vec<String> {
            discovery
                .search_embedded(&query, &need, mode)
                .expect("search")
                .into_iter()
                .map(|h| h.key)
                .collect()
        };
        // Each side alone disagrees on the first place...
        assert_eq!(keys(Mode::Lexical)[0], "words.only");
        assert_eq!(keys(Mode::Dense)[0], "close.both");
        // ...and fused, the one close on both sides wins: rank fusion put
        // `words.only` first (lexical rank 1, dense rank 2), although it is
        // barely more similar than the unrelated ones.
        let hits = discovery
            .search_embedded(&query, &need, Mode::Fused)
            .expect("search");
        assert_eq!(hits[0].key, "close.both", "{hits:?}");
        assert_eq!(hits[1].key, "words.only", "{hits:?}");
        // The score is the weighted sum of both sides scaled to [0, 1].
        let best_lexical = hits
            .iter()
            .map(|h| h.explanation.lexical_score)
            .fold(0.0, f32::max);
        let both = &hits[0];
        let expected = 0.5 * 1.0 + 0.5 * both.explanation.lexical_score / best_lexical;
        assert!((both.score - expected).abs() < 1e-4, "{both:?}");
        assert!(
            hits.iter().all(|h| (0.0..=1.0).contains(&h.score)),
            "{hits:?}"
        );
    }
}
