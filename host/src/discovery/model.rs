//! A sentence-embedding model (BERT family, such as all-MiniLM-L6-v2) loaded
//! from a local directory and run in pure Rust with candle: mean pooling over
//! the attention mask, unit length. Built with the `model` cargo feature.
//!
//! The directory holds `config.json`, `tokenizer.json` and
//! `model.safetensors`, and may hold ONNX Runtime's library (`onnx/`), in
//! which case `onnx::load_model` runs the same weights there (faster);
//! nothing is fetched at run time.

use super::embed::Embedder;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use sha2::Digest as _;
use std::path::Path;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Longest input, in tokens (the model's own file says 128; descriptions and
/// needs are short, but cutting at 128 loses the end of long ones).
pub(super) const TOKENS_MAX: usize = 256;

/// A loaded model.
pub struct ModelEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dimension: usize,
    name: String,
}

pub(super) fn fail(what: &str) -> impl Fn(&dyn std::fmt::Display) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// A file of the model directory.
pub(super) fn read(dir: &Path, file: &str) -> Result<Vec<u8>, String> {
    std::fs::read(dir.join(file)).map_err(|e| format!("{}: {e}", dir.join(file).display()))
}

/// The model's vector length (`hidden_size` in `config.json`).
pub(super) fn hidden_size(dir: &Path) -> Result<usize, String> {
    serde_json::from_slice::<serde_json::Value>(&read(dir, "config.json")?)
        .ok()
        .and_then(|c| c["hidden_size"].as_u64())
        .map(|n| n as usize)
        .ok_or_else(|| "config.json has no hidden_size".into())
}

/// The model's tokenizer, cut at [`TOKENS_MAX`] and padded to the longest
/// text of a batch (the file's own padding is to 128 tokens, which would
/// double the work on a short need and put padding in the mean).
pub(super) fn tokenizer(dir: &Path) -> Result<Tokenizer, String> {
    let mut tokenizer = Tokenizer::from_bytes(read(dir, "tokenizer.json")?)
        .map_err(|e| fail("tokenizer.json")(&e))?;
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: TOKENS_MAX,
            ..TruncationParams::default()
        }))
        .map_err(|e| fail("tokenizer truncation")(&e))?;
    tokenizer.with_padding(Some(PaddingParams {
        strategy: PaddingStrategy::BatchLongest,
        ..PaddingParams::default()
    }));
    Ok(tokenizer)
}

impl ModelEmbedder {
    /// Loads the model in `dir`.
    pub fn load(dir: &Path) -> Result<ModelEmbedder, String> {
        let config: serde_json::Value = serde_json::from_slice(&read(dir, "config.json")?)
            .map_err(|e| fail("config.json")(&e))?;
        // candle-transformers' BERT is what runs here; an MPNet (which only
        // the ONNX graph reproduces) is refused by name, not by a missing
        // tensor.
        if config["model_type"].as_str().is_some_and(|t| t != "bert") {
            return Err(format!(
                "config.json: model_type {} runs only on ONNX Runtime ({}/onnx/libonnxruntime.so)",
                config["model_type"],
                dir.display()
            ));
        }
        let config: Config = serde_json::from_value(config).map_err(|e| fail("config.json")(&e))?;
        let dimension = hidden_size(dir)?;
        let tokenizer = tokenizer(dir)?;
        let device = Device::Cpu;
        let bytes = read(dir, "model.safetensors")?;
        // The name keys stored vectors and the index dump: it carries the
        // weights' digest, so other weights in the same directory (or a
        // directory of the same name) never reuse this model's vectors.
        let digest = hex::encode(&sha2::Sha256::digest(&bytes)[..6]);
        let weights = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &device)
            .map_err(|e| fail("model.safetensors")(&e))?;
        let model = BertModel::load(weights, &config).map_err(|e| fail("model")(&e))?;
        let dir_name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        Ok(ModelEmbedder {
            model,
            tokenizer,
            device,
            dimension,
            name: format!("model:{dir_name}@{digest}"),
        })
    }

    /// Embeds several texts at once (faster per text than one by one).
    pub fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| fail("tokenize")(&e))?;
        let tensor = |rows: Vec<&[u32]>| -> Result<Tensor, String> {
            let rows = rows
                .into_iter()
                .map(|r| Tensor::new(r, &self.device))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| fail("tensor")(&e))?;
            Tensor::stack(&rows, 0).map_err(|e| fail("stack")(&e))
        };
        let ids = tensor(encodings.iter().map(|e| e.get_ids()).collect())?;
        let mask = tensor(encodings.iter().map(|e| e.get_attention_mask()).collect())?;
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let type_ids = ids.zeros_like()?;
            let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?;
            // Mean over the real tokens, then unit length.
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?;
            let mean = summed.broadcast_div(&counts)?;
            let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?;
            mean.broadcast_div(&norm)?.to_vec2::<f32>()
        };
        run().map_err(|e| fail("inference")(&e))
    }

    /// [`Embedder::embed_parts`] from one pass: each part's tokens pooled
    /// from the hidden states of the whole text.
    fn pooled_parts(
        &self,
        text: &str,
        parts: &[std::ops::Range<usize>],
    ) -> Result<Vec<Vec<f32>>, String> {
        let (encoding, masks) = encode_parts(&self.tokenizer, text, parts)?;
        let width = encoding.get_ids().len();
        let ids = Tensor::new(encoding.get_ids(), &self.device)
            .and_then(|t| t.unsqueeze(0))
            .map_err(|e| fail("tensor")(&e))?;
        let mask = Tensor::new(encoding.get_attention_mask(), &self.device)
            .and_then(|t| t.unsqueeze(0))
            .map_err(|e| fail("tensor")(&e))?;
        let weights: Vec<f32> = masks.iter().flatten().map(|&m| m as f32).collect();
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let type_ids = ids.zeros_like()?;
            let hidden = self
                .model
                .forward(&ids, &type_ids, Some(&mask))?
                .squeeze(0)?;
            // Each mask's sum of token states; unit length gives the mean's
            // direction (a part without tokens stays all zeros).
            let weights = Tensor::from_vec(weights, (masks.len(), width), &self.device)?;
            let summed = weights.matmul(&hidden)?;
            let norm = summed
                .sqr()?
                .sum_keepdim(1)?
                .sqrt()?
                .clamp(1e-12, f32::MAX)?;
            summed.broadcast_div(&norm)?.to_vec2::<f32>()
        };
        run().map_err(|e| fail("inference")(&e))
    }
}

