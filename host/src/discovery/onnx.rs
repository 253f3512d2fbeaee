//! The sentence-embedding model run by ONNX Runtime: the graph written by
//! [`super::bert_onnx`] from the model's own `model.safetensors` (a BERT's
//! weights, as candle runs them, the attention's in 8 bits; or an MPNet's,
//! which only this runtime runs), and the runtime library
//! `DIR/onnx/libonnxruntime.so`, loaded at run time (`scripts/fetch-model`
//! installs it from the PyPI wheel, pinned by SHA-256). Same tokenizer,
//! same pooling (mean over the attention mask, unit length) as
//! [`super::ModelEmbedder`]; a BERT's vectors are within a cosine of 0.998
//! of candle's, and a need is embedded several times faster
//! (docs/BENCHMARKS.md §5e, §5h).

use super::embed::Embedder;
use super::model::{fail, hidden_size, in_batches, one, read, tokenizer};
use ort::session::Session;
use ort::value::Tensor;
use sha2::Digest as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use tokenizers::Tokenizer;

/// The sub-directory of a model directory that holds the runtime.
pub const ONNX_DIR: &str = "onnx";
/// The runtime library, in [`ONNX_DIR`].
pub const ONNX_RUNTIME: &str = "libonnxruntime.so";

/// The inputs the graph takes, all `int64 [batch, sequence]`.
const INPUTS: [&str; 3] = ["input_ids", "attention_mask", "token_type_ids"];

/// The runtime, loaded once per process (ONNX Runtime allows one
/// environment); the first library loaded is the one every model uses.
static RUNTIME: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();

