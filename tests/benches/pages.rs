//! Server-side rendering of the pages against the JSON API for the same
//! data, with a catalog of many listings: the catalog's first page (no need),
//! the catalog ranked for a need, a capability's page; beside them
//! `GET /v1/capabilities?offset=0&limit=10`, `POST /v1/discover` (limit 10)
//! and `GET /v1/capabilities/{id}`. One client, requests interleaved page /
//! JSON, bodies checked.
//!
//! The listings are the unit converter's version record copied under new
//! agent names straight into the store of a stopped host (one component, so
//! the restart compiles once), then the host restarts and indexes them all.
//!
//! Run: `cargo bench -p mercato-tests --bench pages`
//! (`PAGES_LISTINGS=10000` agents of two capabilities each, `PAGES_CALLS=300`).

use mercato_host::registry::{AgentRecord, VersionRecord};
use mercato_host::store::{Store, Tree};
use mercato_tests::{Host, test_config};
use serde_json::json;
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// This process's resident memory (the host runs in it), from /proc.
fn resident_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Copies the converter's version record under `count` new agent names.
async fn fill(dir: &std::path::Path, count: usize) {
    let store = Store::open(dir, Duration::from_secs(3_600)).expect("store");
    let version: VersionRecord = store
        .get(Tree::Versions, "unit-converter@1.0.0")
        .expect("read")
        .expect("the converter is published");
    let agent: AgentRecord = store
        .get(Tree::Agents, "unit-converter")
        .expect("read")
        .expect("its agent record");
    for i in 0..count {
        let name = format!("unit-converter-{i:05}");
        let mut v = version.clone();
        v.agent = name.clone();
        let mut a = agent.clone();
        a.name = name.clone();
        store
            .put(Tree::Versions, &format!("{name}@1.0.0"), &v)
            .expect("write");
        store.put(Tree::Agents, &name, &a).expect("write");
    }
    store.close().await.expect("close");
    drop(store);
}

async fn timed(request: reqwest::RequestBuilder, needle: &str) -> Duration {
    let started = Instant::now();
    let response = request.send().await.expect("request");
    let status = response.status();
    let body = response.text().await.expect("body");
    let elapsed = started.elapsed();
    assert!(
        status.is_success() && body.contains(needle),
        "{status}: {needle} not in {}",
        &body[..body.len().min(400)]
    );
    elapsed
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let listings = env("PAGES_LISTINGS", 10_000);
    let calls = env("PAGES_CALLS", 300);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let host = Host::start(dir.path()).await;
    let provider = host.org("provider").await;
    host.publish(&provider, "unit-converter").await;
    host.stop().await;
    fill(dir.path(), listings).await;
    let started = Instant::now();
    let host = Host::start_with(test_config(dir.path())).await;
    let (_, health) = host.get("/healthz", None).await;
    println!(
        "restart with {} capabilities listed: {:?} ({}); resident {:.1} MB",
        health["capabilities"],
        started.elapsed(),
        health["index"],
        resident_mb()
    );
    let http = reqwest::Client::new();
    let url = host.url.clone();
    // The original listing: the copies have no attestation report of their own.
    let id = "unit-converter.convert".to_string();
    let need = "convert kilometres to miles";
    type Pair = (
        &'static str,
        Box<dyn Fn() -> (reqwest::RequestBuilder, &'static str)>,
    );
    let rows: Vec<(Pair, Pair)> = vec![
        (
            (
                "page: catalog, first page",
                Box::new({
                    let (h, u) = (http.clone(), url.clone());
                    move || (h.get(format!("{u}/")), "capabilities listed")
                }),
            ),
            (
                "json: /v1/capabilities?limit=10",
                Box::new({
                    let (h, u) = (http.clone(), url.clone());
                    move || {
                        (
                            h.get(format!("{u}/v1/capabilities?offset=0&limit=10")),
                            "\"pinned_id\"",
                        )
                    }
                }),
            ),
        ),
        (
            (
                "page: catalog, ranked for a need",
                Box::new({
                    let (h, u) = (http.clone(), url.clone());
                    move || {
                        (
                            h.get(format!("{u}/?q=convert+kilometres+to+miles")),
                            "Ranked by how well",
                        )
                    }
                }),
            ),
            (
                "json: POST /v1/discover (10)",
                Box::new({
                    let (h, u) = (http.clone(), url.clone());
                    move || {
                        (
                            h.post(format!("{u}/v1/discover"))
                                .json(&json!({"need": need, "limit": 10})),
                            "\"score\"",
                        )
                    }
                }),
            ),
        ),
        (
            (
                "page: capability",
                Box::new({
                    let (h, u, id) = (http.clone(), url.clone(), id.clone());
                    move || (h.get(format!("{u}/capabilities/{id}")), "Signature valid")
                }),
            ),
            (
                "json: /v1/capabilities/{id}",
                Box::new({
                    let (h, u, id) = (http.clone(), url.clone(), id.clone());
                    move || (h.get(format!("{u}/v1/capabilities/{id}")), "\"pinned_id\"")
                }),
            ),
        ),
    ];
    println!(
        "{:<36} {:>7} {:>12} {:>12}",
        "request", "calls", "p50", "p99"
    );
    for ((page_label, page), (json_label, json)) in &rows {
        for _ in 0..20 {
            let (r, n) = page();
            timed(r, n).await;
            let (r, n) = json();
            timed(r, n).await;
        }
        let (mut p, mut j) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
        for _ in 0..calls {
            let (r, n) = page();
            p.push(timed(r, n).await);
            let (r, n) = json();
            j.push(timed(r, n).await);
        }
        p.sort();
        j.sort();
        for (label, latencies) in [(page_label, &p), (json_label, &j)] {
            println!(
                "{:<36} {:>7} {:>12?} {:>12?}",
                label,
                latencies.len(),
                percentile(latencies, 0.5),
                percentile(latencies, 0.99)
            );
        }
    }
    println!("resident after the requests: {:.1} MB", resident_mb());
    host.stop().await;
}
