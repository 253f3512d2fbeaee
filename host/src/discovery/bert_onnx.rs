//! A sentence encoder of the BERT family written out as an ONNX graph from
//! the model's own `model.safetensors`, for ONNX Runtime to run: a BERT
//! (all-MiniLM-L6-v2 and its kin: the weights candle runs, the attention's
//! put in 8 bits here, so both runtimes give the same vectors within a
//! cosine of 0.998), or an MPNet (all-mpnet-base-v2: BERT's layers with a
//! learned bias per head for each distance between two tokens, and no token
//! types; candle has no MPNet, so only ONNX Runtime runs it). No second
//! export of a model is fetched or trusted.
//!
//! The graph is made of ONNX Runtime's fused encoder operators (domain
//! `com.microsoft`): `EmbedLayerNormalization` (the three embeddings and
//! their layer norm), then per layer `Attention` (one product for query,
//! key and value, the mask applied inside; `QAttention` with 8-bit
//! weights), the output projection with `SkipLayerNormalization` (bias,
//! residual and norm in one pass), `BiasGelu` between the feed-forward
//! products. Against the generic export of the same model this is about a
//! quarter faster per need, with the same rankings (docs/BENCHMARKS.md §5h).
//!
//! Inputs `input_ids`, `attention_mask`, `token_type_ids` (`int64 [batch,
//! sequence]`), output `last_hidden_state` (`float [batch, sequence,
//! hidden]`): what `onnx.rs` feeds and pools.

use super::model::{fail, read};
use super::mpnet_bias::distance_bias;
use super::onnx_proto::{Graph, MS, Message, float, int};
use safetensors::{Dtype, SafeTensors};
use std::path::Path;

/// Which products run with 8-bit weights (a scale per column).
struct EightBits {
    /// Query, key and value, and the attention's output projection.
    attention: bool,
    /// The feed-forward's first product (hidden → intermediate).
    up: bool,
    /// Its second (intermediate → hidden).
    down: bool,
}

/// The attention's products in 8 bits: a seventh off each need with the
/// rankings of both development sets unchanged (within 0.004, the dense
/// side alone included); the feed-forward's in 8 bits too would be faster
/// still but weakens the dense side on prose (docs/BENCHMARKS.md §5h).
const EIGHT_BITS: EightBits = EightBits {
    attention: true,
    up: false,
    down: false,
};

/// An MPNet's products, all in f32: `QAttention` takes no bias per
/// distance, and the feed-forward's in 8 bits, which halves its time, costs
/// its dense side 0.026 recall@10 on prose (docs/BENCHMARKS.md §5i).
const EIGHT_BITS_MPNET: EightBits = EightBits {
    attention: false,
    up: false,
    down: false,
};

/// Which encoder `config.json` describes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Kind {
    Bert,
    /// Its table of biases per distance has this many buckets; its token
    /// positions start after the padding token's (`pad_token_id` + 1).
    Mpnet {
        buckets: usize,
        first_position: usize,
    },
}

/// What of `config.json` the graph depends on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Shape {
    pub kind: Kind,
    pub hidden: usize,
    pub heads: usize,
    pub layers: usize,
    pub intermediate: usize,
    pub eps: f32,
}

impl Kind {
    /// How the embedder's name tells this graph's vectors from others of
    /// the same weights (candle's, or another choice of 8-bit products).
    pub(super) fn graph_tag(self) -> &'static str {
        match self {
            Kind::Bert => "onnx-int8-attention",
            Kind::Mpnet { .. } => "onnx",
        }
    }

    fn eight_bits(self) -> &'static EightBits {
        match self {
            Kind::Bert => &EIGHT_BITS,
            Kind::Mpnet { .. } => &EIGHT_BITS_MPNET,
        }
    }
}

