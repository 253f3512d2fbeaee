//! Embedders: text → unit-length vector, behind one trait.
//!
//! The built-in [`HashEmbedder`] needs no model and no network: it hashes
//! stemmed words, word pairs and character trigrams into a fixed number of
//! signed buckets (feature hashing), with sub-linear counts, and normalises.
//! Its cosine similarity rewards shared vocabulary, related word forms and
//! shared word fragments, which complements BM25's exact-term matching.

use super::text;

/// Weight of each character trigram relative to a whole word.
const TRIGRAM_WEIGHT: f32 = 0.35;
/// Weight of each adjacent word pair relative to a whole word.
const BIGRAM_WEIGHT: f32 = 0.5;

/// Turns text into a vector of fixed dimension, unit length (or all zeros).
pub trait Embedder: Send + Sync {
    /// A stable name (`hash-384`), stored with the vectors it produced.
    fn name(&self) -> &str;
    /// The vector length.
    fn dimension(&self) -> usize;
    /// Embeds one text.
    fn embed(&self, text: &str) -> Vec<f32>;
    /// Embeds several texts (a model batches them; the default loops).
    fn embed_many(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        texts.iter().map(|t| self.embed(t)).collect()
    }
    /// Embeds `text`, then each of its `parts` (byte ranges of it, on
    /// character boundaries): the whole's vector first. The default embeds
    /// each part as a text of its own; a model overrides it to pool each
    /// part's tokens from the one pass over the whole, which costs nothing
    /// more than the whole (a part the model truncated away is all zeros).
    fn embed_parts(&self, text: &str, parts: &[std::ops::Range<usize>]) -> Vec<Vec<f32>> {
        let mut vectors = vec![self.embed(text)];
        let texts: Vec<&str> = parts
            .iter()
            .map(|r| text.get(r.clone()).unwrap_or(""))
            .collect();
        if !texts.is_empty() {
            vectors.extend(self.embed_many(&texts));
        }
        vectors
    }
    /// Whether embedding takes long enough (milliseconds) to keep it off the
    /// async workers.
    fn is_slow(&self) -> bool {
        false
    }
    /// Weight of this embedder's ranking against the lexical one (1.0) in
    /// the rank fusion: how far its similarity is to be trusted.
    fn fusion_weight(&self) -> f32;
}

/// A need's vectors as one list, [`Embedder::dimension`] floats each: the
/// whole need's first, then, for a need of several sentences, each
/// sentence's ([`super::text::sentences`]), which the dense side scores
/// candidates by as well ([`Embedder::embed_parts`]: a model pools them
/// from the one pass over the need).
pub fn embed_need(embedder: &dyn Embedder, need: &str) -> Vec<f32> {
    let sentences = super::text::sentences(need);
    embedder.embed_parts(need, &sentences).concat()
}

/// Feature-hashing embedder: the built-in default.
pub struct HashEmbedder {
    dimension: usize,
    name: String,
}

impl HashEmbedder {
    /// An embedder with `dimension` buckets.
    pub fn new(dimension: usize) -> Self {
        HashEmbedder {
            dimension: dimension.max(8),
            name: format!("hash-{dimension}"),
        }
    }
}

impl Default for HashEmbedder {
    fn default() -> Self {
        HashEmbedder::new(384)
    }
}

/// FNV-1a, 64-bit: stable across Rust versions and platforms, unlike
/// `DefaultHasher`, so stored vectors stay comparable.
fn fnv1a(bytes: &[u8], seed: u64) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

impl HashEmbedder {
    fn add(&self, vector: &mut [f32], feature: &str, weight: f32) {
        let h = fnv1a(feature.as_bytes(), 0);
        let bucket = (h % self.dimension as u64) as usize;
        let sign = if (h >> 63) == 0 { 1.0 } else { -1.0 };
        vector[bucket] += sign * weight;
    }
}

impl Embedder for HashEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    /// Hashed features know words, not meanings: on ToolBench this ranking
    /// alone is well below BM25 (recall@10 0.63 against 0.76), so it only
    /// breaks ties and lifts near-misses (0.1 was best of 0–0.4 there and
    /// on the set's second query file, with rank fusion and again with
    /// score fusion; docs/BENCHMARKS.md §5, §5c).
    fn fusion_weight(&self) -> f32 {
        0.1
    }

    fn embed(&self, text: &str) -> Vec<f32> {
        let mut vector = vec![0.0f32; self.dimension];
        let terms = text::terms(text);
        // Ordered: the same text gives the same bits (float sums depend on
        // the order of addition), so stored vectors and dumps match.
        let mut counts: std::collections::BTreeMap<String, f32> = std::collections::BTreeMap::new();
        for term in &terms {
            *counts.entry(format!("w:{term}")).or_default() += 1.0;
            let padded = format!("<{term}>");
            let chars: Vec<char> = padded.chars().collect();
            for gram in chars.windows(3) {
                *counts
                    .entry(format!("c:{}", gram.iter().collect::<String>()))
                    .or_default() += TRIGRAM_WEIGHT;
            }
        }
        for pair in terms.windows(2) {
            *counts
                .entry(format!("b:{} {}", pair[0], pair[1]))
                .or_default() += BIGRAM_WEIGHT;
        }
        for (feature, count) in counts {
            // Sub-linear: a word said five times is not five times the topic.
            self.add(&mut vector, &feature, count.sqrt());
        }
        normalise(&mut vector);
        vector
    }
}

/// Scales a vector to unit length (a zero vector stays zero).
pub fn normalise(vector: &mut [f32]) {
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Dot product (cosine for unit vectors). Eight independent running sums,
/// so the compiler can keep them in one SIMD register (a single running sum
/// fixes the order of additions and stays scalar): the exact scan's inner
/// loop, compiled for the CPU's widest vector unit (chosen once at run time).
#[multiversion::multiversion(targets("x86_64+avx2+fma", "aarch64+neon"))]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for ((lane, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}
