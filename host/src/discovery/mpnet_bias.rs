//! An MPNet's attention bias: a learned value per head for each bucket of
//! distance between a query token and a key token (after T5), added to
//! every layer's attention scores. Written into the graph `bert_onnx.rs`
//! builds as one initializer for the longest input, cut at run time.

use super::model::TOKENS_MAX;
use super::onnx_proto::{Graph, int};

/// An MPNet's bias per head for every pair of tokens, from its table
/// (`[buckets, heads]`, f32 bytes) by bucket of their distance: written out
/// for the longest input ([`TOKENS_MAX`] tokens square) and cut to the
/// input's length at each run (it depends on the distance alone, so the top
/// left corner is the shorter input's). Gives the `[1, heads, sequence,
/// sequence]` value's name.
pub(super) fn distance_bias(g: &mut Graph, table: &[u8], heads: usize, buckets: usize) -> String {
    let table: Vec<f32> = table
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let n = TOKENS_MAX;
    let mut bias = Vec::with_capacity(heads * n * n * 4);
    for head in 0..heads {
        for query in 0..n {
            for key in 0..n {
                let bucket = distance_bucket(key as i64 - query as i64, buckets);
                bias.extend_from_slice(&table[bucket * heads + head].to_le_bytes());
            }
        }
    }
    let whole = g.init("distance_bias_whole", &[1, heads, n, n], &bias);
    g.node(
        "Shape",
        "",
        &["input_ids"],
        "sequence_length",
        vec![int("start", 1), int("end", 2)],
    );
    g.node(
        "Concat",
        "",
        &["sequence_length", "sequence_length"],
        "distance_bias_ends",
        vec![int("axis", 0)],
    );
    let starts = g.init_i64("distance_bias_starts", &[0, 0]);
    let axes = g.init_i64("distance_bias_axes", &[2, 3]);
    g.node(
        "Slice",
        "",
        &[&whole, &starts, "distance_bias_ends", &axes],
        "distance_bias",
        vec![],
    );
    "distance_bias".into()
}

/// The bucket of a key `distance` tokens after the query (before it when
/// negative), as MPNet (after T5) counts them: half the buckets for each
/// direction; within each, one per distance below a quarter of the
/// buckets, then logarithmic up to 128 tokens, the last bucket beyond.
fn distance_bucket(distance: i64, buckets: usize) -> usize {
    let half = buckets / 2;
    let exact = half / 2;
    let side = if distance > 0 { half } else { 0 };
    let n = distance.unsigned_abs() as usize;
    if n < exact {
        return side + n;
    }
    let far = (n as f64 / exact as f64).ln() / (128.0 / exact as f64).ln() * (half - exact) as f64;
    side + (exact + far as usize).min(half - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_fall_in_mpnet_s_buckets() {
        // Values of the reference formula (32 buckets, 128 tokens): a key
        // before the query in 0..16, after it in 16..32; exact below 8.
        for (distance, bucket) in [
            (0, 0),
            (-1, 1),
            (-7, 7),
            (1, 17),
            (7, 23),
            (-8, 8),
            (-15, 9),
            (-16, 10),
            (-32, 12),
            (-127, 15),
            (-128, 15),
            (-1000, 15),
            (16, 26),
            (1000, 31),
        ] {
            assert_eq!(distance_bucket(distance, 32), bucket, "distance {distance}");
        }
    }
}
