//! 8-bit codes of the index's vectors, for exact scans over many admitted
//! entries: each vector scaled so its largest component is ±127, rounded.
//! A scan ranks by the codes (a quarter of the bytes of the floats, and
//! integer multiply-adds), then the caller rescores the best few exactly.
//!
//! A filtered scan reads scattered vectors, so it waits on memory more than
//! it computes: the scan touches the vector a few places ahead, which starts
//! its loads early (docs/BENCHMARKS.md §6).

use multiversion::multiversion;

/// Components per cache line of codes.
const LINE: usize = 64;
/// How many admitted ids ahead the scan touches.
const AHEAD: usize = 8;

/// A vector's code: components in −127..=127 and the factor back to floats.
pub struct Code {
    values: Vec<i8>,
    scale: f32,
}

impl Code {
    /// Quantises `vector`.
    pub fn of(vector: &[f32]) -> Code {
        let largest = vector.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        if largest == 0.0 || !largest.is_finite() {
            return Code {
                values: vec![0; vector.len()],
                scale: 0.0,
            };
        }
        let to_code = 127.0 / largest;
        Code {
            values: vector
                .iter()
                .map(|x| (x * to_code).round().clamp(-127.0, 127.0) as i8)
                .collect(),
            scale: largest / 127.0,
        }
    }
}

/// One category's slots in the order they were placed, their filterable
/// facts and codes side by side: a scan of a category (or of every category,
/// one after another) reads memory front to back.
pub struct Group<F> {
    ids: Vec<usize>,
    facts: Vec<F>,
    values: Vec<i8>,
    scales: Vec<f32>,
    dimension: usize,
}

impl<F> Default for Group<F> {
    fn default() -> Self {
        Group {
            ids: Vec::new(),
            facts: Vec::new(),
            values: Vec::new(),
            scales: Vec::new(),
            dimension: 0,
        }
    }
}

impl<F> Group<F> {
    /// Adds slot `id`; returns its position in the group.
    pub fn push(&mut self, id: usize, facts: F, vector: &[f32]) -> usize {
        if self.dimension == 0 {
            self.dimension = vector.len();
        }
        assert_eq!(vector.len(), self.dimension, "one dimension per group");
        let code = Code::of(vector);
        self.ids.push(id);
        self.facts.push(facts);
        self.values.extend_from_slice(&code.values);
        self.scales.push(code.scale);
        self.ids.len() - 1
    }

    /// The facts at `position`, to change.
    pub fn facts_mut(&mut self, position: usize) -> &mut F {
        &mut self.facts[position]
    }

    /// The slot id at `position`.
    pub fn id(&self, position: u32) -> usize {
        self.ids[position as usize]
    }

    /// Appends the positions whose `(id, facts)` `admits` accepts.
    pub fn admitted(&self, admits: impl Fn(usize, &F) -> bool, out: &mut Vec<u32>) {
        for (position, (&id, facts)) in self.ids.iter().zip(&self.facts).enumerate() {
            if admits(id, facts) {
                out.push(position as u32);
            }
        }
    }

    /// Appends `(id, approximate similarity to query)` for each of
    /// `positions` (the dot product as the codes see it).
    pub fn scan(&self, query: &Code, positions: &[u32], out: &mut Vec<(usize, f32)>) {
        if self.dimension == 0 || query.values.len() != self.dimension {
            return;
        }
        let first = out.len();
        scan(&query.values, &self.values, self.dimension, positions, out);
        for ((id, score), &position) in out[first..].iter_mut().zip(positions) {
            *id = self.ids[position as usize];
            *score *= query.scale * self.scales[position as usize];
        }
    }
}

/// The integer dot products of `query` with the codes at `positions`
/// (pushed as `(position, product)`), one dispatch per scan: the inner
/// product inlines into each CPU's version.
#[multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1", "aarch64+neon"))]
fn scan(
    query: &[i8],
    codes: &[i8],
    dimension: usize,
    positions: &[u32],
    out: &mut Vec<(usize, f32)>,
) {
    let code = |position: u32| {
        let start = position as usize * dimension;
        &codes[start..start + dimension]
    };
    for (k, &position) in positions.iter().enumerate() {
        if let Some(&next) = positions.get(k + AHEAD) {
            // One load per cache line of a code about to be scored: its
            // misses overlap this one's arithmetic.
            for line in code(next).iter().step_by(LINE) {
                std::hint::black_box(*line);
            }
        }
        out.push((position as usize, dot_i8(query, code(position)) as f32));
    }
}

#[inline(always)]
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0i32; 16];
    let (a16, b16) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: i32 = a16
        .remainder()
        .iter()
        .zip(b16.remainder())
        .map(|(&x, &y)| i32::from(x) * i32::from(y))
        .sum();
    for (x, y) in a16.zip(b16) {
        for ((lane, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += i32::from(x) * i32::from(y);
        }
    }
    lanes.iter().sum::<i32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed | 1;
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
            })
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }

    #[test]
    fn codes_approximate_the_dot_product_and_keep_the_order() {
        let mut group = Group::default();
        let vectors: Vec<Vec<f32>> = (0..300).map(|i| unit(i + 7, 384)).collect();
        for (id, v) in vectors.iter().enumerate() {
            // Ids need not be positions.
            assert_eq!(group.push(id * 3, (), v), id);
        }
        let query = unit(99_999, 384);
        let positions: Vec<u32> = (0..300).collect();
        let mut approx = Vec::new();
        group.scan(&Code::of(&query), &positions, &mut approx);
        let exact: Vec<f32> = vectors
            .iter()
            .map(|v| super::super::dot(&query, v))
            .collect();
        assert_eq!(approx.len(), 300);
        for (id, score) in &approx {
            assert!(
                (score - exact[id / 3]).abs() < 0.02,
                "{score} vs {}",
                exact[id / 3]
            );
        }
        // The exact best is among the codes' best five.
        let best = (0..300)
            .max_by(|&a, &b| exact[a].total_cmp(&exact[b]))
            .unwrap();
        approx.sort_by(|a, b| b.1.total_cmp(&a.1));
        assert!(approx[..5].iter().any(|(id, _)| *id == best * 3));
    }

    #[test]
    fn admission_reads_the_facts_and_zero_vectors_score_zero() {
        let mut group = Group::default();
        group.push(10, true, &[0.0; 8]);
        group.push(11, false, &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        group.push(12, true, &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let mut positions = Vec::new();
        group.admitted(|_, &admit| admit, &mut positions);
        assert_eq!(positions, [0, 2]);
        *group.facts_mut(0) = false;
        positions.clear();
        group.admitted(|_, &admit| admit, &mut positions);
        assert_eq!(positions, [2]);
        let query = Code::of(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let mut scores = Vec::new();
        group.scan(&query, &[0, 2], &mut scores);
        assert_eq!(scores[0], (10, 0.0));
        assert_eq!(scores[1].0, 12);
        assert!((scores[1].1 - 1.0).abs() < 1e-3);
        // A query of another dimension scores nothing.
        scores.clear();
        group.scan(&Code::of(&[1.0; 4]), &[2], &mut scores);
        assert!(scores.is_empty());
    }
}