/// `text` encoded for one pass, with its pooling masks: the attention mask
/// (the whole), then, for each of `parts` (byte ranges of the text), the
/// tokens that lie inside it (special tokens, which cover no text, in none).
pub(super) fn encode_parts(
    tokenizer: &Tokenizer,
    text: &str,
    parts: &[std::ops::Range<usize>],
) -> Result<(tokenizers::Encoding, Vec<Vec<u32>>), String> {
    let encoding = tokenizer
        .encode(text, true)
        .map_err(|e| fail("tokenize")(&e))?;
    let mut masks = vec![encoding.get_attention_mask().to_vec()];
    for part in parts {
        masks.push(
            encoding
                .get_offsets()
                .iter()
                .map(|&(from, to)| u32::from(to > from && from >= part.start && to <= part.end))
                .collect(),
        );
    }
    Ok((encoding, masks))
}

/// One text through a batch embedder; a zero vector if it failed.
pub(super) fn one(
    batch: impl Fn(&[&str]) -> Result<Vec<Vec<f32>>, String>,
    text: &str,
    dimension: usize,
) -> Vec<f32> {
    match batch(&[text]) {
        Ok(mut vectors) if !vectors.is_empty() => vectors.swap_remove(0),
        Ok(_) | Err(_) => vec![0.0; dimension],
    }
}

/// Texts through a batch embedder, 16 at a time (batches of similar size
/// pad less; 16 keeps memory modest); zero vectors for a batch that failed.
pub(super) fn in_batches(
    batch: impl Fn(&[&str]) -> Result<Vec<Vec<f32>>, String>,
    texts: &[&str],
    dimension: usize,
) -> Vec<Vec<f32>> {
    texts
        .chunks(16)
        .flat_map(|chunk| batch(chunk).unwrap_or_else(|_| vec![vec![0.0; dimension]; chunk.len()]))
        .collect()
}

impl Embedder for ModelEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed(&self, text: &str) -> Vec<f32> {
        one(|t| self.embed_batch(t), text, self.dimension)
    }

    fn embed_many(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        in_batches(|t| self.embed_batch(t), texts, self.dimension)
    }

    fn embed_parts(&self, text: &str, parts: &[std::ops::Range<usize>]) -> Vec<Vec<f32>> {
        self.pooled_parts(text, parts)
            .unwrap_or_else(|_| vec![vec![0.0; self.dimension]; parts.len() + 1])
    }

    fn is_slow(&self) -> bool {
        true
    }

    /// Equal trust: with both sides scaled to [0, 1], half the weight on
    /// the model is as good as the better side alone on both development
    /// sets, whichever side that is (ToolBench, short endpoint texts: BM25
    /// ahead of the model; APIBench, prose: the model ahead of BM25), where
    /// any weight tuned towards one set lost on the other
    /// (docs/BENCHMARKS.md §5c).
    fn fusion_weight(&self) -> f32 {
        0.5
    }
}
