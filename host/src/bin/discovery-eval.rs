//! Measures discovery quality on a catalog and a set of needs with known
//! answers, in the format of `shared/data/toolbench/` (`tools.jsonl`:
//! `{id, name, description, category, input_schema}`; `queries.jsonl`:
//! `{id, query, gold: [tool ids]}`).
//!
//! Tools are indexed through the same path as published capabilities
//! (`market::entry_for`), without a component per tool.
//!
//! Run: `cargo run --release -p mercato-host --bin discovery-eval -- \
//!   --tools ../shared/data/toolbench/tools.jsonl --queries ../shared/data/toolbench/queries.jsonl`
//!
//! Prints one line per ranking (BM25 alone, the embedder alone, fused) and,
//! last, one JSON object for the ranking `--embedder` names (default: fused).

use anyhow::{Context, Result, bail};
use clap::Parser;
use mercato_host::discovery::{Discovery, Embedder, HashEmbedder, Mode, Query};
use mercato_host::market::entry_for;
use mercato_host::registry::{CapabilityRecord, DataPolicy, Retention, Terms};
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Measure discovery quality: recall@k, hit@10, MRR, latency")]
struct Args {
    /// tools.jsonl: one capability per line.
    #[arg(long)]
    tools: std::path::PathBuf,
    /// queries.jsonl: one need per line with its gold capability ids.
    #[arg(long)]
    queries: std::path::PathBuf,
    /// Which ranking the final JSON line reports: `hash` (fused with BM25,
    /// the default), `bm25` (lexical alone) or `hash-dense` (embedding alone);
    /// with `--model-dir`, `model` (fused) or `model-dense`.
    #[arg(long, default_value = "hash")]
    embedder: String,
    /// A sentence-embedding model directory (a build with `--features model`):
    /// the embedder becomes that model.
    #[arg(long)]
    model_dir: Option<std::path::PathBuf>,
    /// With `--model-dir`: run the model with candle from its safetensors
    /// even when the directory has an ONNX export (which the product prefers).
    #[arg(long)]
    candle: bool,
    /// Keep every vector in FILE (JSON, by embedder and text) and reuse it on
    /// the next run: a model run takes seconds instead of minutes. Query
    /// latencies then leave the embedding out.
    #[arg(long)]
    vector_cache: Option<std::path::PathBuf>,
    /// Overrides the embedder's fusion weight (to explore; the product uses
    /// the embedder's own).
    #[arg(long)]
    fusion_weight: Option<f32>,
    /// Writes, per need, its gold ids and both raw rankings (JSON lines), to
    /// study fusion rules offline.
    #[arg(long)]
    dump: Option<std::path::PathBuf>,
    /// Writes every capability's vector by key (JSON lines), to study the
    /// dense side offline.
    #[arg(long)]
    dump_vectors: Option<std::path::PathBuf>,
}

/// An embedder that remembers what it embedded, for [`Args::vector_cache`].
struct Cached {
    inner: Arc<dyn Embedder>,
    vectors: std::sync::Mutex<std::collections::HashMap<String, Vec<f32>>>,
    fusion_weight: f32,
}

impl Cached {
    fn key(&self, text: &str) -> String {
        format!("{}\n{text}", self.inner.name())
    }
}

impl Embedder for Cached {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn dimension(&self) -> usize {
        self.inner.dimension()
    }
    fn embed(&self, text: &str) -> Vec<f32> {
        self.embed_many(&[text]).swap_remove(0)
    }
    fn embed_many(&self, texts: &[&str]) -> Vec<Vec<f32>> {
        let missing: Vec<&str> = {
            let vectors = self.vectors.lock().expect("cache");
            texts
                .iter()
                .copied()
                .filter(|t| !vectors.contains_key(&self.key(t)))
                .collect()
        };
        let fresh = self.inner.embed_many(&missing);
        let mut vectors = self.vectors.lock().expect("cache");
        for (text, vector) in missing.into_iter().zip(fresh) {
            vectors.insert(self.key(text), vector);
        }
        texts
            .iter()
            .map(|t| vectors[&self.key(t)].clone())
            .collect()
    }
    /// Not kept: a need's sentences are pooled from its one pass.
    fn embed_parts(&self, text: &str, parts: &[std::ops::Range<usize>]) -> Vec<Vec<f32>> {
        self.inner.embed_parts(text, parts)
    }
    fn is_slow(&self) -> bool {
        self.inner.is_slow()
    }
    fn fusion_weight(&self) -> f32 {
        self.fusion_weight
    }
}

