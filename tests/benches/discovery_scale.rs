//! Discovery at scale: N synthetic capabilities (default 100,000) with varied
//! descriptions and terms, indexed through `Discovery::upsert` (the publish
//! path). Reports build time and memory, query latency p50/p99 without and
//! with filters of different selectivity, and recall@10 of the HNSW walk
//! against an exact scan over the same vectors.
//!
//! Run: `cargo bench -p mercato-tests --bench discovery_scale` (`SCALE_N=20000` for a quicker run;
//! `SCALE_DUMP=DIR` keeps the dump and reuses it next time, skipping the build). With
//! `--features model` and `MERCATO_EMBEDDING_MODEL=DIR` it also measures queries embedded by
//! the sentence-embedding model.

use mercato_host::discovery::{
    DataPolicyFilter, Discovery, Entry, Facts, HashEmbedder, Mode, Query, Restored, Retention, dot,
};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use mercato_tests::synthetic::{CATEGORIES, DOMAINS, OBJECTS, QUALIFIERS, Rng, VERBS};

fn synthetic(i: usize, rng: &mut Rng) -> Entry {
    let (verb, object, domain, qualifier) = (
        rng.pick(VERBS),
        rng.pick(OBJECTS),
        rng.pick(DOMAINS),
        rng.pick(QUALIFIERS),
    );
    let category = rng.pick(CATEGORIES);
    let jurisdictions = match rng.next_u64() % 4 {
        0 => vec!["EU".to_string()],
        1 => vec!["US".to_string()],
        2 => vec!["EU".to_string(), "US".to_string()],
        _ => vec!["JP".to_string()],
    };
    Entry {
        key: format!("agent-{i}.{verb}"),
        agent: format!("agent-{i}"),
        name: format!("{verb}-{}", object.replace(' ', "-")),
        description: format!("{verb}s {object} for {domain} {qualifier}; provider {i}"),
        category: category.to_string(),
        tags: vec![domain.to_string(), verb.to_string()],
        fields: vec![object.to_string(), "options".into()],
        facts: Facts {
            expected_cost_micros: rng.next_u64() % 100_000,
            latency_ms_max: 50 + rng.next_u64() % 2_000,
            uptime: 0.9 + (rng.next_u64() % 1_000) as f64 / 10_000.0,
            retention: [Retention::None, Retention::Day, Retention::Month]
                [(rng.next_u64() % 3) as usize],
            encryption: !rng.next_u64().is_multiple_of(5),
            jurisdictions,
            rating: None,
        },
    }
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn main() {
    let n: usize = std::env::var("SCALE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let entries: Vec<Entry> = (0..n).map(|i| synthetic(i, &mut rng)).collect();
    let rss_before = rss_mib();
    let embedder = HashEmbedder::default();
    let started = Instant::now();
    let pairs: Vec<(Entry, Vec<f32>)> = entries
        .iter()
        .map(|e| {
            (
                e.clone(),
                mercato_host::discovery::Embedder::embed(&embedder, &e.text()),
            )
        })
        .collect();
    let vectors: Vec<Vec<f32>> = pairs.iter().map(|(_, v)| v.clone()).collect();
    let embed = started.elapsed().as_secs_f64();
    // A build: what a start without a usable dump does (serial inserts,
    // then the check that every point finds itself).
    // `SCALE_DUMP=DIR` keeps the dump there and reuses it on the next run
    // (to profile queries without a four-minute build each time).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let index = std::env::var_os("SCALE_DUMP")
        .map_or_else(|| dir.path().join("index"), std::path::PathBuf::from);
    let (mut build, mut save) = (f64::NAN, f64::NAN);
    if !index.join("manifest.json").exists() {
        let built = Discovery::new(Arc::new(HashEmbedder::default()));
        let started = Instant::now();
        let how = built.restore(&index, pairs.clone());
        build = started.elapsed().as_secs_f64();
        assert!(matches!(how, Restored::Rebuilt(_)), "{how:?}");
        let started = Instant::now();
        built.save(&index).expect("save");
        save = started.elapsed().as_secs_f64();
    }
    let bytes: u64 = std::fs::read_dir(&index)
        .expect("index dir")
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum();
    // A restart: reload the dump and reconcile it with the entries.
    let discovery = Discovery::new(Arc::new(HashEmbedder::default()));
    let started = Instant::now();
    let how = discovery.restore(&index, pairs);
    let reload = started.elapsed().as_secs_f64();
    assert!(
        matches!(how, Restored::Reloaded { inserted: 0, .. }),
        "{how:?}"
    );
    let rss = rss_mib() - rss_before;
    println!(
        "n = {n}: embed {embed:.1} s; build {build:.1} s ({:.0} inserts/s, self-check included); \
         save {save:.2} s, {:.0} MiB on disk; restart (reload + reconcile) {reload:.2} s; \
         resident +{rss:.0} MiB (index plus the bench's copies of entries and vectors)",
        n as f64 / build,
        bytes as f64 / (1 << 20) as f64
    );

    let queries: Vec<String> = (0..500)
        .map(|_| {
            format!(
                "{} {} {}",
                rng.pick(VERBS),
                rng.pick(OBJECTS),
                rng.pick(DOMAINS)
            )
        })
        .collect();
    let run = |name: &str, make: &dyn Fn(&str) -> Query, mode: Mode| {
        let mut times = Vec::new();
        let mut results = 0;
        for q in &queries {
            let query = make(q);
            let t = Instant::now();
            results += discovery
                .search_with(&query, mode)
                .map(|h| h.len())
                .unwrap_or(0);
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "| {name:<52} | {:>7.2} | {:>7.2} | {:>5.1} |",
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            results as f64 / queries.len() as f64
        );
    };
    println!("| query (500 needs, limit 10; embedding included) | p50 ms | p99 ms | results |");
    println!("|---|---:|---:|---:|");
    let plain = |q: &str| Query {
        need: q.into(),
        limit: Some(10),
        ..Query::default()
    };
    run("no filter, fused", &plain, Mode::Fused);
    run("no filter, dense only (HNSW walk)", &plain, Mode::Dense);
    run(
        "category (~10% admitted)",
        &|q: &str| Query {
            category: Some("finance".into()),
            ..plain(q)
        },
        Mode::Fused,
    );
    run(
        "category + price + JP (~0.25% admitted: exact scan)",
        &|q: &str| Query {
            category: Some("finance".into()),
            max_price_micros: Some(10_000),
            data_policy: Some(DataPolicyFilter {
                jurisdiction: Some("JP".into()),
                ..Default::default()
            }),
            ..plain(q)
        },
        Mode::Fused,
    );

    // Recall@10 of the HNSW walk against an exact scan over the same vectors.
    let mut recall = 0.0;
    for q in &queries {
        let v = mercato_host::discovery::Embedder::embed(&embedder, q);
        let mut exact: Vec<(usize, f32)> = vectors
            .iter()
            .enumerate()
            .map(|(i, x)| (i, dot(&v, x)))
            .collect();
        exact.sort_by(|a, b| b.1.total_cmp(&a.1));
        let truth: HashSet<String> = exact
            .iter()
            .take(10)
            .map(|(i, _)| entries[*i].key.clone())
            .collect();
        let walked = discovery
            .search_with(&plain(q), Mode::Dense)
            .unwrap_or_default();
        recall += walked.iter().filter(|h| truth.contains(&h.key)).count() as f64 / 10.0;
    }
    println!(
        "\nrecall@10 of the HNSW walk vs exact scan: {:.3}",
        recall / queries.len() as f64
    );
    #[cfg(feature = "model")]
    model_queries(&discovery, &queries);
}

/// With the sentence-embedding model (`--features model`,
/// `MERCATO_EMBEDDING_MODEL=DIR`): a query's cost is embedding the need with
/// the model plus the search over 100,000 vectors of the same dimension
/// (384). Embedding 100,000 capabilities with the model takes about an hour
/// here, so the index holds the default embedder's vectors; the walk's cost
/// depends on the dimension and the graph, not on which model made them.
#[cfg(feature = "model")]
fn model_queries(discovery: &Discovery, queries: &[String]) {
    let Some(dir) = std::env::var_os("MERCATO_EMBEDDING_MODEL") else {
        println!("\n(model: set MERCATO_EMBEDDING_MODEL to measure it)");
        return;
    };
    // The model as the host runs it (its ONNX export when installed).
    let model = mercato_host::discovery::load_model(std::path::Path::new(&dir)).expect("model");
    assert_eq!(
        model.dimension(),
        384,
        "the index holds 384-dimensional vectors"
    );
    let _ = model.embed("warm up");
    let (mut embed, mut total) = (Vec::new(), Vec::new());
    for q in queries {
        let query = Query {
            need: q.clone(),
            limit: Some(10),
            ..Query::default()
        };
        let t = Instant::now();
        let vector = model.embed(q);
        embed.push(t.elapsed().as_secs_f64() * 1e3);
        let hits = discovery
            .search_embedded(&query, &vector, Mode::Fused)
            .expect("search");
        total.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(hits.len(), 10);
    }
    embed.sort_by(f64::total_cmp);
    total.sort_by(f64::total_cmp);
    println!(
        "\nmodel ({}): embedding the need p50 {:.2} ms p99 {:.2} ms; \
         embedding + fused search p50 {:.2} ms p99 {:.2} ms",
        model.name(),
        percentile(&embed, 0.5),
        percentile(&embed, 0.99),
        percentile(&total, 0.5),
        percentile(&total, 0.99)
    );
}
