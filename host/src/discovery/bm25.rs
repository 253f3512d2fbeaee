//! Okapi BM25 over weighted fields (name, tags and category count more than
//! the description and schema field names).

use std::collections::HashMap;

/// k1: term-frequency saturation.
const K1: f32 = 1.6;
/// b: length normalisation. Strong (the textbook value is 0.75): catalogs
/// mix one-line descriptions with long ones, and a long description should
/// not win on the strength of saying more words (ToolBench: hit@10
/// 0.913 → 0.924, and 0.938 → 0.949 on its second query set).
const B: f32 = 0.9;

/// A document's terms, each with the weight of the field it came from.
pub type WeightedTerms = Vec<(String, f32)>;

#[derive(Default, Clone, Copy)]
struct Doc {
    length: f32,
    live: bool,
}

#[derive(Default)]
struct Postings {
    /// `(doc id, weighted term frequency)`, removed docs included until a rebuild.
    docs: Vec<(usize, f32)>,
    /// Live documents containing the term.
    live: usize,
}

/// An inverted index with BM25 scoring. Document ids are dense `usize` slots.
#[derive(Default)]
pub struct Bm25 {
    postings: HashMap<String, Postings>,
    docs: Vec<Doc>,
    live: usize,
    total_length: f64,
    /// Accumulators kept between queries, all zeros: allocating and zeroing
    /// one per query (400 KB at 100,000 documents, its pages faulted in and
    /// unmapped again) cost as much as the scoring.
    scratch: std::sync::Mutex<Vec<Scratch>>,
}

/// Scores by document id (zero where untouched) and the ids touched.
#[derive(Default)]
struct Scratch {
    scores: Vec<f32>,
    touched: Vec<usize>,
}

/// Most accumulators kept (one per concurrent query beyond this is freed).
const SCRATCH_KEPT: usize = 8;

fn frequencies(terms: &WeightedTerms) -> (HashMap<&str, f32>, f32) {
    let mut tf: HashMap<&str, f32> = HashMap::new();
    let mut length = 0.0;
    for (term, weight) in terms {
        *tf.entry(term).or_default() += weight;
        length += weight;
    }
    (tf, length)
}

impl Bm25 {
    /// Adds document `id` (a new slot).
    pub fn insert(&mut self, id: usize, terms: &WeightedTerms) {
        let (tf, length) = frequencies(terms);
        for (term, f) in tf {
            let postings = self.postings.entry(term.to_string()).or_default();
            postings.docs.push((id, f));
            postings.live += 1;
        }
        if self.docs.len() <= id {
            self.docs.resize_with(id + 1, Doc::default);
        }
        self.docs[id] = Doc { length, live: true };
        self.live += 1;
        self.total_length += f64::from(length);
    }

    /// Marks document `id`, indexed with `terms`, removed.
    pub fn remove(&mut self, id: usize, terms: &WeightedTerms) {
        let Some(doc) = self.docs.get_mut(id).filter(|d| d.live) else {
            return;
        };
        doc.live = false;
        self.live -= 1;
        self.total_length -= f64::from(doc.length);
        for term in frequencies(terms).0.keys() {
            if let Some(p) = self.postings.get_mut(*term) {
                p.live = p.live.saturating_sub(1);
            }
        }
    }

    /// Calls `f` with the BM25 scores by document id (zero where no query
    /// term occurs) and the ids that scored.
    pub fn with_scores<R>(&self, query: &[String], f: impl FnOnce(&[f32], &[usize]) -> R) -> R {
        let mut scratch = self
            .scratch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default();
        if scratch.scores.len() < self.docs.len() {
            scratch.scores.resize(self.docs.len(), 0.0);
        }
        self.accumulate(query, &mut scratch);
        let result = f(&scratch.scores[..self.docs.len()], &scratch.touched);
        for &id in &scratch.touched {
            scratch.scores[id] = 0.0;
        }
        scratch.touched.clear();
        let mut kept = self.scratch.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < SCRATCH_KEPT {
            kept.push(scratch);
        }
        result
    }

    fn accumulate(&self, query: &[String], scratch: &mut Scratch) {
        if self.live == 0 {
            return;
        }
        let n = self.live as f32;
        let average = ((self.total_length / self.live as f64) as f32).max(1e-6);
        let mut seen = std::collections::HashSet::new();
        for term in query {
            if !seen.insert(term) {
                continue;
            }
            let Some(postings) = self.postings.get(term).filter(|p| p.live > 0) else {
                continue;
            };
            let df = postings.live as f32;
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            scratch.touched.reserve(postings.docs.len());
            for &(id, tf) in &postings.docs {
                let doc = self.docs[id];
                if !doc.live {
                    continue;
                }
                let norm = tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * doc.length / average));
                if scratch.scores[id] == 0.0 {
                    scratch.touched.push(id);
                }
                scratch.scores[id] += idf * norm;
            }
        }
    }

    /// Scores every live, admitted document containing a query term.
    pub fn score(&self, query: &[String], admit: impl Fn(usize) -> bool) -> Vec<(usize, f32)> {
        self.with_scores(query, |scores, touched| {
            touched
                .iter()
                .filter(|&&id| admit(id))
                .map(|&id| (id, scores[id]))
                .collect()
        })
    }
}
