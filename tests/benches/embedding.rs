//! Embedding a need with the sentence-embedding model: the part of
//! discovery's latency the model adds. Needs of both development sets
//! (ToolBench: long, 40–60 tokens; APIBench: scenario sentences), each
//! embedded once after a warm-up, in the order of the set, by each runtime
//! the model directory offers (candle from `model.safetensors`; ONNX Runtime,
//! what the host prefers, running the graph written from the same weights
//! when `onnx/` holds its library), in turns need
//! by need so that the machine's drift falls on both alike; and how far
//! apart their vectors are; and, with the preferred runtime, what a search
//! embeds: the need and, for a need of several sentences, each sentence.
//!
//! Run: `cargo bench -p mercato-tests --features model --bench embedding`
//! (`MERCATO_EMBEDDING_MODEL=DIR`, default `target/models/all-MiniLM-L6-v2`;
//! `EMBED_NEEDS=N` needs per set, default 200; `EMBED_ALSO=DIR` adds
//! another model's directory, run by ONNX Runtime in the same turns, to
//! compare two models; the sets are read from `../shared/data`).

#[cfg(feature = "model")]
fn main() {
    use mercato_host::discovery::{Embedder, ModelEmbedder, OnnxEmbedder, dot, embed_need};
    use std::path::Path;
    use std::time::{Duration, Instant};

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::var("MERCATO_EMBEDDING_MODEL")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| root.join("target/models/all-MiniLM-L6-v2"));
    let mut runtimes: Vec<(&str, Box<dyn Embedder>)> = Vec::new();
    match ModelEmbedder::load(&dir) {
        Ok(model) => runtimes.push(("candle (f32)", Box::new(model))),
        Err(e) => println!("candle: {e}"),
    }
    match OnnxEmbedder::load(&dir) {
        Ok(model) => runtimes.push(("ONNX Runtime (graph)", Box::new(model))),
        Err(e) => println!("ONNX Runtime: {e}"),
    }
    let also = std::env::var("EMBED_ALSO").ok();
    if let Some(other) = &also {
        match OnnxEmbedder::load(Path::new(other)) {
            Ok(model) => runtimes.insert(0, ("ONNX Runtime, also", Box::new(model))),
            Err(e) => println!("{other}: {e}"),
        }
    }
    if runtimes.is_empty() {
        println!(
            "no model in {} (scripts/fetch-model): nothing to measure",
            dir.display()
        );
        return;
    }
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
        for (_, model) in &runtimes {
            for need in needs.iter().take(5) {
                let _ = model.embed(need);
            }
        }
        let mut took: Vec<Vec<Duration>> = vec![Vec::new(); runtimes.len()];
        let mut cosines: Vec<f32> = Vec::new();
        // What a search embeds: the need, then its sentences if it has
        // several (`embed_need`), by the runtime the host prefers (the last).
        let mut whole_and_sentences: Vec<Duration> = Vec::new();
        for need in &needs {
            if let Some((_, model)) = runtimes.last() {
                let started = Instant::now();
                let vectors = embed_need(model.as_ref(), need);
                whole_and_sentences.push(started.elapsed());
                assert!(vectors.len().is_multiple_of(model.dimension()));
            }
            let vectors: Vec<Vec<f32>> = runtimes
                .iter()
                .zip(&mut took)
                .map(|((_, model), took)| {
                    let started = Instant::now();
                    let vector = model.embed(need);
                    took.push(started.elapsed());
                    assert_eq!(vector.len(), model.dimension());
                    vector
                })
                .collect();
            // Two runtimes of one model (not two models) are compared.
            if let ([a, b], None) = (&vectors[..], &also) {
                cosines.push(dot(a, b));
            }
        }
        let words: usize = needs.iter().map(|n| n.split_whitespace().count()).sum();
        println!(
            "{set}: {} needs, {:.0} words each on average",
            needs.len(),
            words as f64 / needs.len().max(1) as f64
        );
        // p50, p90 and p99 in milliseconds, as printed.
        let spread = |mut took: Vec<Duration>| -> String {
            took.sort();
            let at = |q: f64| took[((q * took.len() as f64) as usize).min(took.len() - 1)];
            format!(
                "p50 {:6.2} ms  p90 {:6.2} ms  p99 {:6.2} ms",
                at(0.5).as_secs_f64() * 1e3,
                at(0.9).as_secs_f64() * 1e3,
                at(0.99).as_secs_f64() * 1e3,
            )
        };
        for ((label, model), took) in runtimes.iter().zip(took) {
            println!("  {label:<20} {}  ({})", spread(took), model.name());
        }
        if let Some((label, _)) = runtimes.last() {
            println!(
                "  {label}, the need and its sentences (embed_need): {}",
                spread(whole_and_sentences)
            );
        }
        if !cosines.is_empty() {
            cosines.sort_by(f32::total_cmp);
            println!(
                "  cosine between the two runtimes' vectors: lowest {:.5}, median {:.5}",
                cosines[0],
                cosines[cosines.len() / 2]
            );
        }
    }
}

#[cfg(not(feature = "model"))]
fn main() {
    println!(
        "built without the model: cargo bench -p mercato-tests --features model --bench embedding"
    );
}
