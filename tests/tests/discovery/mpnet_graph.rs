//! The graph the host writes for an MPNet (candle has none to compare
//! with) checked against a plain forward pass written here from the
//! architecture's definition, on a small MPNet of random weights: word and
//! position tables (positions numbered after the padding token's), per
//! layer query/key/value with a learned bias per head and bucket of
//! distance, post-norm residuals, exact GELU; mean over the tokens, unit
//! length.

use super::{has_onnx, model_dir};
use mercato_host::discovery::{Embedder, ModelEmbedder, OnnxEmbedder, dot, load_model};

const HIDDEN: usize = 8;
const HEADS: usize = 2;
const LAYERS: usize = 2;
const INNER: usize = 16;
const BUCKETS: usize = 32;
const POSITIONS: usize = 300;
const EPS: f32 = 1e-5;

/// Deterministic weights in [-0.5, 0.5): a linear congruential sequence.
struct Draw(u64);

impl Draw {
    fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (self.0 >> 40) as f32 / (1_u64 << 24) as f32 - 0.5
            })
            .collect()
    }
}

/// The model's tensors by name, with their shapes.
type Tensors = Vec<(String, Vec<usize>, Vec<f32>)>;

fn weights(vocabulary: usize) -> Tensors {
    let mut draw = Draw(7);
    let mut t: Tensors = Vec::new();
    // The distance biases and the query and key weights drawn large, so
    // that attention is peaked and each distance's bucket shows in the
    // result (near-uniform attention would hide a wrong bucket).
    let mut add = |name: &str, shape: &[usize]| {
        let scale = if name.contains("relative_attention_bias") {
            8.0
        } else if name.contains(".q.weight") || name.contains(".k.weight") {
            3.0
        } else {
            1.0
        };
        let values = draw.values(shape.iter().product());
        let values = values.into_iter().map(|v| v * scale).collect();
        t.push((name.to_owned(), shape.to_vec(), values));
    };
    add("embeddings.word_embeddings.weight", &[vocabulary, HIDDEN]);
    add(
        "embeddings.position_embeddings.weight",
        &[POSITIONS, HIDDEN],
    );
    add("embeddings.LayerNorm.weight", &[HIDDEN]);
    add("embeddings.LayerNorm.bias", &[HIDDEN]);
    add("encoder.relative_attention_bias.weight", &[BUCKETS, HEADS]);
    for l in 0..LAYERS {
        let p = format!("encoder.layer.{l}.");
        for n in ["q", "k", "v", "o"] {
            add(&format!("{p}attention.attn.{n}.weight"), &[HIDDEN, HIDDEN]);
            add(&format!("{p}attention.attn.{n}.bias"), &[HIDDEN]);
        }
        add(&format!("{p}attention.LayerNorm.weight"), &[HIDDEN]);
        add(&format!("{p}attention.LayerNorm.bias"), &[HIDDEN]);
        add(&format!("{p}intermediate.dense.weight"), &[INNER, HIDDEN]);
        add(&format!("{p}intermediate.dense.bias"), &[INNER]);
        add(&format!("{p}output.dense.weight"), &[HIDDEN, INNER]);
        add(&format!("{p}output.dense.bias"), &[HIDDEN]);
        add(&format!("{p}output.LayerNorm.weight"), &[HIDDEN]);
        add(&format!("{p}output.LayerNorm.bias"), &[HIDDEN]);
    }
    t
}

/// The safetensors file format: a little-endian header length, the JSON
/// header (dtype, shape, byte offsets), then the data.
fn safetensors(tensors: &Tensors) -> Vec<u8> {
    let (mut header, mut data) = (serde_json::Map::new(), Vec::new());
    for (name, shape, values) in tensors {
        let start = data.len();
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let header = serde_json::Value::Object(header).to_string();
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.extend(data);
    file
}

fn layer_norm(x: &[f32], gamma: &[f32], beta: &[f32]) -> Vec<f32> {
    let mean = x.iter().sum::<f32>() / x.len() as f32;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / x.len() as f32;
    x.iter()
        .zip(gamma.iter().zip(beta))
        .map(|(v, (g, b))| (v - mean) / (var + EPS).sqrt() * g + b)
        .collect()
}

/// `x · Wᵀ + b`, W as `[out, in]`.
fn linear(x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    b.iter()
        .enumerate()
        .map(|(o, bias)| {
            let row = &w[o * x.len()..(o + 1) * x.len()];
            bias + row.iter().zip(x).map(|(a, b)| a * b).sum::<f32>()
        })
        .collect()
}

/// erf to about 1e-7 (Abramowitz and Stegun 7.1.26).
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    (1.0 - poly * (-x * x).exp()).copysign(x)
}

