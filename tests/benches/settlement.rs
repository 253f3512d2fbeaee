//! Settlement overhead: settled (paid) invocations against free ones over
//! real HTTP on loopback, at 1 and 64 concurrent callers, next to the disk's
//! own sync latency measured in the same run.
//!
//! Run: `cargo bench -p mercato-tests --bench settlement`
//! (`SETTLEMENT_CALLS=4000` sets the calls per measurement). Each row runs on
//! the embedded store and then, where PostgreSQL's server binaries are
//! installed, on a PostgreSQL cluster of the bench's own on the same disk
//! (`SETTLEMENT_STORES=sled` or `=postgres` runs one). `postgres2` and
//! `postgres3` run two and three replicas (hosts) on one database, every
//! measurement's calls spread over them in turn, the first replica's
//! in-process rows only.

use futures::StreamExt;
use mercato_tests::postgres::Postgres;
use mercato_tests::{Host, Org, test_config};
use serde_json::json;
use std::io::Write;
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// fdatasync latency of a 4 KiB append in `dir`, 200 times.
fn disk_sync(dir: &std::path::Path) -> (Duration, Duration) {
    let mut file = std::fs::File::create(dir.join("sync-probe")).expect("probe");
    let block = vec![7u8; 4096];
    let mut times = Vec::with_capacity(200);
    for _ in 0..200 {
        let started = Instant::now();
        file.write_all(&block).expect("write");
        file.sync_data().expect("fdatasync");
        times.push(started.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

struct Run {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

async fn run(
    hosts: &[Host],
    org: &Org,
    id: &str,
    input: serde_json::Value,
    calls: usize,
    concurrency: usize,
) -> Run {
    let started = Instant::now();
    let mut latencies: Vec<Duration> = futures::stream::iter(0..calls)
        .map(|n| {
            let input = input.clone();
            let host = &hosts[n % hosts.len()];
            async move {
                let t = Instant::now();
                let (status, body) = host.invoke(&org.api_key, id, input, Some(100_000)).await;
                assert!(status.is_success(), "{body}");
                t.elapsed()
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let elapsed = started.elapsed();
    latencies.sort();
    Run {
        per_second: calls as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let calls: usize = std::env::var("SETTLEMENT_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4_000);
    let stores = std::env::var("SETTLEMENT_STORES")
        .unwrap_or_else(|_| "sled,postgres,postgres2,postgres3".into());
    for store in stores.split(',') {
        // The data directory on the same disk as the build (not a tmpfs /tmp).
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
        let mut config = test_config(dir.path());
        let replicas = match store {
            "postgres2" => 2,
            "postgres3" => 3,
            _ => 1,
        };
        let cluster = match store {
            "sled" => None,
            "postgres" | "postgres2" | "postgres3" => {
                let Some(cluster) =
                    Postgres::start_in(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")))
                else {
                    continue;
                };
                let url = cluster.database();
                config.database_url = Some(mercato_host::config::DatabaseUrl(url));
                Some(cluster)
            }
            other => panic!("unknown store {other} (sled, postgres, postgres2, postgres3)"),
        };
        println!("== store: {store}");
        bench(config, dir.path(), calls, replicas).await;
        drop(cluster);
    }
}

async fn bench(
    mut config: mercato_host::config::Config,
    dir: &std::path::Path,
    calls: usize,
    replicas: usize,
) {
    config.sandbox.deadline_ms = 5_000;
    config.requests_in_flight_max = 4_096;
    let host = Host::start_with(config.clone()).await;
    let mut others = Vec::new();
    for n in 1..replicas {
        let mut config = config.clone();
        config.data_dir = dir.join(format!("replica-{n}"));
        others.push(Host::start_with(config).await);
    }
    let provider = host.org("provider").await;
    // Listed without their rate limits (600 a minute), which would
    // throttle a load test.
    host.publish_unthrottled(&provider, "pii-redactor").await;
    host.publish_unthrottled(&provider, "unit-converter").await;
    let consumer = host.org("consumer").await;
    host.deposit(&consumer, 1_000_000_000_000).await;
    let mut hosts = vec![host];
    hosts.extend(others);
    // Every replica lists both (they follow the first's change feed).
    for replica in &hosts {
        for id in ["pii-redactor.detect", "unit-converter.convert"] {
            let started = Instant::now();
            loop {
                let (listed, _) = replica.get(&format!("/v1/capabilities/{id}"), None).await;
                if listed.is_success() {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "{id} never listed"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    // Warm both paths.
    let paid = ("pii-redactor.detect", json!({ "text": "mail a@b.io" }));
    let free = (
        "unit-converter.convert",
        json!({ "value": 1, "from": "km", "to": "m" }),
    );
    for (id, input) in [&paid, &free] {
        run(&hosts, &consumer, id, input.clone(), 200, 8).await;
    }
    let (sync_p50, sync_p99) = disk_sync(dir);
    println!("disk fdatasync (4 KiB append): p50 {sync_p50:?}  p99 {sync_p99:?}");
    println!(
        "{:<44} {:>10} {:>12} {:>12}",
        "calls", "per second", "p50", "p99"
    );
    for concurrency in [1, 64] {
        for (label, (id, input)) in [
            ("free (no money moves)", &free),
            ("settled (hold, capture, journal sync)", &paid),
        ] {
            let n = if concurrency == 1 { calls / 4 } else { calls };
            let r = run(&hosts, &consumer, id, input.clone(), n, concurrency).await;
            println!(
                "{:<44} {:>10.0} {:>12?} {:>12?}",
                format!("{label}, {concurrency} callers"),
                r.per_second,
                r.p50,
                r.p99
            );
        }
    }
    // In process (no HTTP): the market's own path, where the settled call's
    // extra cost is the hold, the capture and the journal's sync.
    let host = &hosts[0];
    let market = host.server().market().clone();
    let org = market
        .authenticate(&consumer.api_key)
        .expect("store")
        .expect("the consumer");
    println!(
        "{:<44} {:>10} {:>12} {:>12}",
        "in process, 1 caller", "per second", "p50", "p99"
    );
    for (label, (id, input)) in [("free", &free), ("settled", &paid)] {
        let n = calls / 4;
        let mut latencies = Vec::with_capacity(n);
        let started = Instant::now();
        for _ in 0..n {
            let request = mercato_host::market::InvokeRequest {
                capability_id: id.to_string(),
                input: input.clone(),
                max_price_micros: Some(100_000),
                contract_id: None,
                approval_id: None,
                cancel: None,
            };
            let t = Instant::now();
            market.invoke(&org, request, None).await.expect("invoke");
            latencies.push(t.elapsed());
        }
        let elapsed = started.elapsed();
        latencies.sort();
        println!(
            "{:<44} {:>10.0} {:>12?} {:>12?}",
            label,
            n as f64 / elapsed.as_secs_f64(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
    }
    let (sync_p50, sync_p99) = disk_sync(dir);
    println!("disk fdatasync again (after the runs): p50 {sync_p50:?}  p99 {sync_p99:?}");

    let (status, audit) = host
        .get("/v1/admin/ledger", Some(mercato_tests::ADMIN_TOKEN))
        .await;
    assert!(status.is_success() && audit["problem"].is_null(), "{audit}");
    println!("journal entries: {}", audit["journal_entries"]);
    for host in hosts {
        host.stop().await;
    }
}