fn embedder(args: &Args) -> Result<(Arc<dyn Embedder>, &'static str)> {
    let Some(dir) = &args.model_dir else {
        return Ok((Arc::new(HashEmbedder::default()), "hash"));
    };
    #[cfg(feature = "model")]
    {
        let model: Arc<dyn Embedder> = if args.candle {
            Arc::new(
                mercato_host::discovery::ModelEmbedder::load(dir)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?,
            )
        } else {
            mercato_host::discovery::load_model(dir)
                .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
        };
        eprintln!("embedder: {}", model.name());
        Ok((model, "model"))
    }
    #[cfg(not(feature = "model"))]
    bail!(
        "--model-dir {}: this build has no model support (cargo run --features model ...)",
        dir.display()
    )
}

#[derive(Deserialize)]
struct Tool {
    id: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    input_schema: serde_json::Value,
    /// The service offering the endpoint (its agent).
    #[serde(default)]
    service: Option<String>,
}

impl Tool {
    /// The agent: the service when the set names one, else the id up to its
    /// last `/` or `.`.
    fn agent(&self) -> String {
        match &self.service {
            Some(service) => format!("{}/{service}", self.category),
            None => self
                .id
                .rsplit_once(['/', '.'])
                .map_or(self.id.clone(), |(agent, _)| agent.to_string()),
        }
    }
}

#[derive(Deserialize)]
struct Need {
    query: String,
    gold: Vec<String>,
}

fn read_jsonl<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<Vec<T>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}:{}", path.display(), i + 1))
        })
        .collect()
}

fn record(tool: &Tool) -> CapabilityRecord {
    CapabilityRecord {
        name: tool.name.clone(),
        description: tool.description.clone(),
        category: tool.category.clone(),
        tags: Vec::new(),
        input_schema: tool.input_schema.clone(),
        output_schema: serde_json::json!({}),
        examples: Vec::new(),
        terms: Terms {
            price_micros: 0,
            micros_per_mfuel: 0,
            latency_ms_max: 1_000,
            uptime: 1.0,
            rate_limit_per_minute: 0,
            data_policy: DataPolicy {
                retention: Retention::None,
                encryption: true,
                jurisdictions: vec![],
            },
            negotiation: None,
        },
        deterministic: true,
        attested_fuel_p50: None,
    }
}