impl Shape {
    /// The shape `config.json` gives, when it is an encoder this graph
    /// reproduces exactly (a BERT with absolute positions, or an MPNet; the
    /// exact GELU); anything else is refused, and candle runs the model
    /// instead.
    pub fn of(config: &serde_json::Value) -> Result<Shape, String> {
        let text = |key: &str| config[key].as_str().unwrap_or_default().to_owned();
        let size = |key: &str| {
            config[key]
                .as_u64()
                .filter(|n| (1..=1 << 16).contains(n))
                .map(|n| n as usize)
                .ok_or_else(|| format!("config.json: no usable {key}"))
        };
        let kind = match text("model_type").as_str() {
            "bert" => Kind::Bert,
            "mpnet" => Kind::Mpnet {
                buckets: config
                    .get("relative_attention_num_buckets")
                    .map_or(Ok(32), |_| size("relative_attention_num_buckets"))?,
                first_position: config["pad_token_id"]
                    .as_u64()
                    .filter(|n| *n < 1 << 16)
                    .map_or(2, |n| n as usize + 1),
            },
            other => {
                return Err(format!(
                    "config.json: model_type {other:?} is neither bert nor mpnet"
                ));
            }
        };
        if text("hidden_act") != "gelu" {
            return Err(format!(
                "config.json: hidden_act {:?} is not gelu",
                text("hidden_act")
            ));
        }
        let position = text("position_embedding_type");
        if !(position.is_empty() || position == "absolute") {
            return Err(format!(
                "config.json: position_embedding_type {position:?} is not absolute"
            ));
        }
        let shape = Shape {
            kind,
            hidden: size("hidden_size")?,
            heads: size("num_attention_heads")?,
            layers: size("num_hidden_layers")?,
            intermediate: size("intermediate_size")?,
            eps: config["layer_norm_eps"].as_f64().unwrap_or(1e-12) as f32,
        };
        if matches!(kind, Kind::Mpnet { buckets, .. } if buckets < 4) {
            return Err("config.json: relative_attention_num_buckets is under 4".into());
        }
        if !shape.hidden.is_multiple_of(shape.heads) {
            return Err("config.json: hidden_size is not a multiple of num_attention_heads".into());
        }
        Ok(shape)
    }
}

/// The ONNX model (protobuf bytes) of the encoder in `dir`, whose
/// `model.safetensors` the caller has read into `weights`, and its
/// [`Kind::graph_tag`].
pub(super) fn build(dir: &Path, weights: &[u8]) -> Result<(Vec<u8>, &'static str), String> {
    let config: serde_json::Value =
        serde_json::from_slice(&read(dir, "config.json")?).map_err(|e| fail("config.json")(&e))?;
    let shape = Shape::of(&config)?;
    let tensors = SafeTensors::deserialize(weights).map_err(|e| fail("model.safetensors")(&e))?;
    let model = graph(&Weights::new(&tensors)?, shape)?.finish();
    Ok((model, shape.kind.graph_tag()))
}

/// Where a layer's attention weights are, by encoder.
struct Names {
    query: &'static str,
    key: &'static str,
    value: &'static str,
    /// The output projection (`.weight`, `.bias`).
    out: &'static str,
    /// The layer norm after it (`.weight`, `.bias`).
    out_norm: &'static str,
}

impl Names {
    fn of(kind: Kind) -> Names {
        match kind {
            Kind::Bert => Names {
                query: "attention.self.query",
                key: "attention.self.key",
                value: "attention.self.value",
                out: "attention.output.dense",
                out_norm: "attention.output.LayerNorm",
            },
            Kind::Mpnet { .. } => Names {
                query: "attention.attn.q",
                key: "attention.attn.k",
                value: "attention.attn.v",
                out: "attention.attn.o",
                out_norm: "attention.LayerNorm",
            },
        }
    }
}

/// The checkpoint's tensors, by their names without the `bert.` prefix some
/// checkpoints carry.
struct Weights<'a> {
    tensors: &'a SafeTensors<'a>,
    prefix: &'static str,
}

