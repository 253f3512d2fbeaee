//! Embedding a need with the sentence-embedding model: the part of
//! discovery's latency the model adds. Needs of both development sets
//! (ToolBench: long, 40–60 tokens; APIBench: scenario sentences), each
//! embedded once after a warm-up, in the order of the set.
//!
//! Run: `cargo bench -p mercato-tests --features model --bench embedding`
//! (`MERCATO_EMBEDDING_MODEL=DIR`, default `target/models/all-MiniLM-L6-v2`;
//! `EMBED_NEEDS=N` needs per set, default 200; the sets are read from
//! `../shared/data`).

#[cfg(feature = "model")]
fn main() {
    use mercato_host::discovery::Embedder;
    use std::path::Path;
    use std::time::{Duration, Instant};

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::var("MERCATO_EMBEDDING_MODEL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target/models/all-MiniLM-L6-v2"));
    let Ok(model) = mercato_host::discovery::ModelEmbedder::load(&dir) else {
        println!(
            "no model in {} (scripts/fetch-model): nothing to measure",
            dir.display()
        );
        return;
    };
    let wanted: usize = std::env::var("EMBED_NEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    for set in ["toolbench", "apibench"] {
        let file = root.join(format!("../shared/data/{set}/queries.jsonl"));
        let Ok(text) = std::fs::read_to_string(&file) else {
            println!("{set}: no {}", file.display());
            continue;
        };
        let needs: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|q| q["query"].as_str().map(str::to_string))
            .take(wanted)
            .collect();
        for need in needs.iter().take(5) {
            let _ = model.embed(need);
        }
        let mut took: Vec<Duration> = needs
            .iter()
            .map(|need| {
                let started = Instant::now();
                let vector = model.embed(need);
                assert_eq!(vector.len(), model.dimension());
                started.elapsed()
            })
            .collect();
        took.sort();
        let words: usize = needs.iter().map(|n| n.split_whitespace().count()).sum();
        let at = |q: f64| took[((q * took.len() as f64) as usize).min(took.len() - 1)];
        println!(
            "{set}: {} needs, {:.0} words each on average: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms ({})",
            needs.len(),
            words as f64 / needs.len().max(1) as f64,
            at(0.5).as_secs_f64() * 1e3,
            at(0.9).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            model.name()
        );
    }
}

#[cfg(not(feature = "model"))]
fn main() {
    println!(
        "built without the model: cargo bench -p mercato-tests --features model --bench embedding"
    );
}