struct Report {
    name: String,
    recall: [f64; 3],
    hit10: f64,
    mrr: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn evaluate(discovery: &Discovery, needs: &[Need], mode: Mode, name: &str) -> Result<Report> {
    let mut recall = [0.0; 3];
    let (mut hit10, mut mrr) = (0.0, 0.0);
    let mut latencies = Vec::with_capacity(needs.len());
    for need in needs {
        let query = Query {
            need: need.query.clone(),
            limit: Some(10),
            ..Query::default()
        };
        let started = Instant::now();
        let hits = discovery
            .search_with(&query, mode)
            .map_err(|e| anyhow::anyhow!(e.0))?;
        latencies.push(started.elapsed().as_secs_f64() * 1e3);
        let gold: HashSet<&str> = need.gold.iter().map(String::as_str).collect();
        let ranked: Vec<&str> = hits.iter().map(|h| h.key.as_str()).collect();
        for (slot, k) in [1, 5, 10].into_iter().enumerate() {
            let found = ranked
                .iter()
                .take(k)
                .filter(|id| gold.contains(*id))
                .count();
            recall[slot] += found as f64 / gold.len().max(1) as f64;
        }
        if let Some(first) = ranked.iter().position(|id| gold.contains(id)) {
            hit10 += 1.0;
            mrr += 1.0 / (first as f64 + 1.0);
        }
    }
    let n = needs.len().max(1) as f64;
    latencies.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    Ok(Report {
        name: name.to_string(),
        recall: recall.map(|r| r / n),
        hit10: hit10 / n,
        mrr: mrr / n,
        p50_ms: pick(0.5),
        p99_ms: pick(0.99),
    })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let tools: Vec<Tool> = read_jsonl(&args.tools)?;
    let needs: Vec<Need> = read_jsonl(&args.queries)?;
    let (mut embedder, family) = embedder(&args)?;
    let cached = (args.vector_cache.is_some() || args.fusion_weight.is_some()).then(|| {
        let vectors = args
            .vector_cache
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Arc::new(Cached {
            fusion_weight: args.fusion_weight.unwrap_or(embedder.fusion_weight()),
            inner: embedder.clone(),
            vectors: std::sync::Mutex::new(vectors),
        })
    });
    if let Some(cached) = &cached {
        embedder = cached.clone();
    }
    let discovery = Discovery::new(embedder.clone());
    let started = Instant::now();
    let entries: Vec<_> = tools
        .iter()
        .map(|tool| entry_for(&tool.id, &tool.agent(), &record(tool), 0, None))
        .collect();
    let texts: Vec<String> = entries.iter().map(|e| e.text()).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = embedder.embed_many(&refs);
    if let Some(file) = &args.dump_vectors {
        let mut out = String::new();
        for (tool, vector) in tools.iter().zip(&vectors) {
            out.push_str(&serde_json::to_string(
                &serde_json::json!({"key": tool.id, "vector": vector}),
            )?);
            out.push('\n');
        }
        std::fs::write(file, out).with_context(|| format!("cannot write {}", file.display()))?;
    }
    for (entry, vector) in entries.into_iter().zip(vectors) {
        discovery.upsert(entry, vector);
    }
    eprintln!(
        "indexed {} capabilities in {:.2}s; {} needs",
        tools.len(),
        started.elapsed().as_secs_f64(),
        needs.len()
    );
    if let Some(file) = &args.dump {
        let mut out = String::new();
        for need in &needs {
            let vector = embedder.embed(&need.query);
            let (dense, lexical) = discovery.rankings_of(&need.query, &vector);
            out.push_str(&serde_json::to_string(&serde_json::json!({
                "gold": need.gold, "dense": dense, "lexical": lexical,
            }))?);
            out.push('\n');
        }
        std::fs::write(file, out).with_context(|| format!("cannot write {}", file.display()))?;
    }
    let mut reports = Vec::new();
    let dense = format!("{family}-dense");
    for (mode, name) in [
        (Mode::Lexical, "bm25"),
        (Mode::Dense, dense.as_str()),
        (Mode::Fused, family),
    ] {
        let r = evaluate(&discovery, &needs, mode, name)?;
        println!(
            "{:<11} recall@1 {:.3}  recall@5 {:.3}  recall@10 {:.3}  hit@10 {:.3}  MRR {:.3}  p50 {:.3} ms  p99 {:.3} ms",
            r.name, r.recall[0], r.recall[1], r.recall[2], r.hit10, r.mrr, r.p50_ms, r.p99_ms
        );
        reports.push(r);
    }
    if let (Some(cached), Some(file)) = (&cached, &args.vector_cache) {
        let vectors = cached.vectors.lock().expect("cache");
        std::fs::write(file, serde_json::to_vec(&*vectors)?)
            .with_context(|| format!("cannot write {}", file.display()))?;
    }
    let Some(chosen) = reports.iter().find(|r| r.name == args.embedder) else {
        bail!(
            "unknown --embedder {}: use {family}, bm25 or {family}-dense",
            args.embedder
        );
    };
    let json = serde_json::json!({
        "embedder": chosen.name,
        "recall@1": chosen.recall[0],
        "recall@5": chosen.recall[1],
        "recall@10": chosen.recall[2],
        "hit@10": chosen.hit10,
        "mrr": chosen.mrr,
        "p50_ms": chosen.p50_ms,
        "p99_ms": chosen.p99_ms,
        "capabilities": tools.len(),
        "queries": needs.len(),
    });
    println!("{json}");
    Ok(())
}
