//! Publish-to-discoverable across replicas: a version published through
//! replica A, timed from A's answer until replica B lists it and its
//! discovery returns it. Two hosts on one PostgreSQL database of the
//! bench's own; each round a fresh database, seven publishes (the sample
//! agents and the word-count upgrades).
//!
//! Run: `cargo bench -p mercato-tests --bench replicas`
//! (`REPLICAS_ROUNDS=3` sets the rounds).

use mercato_tests::postgres::Postgres;
use mercato_tests::{Host, test_config};
use serde_json::json;
use std::time::{Duration, Instant};

const PUBLISHES: [(&str, &str); 7] = [
    ("pii-redactor", "pii-redactor.redact"),
    ("unit-converter", "unit-converter.convert"),
    ("summarizer", "summarizer.summarize"),
    ("vendor-compliance", "vendor-compliance.check-vendor"),
    ("upgrades/word-count-1-0-0", "word-count.count@1"),
    ("upgrades/word-count-1-1-0", "word-count.count@1"),
    ("upgrades/word-count-2-0-0", "word-count.count@2"),
];

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Whether `host` lists `id` at `version` and discovery returns it.
async fn visible(host: &Host, id: &str, version: &str) -> bool {
    let (status, listed) = host.get(&format!("/v1/capabilities/{id}"), None).await;
    if !status.is_success() || listed["version"] != version {
        return false;
    }
    let unpinned = id.split('@').next().unwrap_or(id);
    let (_, found) = host
        .post(
            "/v1/discover",
            None,
            json!({ "need": unpinned.replace(['.', '-'], " "), "limit": 50 }),
        )
        .await;
    found["results"].as_array().is_some_and(|r| {
        r.iter().any(|hit| {
            hit["capability"]["id"]
                .as_str()
                .is_some_and(|h| h.starts_with(unpinned))
        })
    })
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let rounds: usize = std::env::var("REPLICAS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let Some(cluster) = Postgres::start_in(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")))
    else {
        println!("no PostgreSQL server binaries: nothing to measure");
        return;
    };
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let url = cluster.database();
        let dirs: Vec<_> = (0..2)
            .map(|_| tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir"))
            .collect();
        let mut hosts = Vec::new();
        for dir in &dirs {
            let mut config = test_config(dir.path());
            config.database_url = Some(mercato_host::config::DatabaseUrl(url.clone()));
            hosts.push(Host::start_with(config).await);
        }
        let (a, b) = (&hosts[0], &hosts[1]);
        let provider = a.org("provider").await;
        for (agent, id) in PUBLISHES {
            let published = a.publish(&provider, agent).await;
            let version = published["version"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let started = Instant::now();
            while !visible(b, id, &version).await {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "{agent} never visible"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            samples.push(started.elapsed());
        }
        for host in hosts {
            host.stop().await;
        }
    }
    samples.sort();
    println!(
        "publish on A → listed and discovered on B: {} publishes, p50 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples.last().copied().unwrap_or_default()
    );
}