fn runtime(library: &Path) -> Result<&'static ort::environment::Environment, String> {
    RUNTIME
        .get_or_init(|| {
            ort::init_from(library)
                .map_err(|e| format!("{}: {e}", library.display()))?
                .with_name("mercato")
                .build()
                .map_err(|e| format!("ONNX Runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Whether `dir` holds the runtime beside the model.
pub fn present(dir: &Path) -> bool {
    dir.join(ONNX_DIR).join(ONNX_RUNTIME).is_file()
}

/// The model in `dir`, run by ONNX Runtime when `dir/onnx` holds the
/// runtime (several times faster), else by candle. A model the graph cannot
/// reproduce (not a BERT encoder with absolute positions and the exact
/// GELU), or a runtime that does not load, is logged and the model left to
/// candle; `/healthz` names the embedder in use.
pub fn load_model(dir: &Path) -> Result<std::sync::Arc<dyn Embedder>, String> {
    if present(dir) {
        match OnnxEmbedder::load(dir) {
            Ok(model) => return Ok(std::sync::Arc::new(model)),
            Err(error) if dir.join("model.safetensors").is_file() => {
                tracing::warn!(%error, dir = %dir.display(), "the ONNX model did not load; running the model with candle");
            }
            Err(error) => return Err(error),
        }
    }
    Ok(std::sync::Arc::new(super::ModelEmbedder::load(dir)?))
}

/// A loaded ONNX model.
pub struct OnnxEmbedder {
    /// A run needs the session alone (`Session::run` takes `&mut`); its
    /// threads are the runtime's own pool.
    session: Mutex<Session>,
    tokenizer: Tokenizer,
    dimension: usize,
    name: String,
}

impl OnnxEmbedder {
    /// Writes the graph of the model in `dir` and loads it into the runtime
    /// in `dir/onnx`.
    pub fn load(dir: &Path) -> Result<OnnxEmbedder, String> {
        let onnx: PathBuf = dir.join(ONNX_DIR);
        let environment = runtime(&onnx.join(ONNX_RUNTIME))?;
        let dimension = hidden_size(dir)?;
        let tokenizer = tokenizer(dir)?;
        let weights = read(dir, "model.safetensors")?;
        // The weights' digest, as candle's name carries it; the graph's tag
        // keeps the two runtimes' stored vectors apart (a BERT's 8-bit
        // attention).
        let digest = hex::encode(&sha2::Sha256::digest(&weights)[..6]);
        let (bytes, graph_tag) = super::bert_onnx::build(dir, &weights)?;
        drop(weights);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let build = || -> Result<Session, String> {
            let text = |e: &dyn std::fmt::Display| format!("ONNX Runtime: {e}");
            Session::builder(environment)
                .map_err(|e| text(&e))?
                .with_intra_threads(threads)
                .map_err(|e| text(&e))?
                .with_inter_threads(1)
                .map_err(|e| text(&e))?
                // Idle pool threads sleep instead of spinning: the cores are
                // the guests' too.
                .with_intra_op_spinning(false)
                .map_err(|e| text(&e))?
                .commit_from_memory(&bytes)
                .map_err(|e| text(&e))
        };
        let session = build()?;
        let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        if let Some(missing) = INPUTS.iter().find(|i| !names.contains(i)) {
            return Err(format!(
                "the graph has no input {missing} (it has {names:?})"
            ));
        }
        if session.outputs().is_empty() {
            return Err("the graph has no output".into());
        }
        let dir_name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        let embedder = OnnxEmbedder {
            session: Mutex::new(session),
            tokenizer,
            dimension,
            name: format!("model:{dir_name}-{graph_tag}@{digest}"),
        };
        // A model whose output is not [batch, sequence, hidden_size] is
        // refused here, not at the first need.
        embedder.embed_batch(&["a"])?;
        Ok(embedder)
    }

    /// Embeds several texts at once.
    pub fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| fail("tokenize")(&e))?;
        self.infer(&encodings, |hidden, width| {
            encodings
                .iter()
                .enumerate()
                .map(|(row, encoding)| {
                    let start = row * width * self.dimension;
                    mean_of_real_tokens(
                        &hidden[start..start + width * self.dimension],
                        encoding.get_attention_mask(),
                        self.dimension,
                    )
                })
                .collect()
        })
    }

    /// [`Embedder::embed_parts`] from one pass: each part's tokens pooled
    /// from the hidden states of the whole text.
    fn pooled_parts(
        &self,
        text: &str,
        parts: &[std::ops::Range<usize>],
    ) -> Result<Vec<Vec<f32>>, String> {
        let (encoding, masks) = super::model::encode_parts(&self.tokenizer, text, parts)?;
        self.infer(std::slice::from_ref(&encoding), |hidden, _| {
            masks
                .iter()
                .map(|mask| mean_of_real_tokens(hidden, mask, self.dimension))
                .collect()
        })
    }

    /// Runs the model over `encodings` (of one width) and hands `pool` its
    /// hidden states, `[rows, width, dimension]` flat, and the width.
    fn infer<R>(
        &self,
        encodings: &[tokenizers::Encoding],
        pool: impl FnOnce(&[f32], usize) -> R,
    ) -> Result<R, String> {
        let (rows, width) = (encodings.len(), encodings[0].get_ids().len());
        let column = |field: fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor<i64>, String> {
            let values: Vec<i64> = encodings
                .iter()
                .flat_map(|e| field(e).iter().map(|v| i64::from(*v)))
                .collect();
            Tensor::from_array(([rows, width], values)).map_err(|e| fail("tensor")(&e))
        };
        let ids = column(tokenizers::Encoding::get_ids)?;
        let mask = column(tokenizers::Encoding::get_attention_mask)?;
        let types = Tensor::from_array(([rows, width], vec![0_i64; rows * width]))
            .map_err(|e| fail("tensor")(&e))?;
        let mut session = self.session.lock().unwrap_or_else(|p| p.into_inner());
        let outputs = session
            .run(ort::inputs![
                INPUTS[0] => ids,
                INPUTS[1] => mask,
                INPUTS[2] => types,
            ])
            .map_err(|e| fail("inference")(&e))?;
        let (shape, hidden) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| fail("output")(&e))?;
        let expected = [rows as i64, width as i64, self.dimension as i64];
        if shape[..] != expected {
            return Err(format!(
                "the graph answered shape {shape:?}, expected {expected:?}"
            ));
        }
        Ok(pool(hidden, width))
    }
}

/// The mean of the rows whose mask is set, at unit length.
fn mean_of_real_tokens(hidden: &[f32], mask: &[u32], dimension: usize) -> Vec<f32> {
    let mut sum = vec![0.0_f32; dimension];
    let mut count = 0.0_f32;
    for (token, row) in mask.iter().zip(hidden.chunks_exact(dimension)) {
        if *token != 0 {
            count += 1.0;
            for (s, v) in sum.iter_mut().zip(row) {
                *s += v;
            }
        }
    }
    let norm = sum.iter().map(|v| v * v).sum::<f32>().sqrt();
    if count == 0.0 || norm == 0.0 {
        return sum;
    }
    // The mean's direction is the sum's: unit length either way.
    sum.iter().map(|v| v / norm).collect()
}

impl Embedder for OnnxEmbedder {
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

    /// The same model as [`super::ModelEmbedder`]: the same trust.
    fn fusion_weight(&self) -> f32 {
        0.5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mean_counts_only_real_tokens_and_has_unit_length() {
        let hidden = [1.0, 0.0, 3.0, 4.0, 100.0, 100.0];
        let v = mean_of_real_tokens(&hidden, &[1, 1, 0], 2);
        // (1 + 3, 0 + 4) / 2 = (2, 2), at unit length.
        let half = std::f32::consts::FRAC_1_SQRT_2;
        assert!(
            (v[0] - half).abs() < 1e-6 && (v[1] - half).abs() < 1e-6,
            "{v:?}"
        );
        assert_eq!(mean_of_real_tokens(&hidden, &[0, 0, 0], 2), [0.0, 0.0]);
    }
}