impl<'a> Weights<'a> {
    fn new(tensors: &'a SafeTensors<'a>) -> Result<Weights<'a>, String> {
        let prefix = ["", "bert."]
            .into_iter()
            .find(|p| {
                tensors
                    .tensor(&format!("{p}embeddings.word_embeddings.weight"))
                    .is_ok()
            })
            .ok_or("model.safetensors has no embeddings.word_embeddings.weight")?;
        Ok(Weights { tensors, prefix })
    }

    /// A tensor's f32 little-endian bytes, checked against `dims`.
    fn get(&self, name: &str, dims: &[usize]) -> Result<&'a [u8], String> {
        let full = format!("{}{name}", self.prefix);
        let view = self
            .tensors
            .tensor(&full)
            .map_err(|_| format!("model.safetensors has no {full}"))?;
        if view.dtype() != Dtype::F32 || view.shape() != dims {
            return Err(format!(
                "model.safetensors: {full} is {:?} {:?}, expected F32 {dims:?}",
                view.dtype(),
                view.shape()
            ));
        }
        Ok(view.data())
    }

    /// How many rows a table (an embedding) has.
    fn rows(&self, name: &str) -> Result<usize, String> {
        let full = format!("{}{name}", self.prefix);
        self.tensors
            .tensor(&full)
            .ok()
            .and_then(|t| t.shape().first().copied())
            .ok_or_else(|| format!("model.safetensors has no table {full}"))
    }

    /// A linear layer's weight (`[out, in]`, as PyTorch keeps it) turned
    /// into the `[in, out]` a product `x · W` takes.
    fn transposed(&self, name: &str, out: usize, inputs: usize) -> Result<Vec<u8>, String> {
        let data = self.get(name, &[out, inputs])?;
        let mut turned = vec![0_u8; data.len()];
        for (o, row) in data.chunks_exact(inputs * 4).enumerate() {
            for (i, value) in row.chunks_exact(4).enumerate() {
                let at = (i * out + o) * 4;
                turned[at..at + 4].copy_from_slice(value);
            }
        }
        Ok(turned)
    }
}