/// The bucket of relative position `relative` (key minus query) as the
/// reference implementation computes it.
fn bucket(relative: i64) -> usize {
    let mut n = -relative;
    let half = (BUCKETS / 2) as i64;
    let mut ret = if n < 0 { half } else { 0 };
    n = n.abs();
    let exact = half / 2;
    if n < exact {
        return (ret + n) as usize;
    }
    let large = exact
        + ((n as f64 / exact as f64).ln() / (128.0 / exact as f64).ln() * (half - exact) as f64)
            as i64;
    ret += large.min(half - 1);
    ret as usize
}

fn reference(tensors: &Tensors, ids: &[u32]) -> Vec<f32> {
    let w = |name: &str| -> &[f32] {
        &tensors
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("{name}"))
            .2
    };
    let n = ids.len();
    let mut x: Vec<Vec<f32>> = ids
        .iter()
        .enumerate()
        .map(|(t, id)| {
            let word = &w("embeddings.word_embeddings.weight")[*id as usize * HIDDEN..][..HIDDEN];
            // Positions start after the padding token's (id 1).
            let position =
                &w("embeddings.position_embeddings.weight")[(t + 2) * HIDDEN..][..HIDDEN];
            let sum: Vec<f32> = word.iter().zip(position).map(|(a, b)| a + b).collect();
            layer_norm(
                &sum,
                w("embeddings.LayerNorm.weight"),
                w("embeddings.LayerNorm.bias"),
            )
        })
        .collect();
    let table = w("encoder.relative_attention_bias.weight");
    let d = HIDDEN / HEADS;
    for l in 0..LAYERS {
        let p = format!("encoder.layer.{l}.");
        let lin = |v: &[f32], name: &str| {
            linear(
                v,
                w(&format!("{p}{name}.weight")),
                w(&format!("{p}{name}.bias")),
            )
        };
        let q: Vec<_> = x.iter().map(|v| lin(v, "attention.attn.q")).collect();
        let k: Vec<_> = x.iter().map(|v| lin(v, "attention.attn.k")).collect();
        let v: Vec<_> = x.iter().map(|v| lin(v, "attention.attn.v")).collect();
        let mut context = vec![vec![0.0_f32; HIDDEN]; n];
        for h in 0..HEADS {
            let r = h * d..(h + 1) * d;
            for i in 0..n {
                let scores: Vec<f32> = (0..n)
                    .map(|j| {
                        let s: f32 = q[i][r.clone()]
                            .iter()
                            .zip(&k[j][r.clone()])
                            .map(|(a, b)| a * b)
                            .sum();
                        s / (d as f32).sqrt() + table[bucket(j as i64 - i as i64) * HEADS + h]
                    })
                    .collect();
                let top = scores.iter().copied().fold(f32::MIN, f32::max);
                let e: Vec<f32> = scores.iter().map(|s| (s - top).exp()).collect();
                let total: f32 = e.iter().sum();
                for j in 0..n {
                    for c in r.clone() {
                        context[i][c] += e[j] / total * v[j][c];
                    }
                }
            }
        }
        x = (0..n)
            .map(|i| {
                let o = lin(&context[i], "attention.attn.o");
                let sum: Vec<f32> = o.iter().zip(&x[i]).map(|(a, b)| a + b).collect();
                let a = layer_norm(
                    &sum,
                    w(&format!("{p}attention.LayerNorm.weight")),
                    w(&format!("{p}attention.LayerNorm.bias")),
                );
                let up: Vec<f32> = lin(&a, "intermediate.dense")
                    .iter()
                    .map(|u| {
                        let u = f64::from(*u);
                        (0.5 * u * (1.0 + erf(u / std::f64::consts::SQRT_2))) as f32
                    })
                    .collect();
                let down = lin(&up, "output.dense");
                let sum: Vec<f32> = down.iter().zip(&a).map(|(a, b)| a + b).collect();
                layer_norm(
                    &sum,
                    w(&format!("{p}output.LayerNorm.weight")),
                    w(&format!("{p}output.LayerNorm.bias")),
                )
            })
            .collect();
    }
    let mut mean = [0.0_f32; HIDDEN];
    for row in &x {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v / n as f32;
        }
    }
    let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt();
    mean.iter().map(|v| v / norm).collect()
}

