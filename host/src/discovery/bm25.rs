//! Okapi BM25 over weighted fields (name, tags and category count more than
//! the description and schema field names).

use std::collections::HashMap;

/// k1: term-frequency saturation.
const K1: f32 = 1.2;
/// b: length normalisation.
const B: f32 = 0.75;

/// A document's terms, each with the weight of the field it came from.
pub type WeightedTerms = Vec<(String, f32)>;

#[derive(Default)]
struct Doc {
    length: f32,
    live: bool,
}

/// An inverted index with BM25 scoring. Document ids are dense `usize` slots.
#[derive(Default)]
pub struct Bm25 {
    postings: HashMap<String, Vec<(usize, f32)>>,
    docs: Vec<Doc>,
    live: usize,
    total_length: f64,
}

impl Bm25 {
    /// Adds document `id` (the next slot or a reused one).
    pub fn insert(&mut self, id: usize, terms: &WeightedTerms) {
        let mut tf: HashMap<&str, f32> = HashMap::new();
        let mut length = 0.0;
        for (term, weight) in terms {
            *tf.entry(term).or_default() += weight;
            length += weight;
        }
        for (term, f) in tf {
            self.postings
                .entry(term.to_string())
                .or_default()
                .push((id, f));
        }
        if self.docs.len() <= id {
            self.docs.resize_with(id + 1, Doc::default);
        }
        self.docs[id] = Doc { length, live: true };
        self.live += 1;
        self.total_length += f64::from(length);
    }

    /// Marks document `id` removed (its postings stay until a rebuild).
    pub fn remove(&mut self, id: usize) {
        if let Some(doc) = self.docs.get_mut(id).filter(|d| d.live) {
            doc.live = false;
            self.live -= 1;
            self.total_length -= f64::from(doc.length);
        }
    }

    /// Scores every live, admitted document containing a query term.
    pub fn score(&self, query: &[String], admit: impl Fn(usize) -> bool) -> Vec<(usize, f32)> {
        if self.live == 0 {
            return Vec::new();
        }
        let n = self.live as f32;
        let average = (self.total_length / self.live as f64) as f32;
        let mut scores: HashMap<usize, f32> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for term in query {
            if !seen.insert(term) {
                continue;
            }
            let Some(postings) = self.postings.get(term) else {
                continue;
            };
            let df = postings
                .iter()
                .filter(|(id, _)| self.docs[*id].live)
                .count() as f32;
            if df == 0.0 {
                continue;
            }
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            for &(id, tf) in postings {
                let doc = &self.docs[id];
                if !doc.live || !admit(id) {
                    continue;
                }
                let norm =
                    tf * (K1 + 1.0) / (tf + K1 * (1.0 - B + B * doc.length / average.max(1e-6)));
                *scores.entry(id).or_default() += idf * norm;
            }
        }
        scores.into_iter().collect()
    }
}