/// The whole graph.
fn graph(w: &Weights<'_>, s: Shape) -> Result<Message, String> {
    if s.layers == 0 {
        return Err("config.json: num_hidden_layers is 0".into());
    }
    let (h, f) = (s.hidden, s.intermediate);
    let (names, eight_bits) = (Names::of(s.kind), s.kind.eight_bits());
    let mut g = Graph::default();
    for input in ["input_ids", "attention_mask", "token_type_ids"] {
        g.node(
            "Cast",
            "",
            &[input],
            &format!("{input}_32"),
            vec![int("to", 6)],
        );
    }
    embeddings(&mut g, w, s)?;
    let position_bias = match s.kind {
        Kind::Bert => None,
        Kind::Mpnet { buckets, .. } => Some(distance_bias(
            &mut g,
            w.get(
                "encoder.relative_attention_bias.weight",
                &[buckets, s.heads],
            )?,
            s.heads,
            buckets,
        )),
    };
    for l in 0..s.layers {
        let p = format!("encoder.layer.{l}.");
        let x = format!("layer_input_{l}");
        // Query, key and value side by side: one [h, 3h] product.
        let mut qkv = Vec::with_capacity(h * 3 * h * 4);
        let parts = [names.query, names.key, names.value]
            .map(|n| w.transposed(&format!("{p}{n}.weight"), h, h));
        let [q, k, v] = parts;
        let (q, k, v) = (q?, k?, v?);
        for row in 0..h {
            for part in [&q, &k, &v] {
                qkv.extend_from_slice(&part[row * h * 4..(row + 1) * h * 4]);
            }
        }
        let mut qkv_bias = Vec::with_capacity(3 * h * 4);
        for n in [names.query, names.key, names.value] {
            qkv_bias.extend_from_slice(w.get(&format!("{p}{n}.bias"), &[h])?);
        }
        // The raw [batch, sequence] mask: right for any padding side.
        g.attention(
            &x,
            &format!("l{l}_qkv"),
            (&qkv, &qkv_bias),
            (h, s.heads),
            ("attention_mask_32", position_bias.as_deref()),
            &format!("l{l}_attention"),
            eight_bits.attention,
        );
        g.product(
            &format!("l{l}_attention"),
            &format!("l{l}_out"),
            &w.transposed(&format!("{p}{}.weight", names.out), h, h)?,
            (h, h),
            &format!("l{l}_projected"),
            eight_bits.attention,
        );
        // Bias, residual and layer norm in one node.
        let norm = |g: &mut Graph,
                    (norm, bias): (&str, &str),
                    tag: &str,
                    product: &str,
                    residual: &str,
                    output: &str| {
            let gamma = g.init(
                &format!("l{l}_{tag}_gamma"),
                &[h],
                w.get(&format!("{p}{norm}.weight"), &[h])?,
            );
            let beta = g.init(
                &format!("l{l}_{tag}_beta"),
                &[h],
                w.get(&format!("{p}{norm}.bias"), &[h])?,
            );
            let bias = g.init(
                &format!("l{l}_{tag}_bias"),
                &[h],
                w.get(&format!("{p}{bias}.bias"), &[h])?,
            );
            g.node(
                "SkipLayerNormalization",
                MS,
                &[product, residual, &gamma, &beta, &bias],
                output,
                vec![float("epsilon", s.eps)],
            );
            Ok::<(), String>(())
        };
        let attended = format!("l{l}_attended");
        norm(
            &mut g,
            (names.out_norm, names.out),
            "attention",
            &format!("l{l}_projected"),
            &x,
            &attended,
        )?;
        let up_bias = g.init(
            &format!("l{l}_up_bias"),
            &[f],
            w.get(&format!("{p}intermediate.dense.bias"), &[f])?,
        );
        g.product(
            &attended,
            &format!("l{l}_up"),
            &w.transposed(&format!("{p}intermediate.dense.weight"), f, h)?,
            (h, f),
            &format!("l{l}_up_product"),
            eight_bits.up,
        );
        g.node(
            "BiasGelu",
            MS,
            &[&format!("l{l}_up_product"), &up_bias],
            &format!("l{l}_gelu"),
            vec![],
        );
        g.product(
            &format!("l{l}_gelu"),
            &format!("l{l}_down"),
            &w.transposed(&format!("{p}output.dense.weight"), h, f)?,
            (f, h),
            &format!("l{l}_down_product"),
            eight_bits.down,
        );
        let next = if l + 1 == s.layers {
            "last_hidden_state".to_owned()
        } else {
            format!("layer_input_{}", l + 1)
        };
        norm(
            &mut g,
            ("output.LayerNorm", "output.dense"),
            "output",
            &format!("l{l}_down_product"),
            &attended,
            &next,
        )?;
    }
    Ok(g.model(h))
}