/// The host's MPNet graph on ONNX Runtime gives the reference's vectors
/// (to f32 rounding: a bucket off by its direction moves a component by
/// ~1e-3 here), alone and in a padded batch, for texts short and longer
/// than the distance (128 tokens) where the buckets stop growing.
#[test]
fn the_mpnet_graph_computes_what_mpnet_defines() {
    let model = model_dir();
    if !has_onnx(&model) {
        return;
    }
    let mut tokenizer = tokenizers::Tokenizer::from_file(model.join("tokenizer.json"))
        .expect("the model's tokenizer");
    // The file's own padding and truncation (128 tokens) are the host's to
    // replace; the reference takes every token of a text.
    tokenizer.with_padding(None);
    tokenizer.with_truncation(None).expect("no truncation");
    let vocabulary = tokenizer.get_vocab_size(true);
    let tensors = weights(vocabulary);
    let dir = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(
        model.join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .expect("symlink");
    std::fs::create_dir(dir.path().join("onnx")).expect("mkdir");
    std::os::unix::fs::symlink(
        model.join("onnx/libonnxruntime.so"),
        dir.path().join("onnx/libonnxruntime.so"),
    )
    .expect("symlink");
    let config = serde_json::json!({
        "model_type": "mpnet", "hidden_act": "gelu", "hidden_size": HIDDEN,
        "num_attention_heads": HEADS, "num_hidden_layers": LAYERS,
        "intermediate_size": INNER, "layer_norm_eps": EPS, "pad_token_id": 1,
        "relative_attention_num_buckets": BUCKETS, "max_position_embeddings": POSITIONS,
        "vocab_size": vocabulary,
    });
    std::fs::write(dir.path().join("config.json"), config.to_string()).expect("config");
    std::fs::write(dir.path().join("model.safetensors"), safetensors(&tensors)).expect("weights");
    let onnx = OnnxEmbedder::load(dir.path()).expect("the MPNet graph loads");
    assert!(onnx.name().contains("-onnx@"), "{}", onnx.name());
    // candle has no MPNet: it says so, and the host runs the graph.
    let refused = ModelEmbedder::load(dir.path())
        .err()
        .expect("candle refuses");
    assert!(
        refused.contains("\"mpnet\" runs only on ONNX Runtime"),
        "{refused}"
    );
    assert_eq!(load_model(dir.path()).expect("model").name(), onnx.name());
    let long = "a service that converts, validates and summarises records ".repeat(20);
    let texts = [
        "Converts a quantity between units of length.",
        "Redacts personal data from text before it is stored.",
        long.as_str(),
    ];
    let batch = onnx.embed_many(&texts);
    for (text, in_batch) in texts.iter().zip(&batch) {
        let ids = tokenizer.encode(*text, true).expect("encode");
        let ids = ids.get_ids();
        assert!(
            text.len() < 100 || (128..256).contains(&ids.len()),
            "{}",
            ids.len()
        );
        let expected = reference(&tensors, ids);
        let alone = onnx.embed(text);
        for (what, got) in [("alone", &alone), ("in a batch", in_batch)] {
            let off = got
                .iter()
                .zip(&expected)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f32::max);
            assert!(
                dot(got, &expected) > 0.99999 && off < 2e-5,
                "{what}: cosine {}, a component off by {off}, for {text:?}",
                dot(got, &expected)
            );
        }
    }
}