/// The embeddings and their layer norm, into `layer_input_0`: words,
/// positions and (a BERT's) token types.
fn embeddings(g: &mut Graph, w: &Weights<'_>, s: Shape) -> Result<(), String> {
    let h = s.hidden;
    let table = |g: &mut Graph, name: &str, tensor: &str, skip: usize| {
        let rows = w.rows(tensor)?;
        if rows <= skip {
            return Err(format!("model.safetensors: {tensor} has only {rows} rows"));
        }
        let data = w.get(tensor, &[rows, h])?;
        Ok(g.init(name, &[rows - skip, h], &data[skip * h * 4..]))
    };
    let e = "embeddings.";
    let word = table(g, "word", &format!("{e}word_embeddings.weight"), 0)?;
    // An MPNet numbers its tokens from after the padding token's position;
    // the operator numbers them from 0, so its table starts there.
    let first = match s.kind {
        Kind::Bert => 0,
        Kind::Mpnet { first_position, .. } => first_position,
    };
    let position = table(
        g,
        "position",
        &format!("{e}position_embeddings.weight"),
        first,
    )?;
    let (types, kinds) = match s.kind {
        Kind::Bert => (
            "token_type_ids_32",
            table(g, "kinds", &format!("{e}token_type_embeddings.weight"), 0)?,
        ),
        Kind::Mpnet { .. } => ("", String::new()),
    };
    let gamma = g.init(
        "emb_gamma",
        &[h],
        w.get(&format!("{e}LayerNorm.weight"), &[h])?,
    );
    let beta = g.init(
        "emb_beta",
        &[h],
        w.get(&format!("{e}LayerNorm.bias"), &[h])?,
    );
    // Its second output (each row's count of tokens) is required by the
    // operator; the layers take the mask itself instead.
    g.node_of(
        "EmbedLayerNormalization",
        MS,
        &[
            "input_ids_32",
            types,
            &word,
            &position,
            &kinds,
            &gamma,
            &beta,
        ],
        &["layer_input_0", "token_counts"],
        vec![float("epsilon", s.eps)],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_exact_bert_is_taken() {
        let config = serde_json::json!({
            "model_type": "bert", "hidden_act": "gelu", "hidden_size": 384,
            "num_attention_heads": 12, "num_hidden_layers": 6, "intermediate_size": 1536,
        });
        let shape = Shape::of(&config).unwrap();
        assert_eq!(
            (shape.hidden, shape.heads, shape.layers, shape.intermediate),
            (384, 12, 6, 1536)
        );
        assert!((shape.eps - 1e-12).abs() < 1e-15);
        for (key, value) in [
            ("model_type", serde_json::json!("roberta")),
            ("hidden_act", serde_json::json!("gelu_new")),
            ("position_embedding_type", serde_json::json!("relative_key")),
            ("num_attention_heads", serde_json::json!(7)),
            ("hidden_size", serde_json::json!(0)),
        ] {
            let mut other = config.clone();
            other[key] = value;
            assert!(Shape::of(&other).is_err(), "{key} accepted");
        }
    }

    #[test]
    fn an_mpnet_is_taken_with_its_buckets_and_first_position() {
        let config = serde_json::json!({
            "model_type": "mpnet", "hidden_act": "gelu", "hidden_size": 768,
            "num_attention_heads": 12, "num_hidden_layers": 12, "intermediate_size": 3072,
            "layer_norm_eps": 1e-5, "pad_token_id": 1, "relative_attention_num_buckets": 32,
        });
        let shape = Shape::of(&config).unwrap();
        assert_eq!(
            shape.kind,
            Kind::Mpnet {
                buckets: 32,
                first_position: 2
            }
        );
        assert!((shape.eps - 1e-5).abs() < 1e-9);
        assert_ne!(shape.kind.graph_tag(), Kind::Bert.graph_tag());
        let mut few = config.clone();
        few["relative_attention_num_buckets"] = serde_json::json!(2);
        assert!(Shape::of(&few).is_err(), "two buckets cannot be split");
    }

    #[test]
    fn a_linear_weight_is_turned_for_the_product() {
        // [out 2, in 3] = [[1, 2, 3], [4, 5, 6]] becomes [in 3, out 2].
        let values: Vec<u8> = [1.0_f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let embeddings =
            safetensors::tensor::TensorView::new(Dtype::F32, vec![1, 1], &values[..4]).unwrap();
        let buffer = safetensors::serialize(
            [
                (
                    "w".to_owned(),
                    safetensors::tensor::TensorView::new(Dtype::F32, vec![2, 3], &values).unwrap(),
                ),
                ("embeddings.word_embeddings.weight".to_owned(), embeddings),
            ],
            None,
        )
        .unwrap();
        let tensors = SafeTensors::deserialize(&buffer).unwrap();
        let weights = Weights::new(&tensors).unwrap();
        let turned: Vec<f32> = weights
            .transposed("w", 2, 3)
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(turned, [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        assert!(
            weights.transposed("w", 3, 2).is_err(),
            "a wrong shape is refused"
        );
        assert!(weights.get("absent", &[1]).is_err());
    }
}
