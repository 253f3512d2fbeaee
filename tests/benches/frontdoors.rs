//! The MCP front door's cost over REST: `tools/call` of a free, trivial
//! capability (`unit-converter.convert`) via `/mcp` (Streamable HTTP,
//! stateless 2026-07-28 revision, JSON answer) next to
//! `POST /v1/capabilities/{id}/invoke`, over real HTTP on loopback, at 1 and
//! 16 concurrent clients, the two paths interleaved round by round in one run.
//! Both authenticate the API key, validate the input and output schemas,
//! meter fuel and record the call with a signed receipt.
//!
//! Run: `cargo bench -p mercato-tests --bench frontdoors`
//! (`FRONTDOOR_CALLS=2000` sets the calls per path, round and concurrency).

use futures::StreamExt;
use mercato_tests::{Host, component, manifest, test_config};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Rounds per path; each path's latencies are pooled over its rounds.
const ROUNDS: usize = 3;

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Path {
    Rest,
    Mcp,
}

/// One call by `path`, asserting it succeeded; its latency.
async fn call(http: &reqwest::Client, url: &str, key: &str, path: Path, n: usize) -> Duration {
    let input = json!({ "value": n % 1000, "from": "km", "to": "m" });
    let started = Instant::now();
    let body: Value = match path {
        Path::Rest => http
            .post(format!(
                "{url}/v1/capabilities/unit-converter.convert/invoke"
            ))
            .bearer_auth(key)
            .json(&json!({ "input": input })),
        Path::Mcp => http
            .post(format!("{url}/mcp"))
            .bearer_auth(key)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "unit-converter__convert")
            .json(&json!({
                "jsonrpc": "2.0", "id": n, "method": "tools/call",
                "params": {
                    "name": "unit-converter__convert",
                    "arguments": input,
                    "_meta": {
                        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                        "io.modelcontextprotocol/clientCapabilities": {},
                    },
                },
            })),
    }
    .send()
    .await
    .expect("request")
    .json()
    .await
    .expect("JSON answer");
    let elapsed = started.elapsed();
    let ok = match path {
        Path::Rest => body["output"]["unit"] == "m",
        Path::Mcp => {
            body["result"]["structuredContent"]["unit"] == "m" && body["result"]["isError"] == false
        }
    };
    assert!(ok, "{path:?}: {body}");
    elapsed
}

async fn run(
    http: &reqwest::Client,
    url: &str,
    key: &str,
    path: Path,
    calls: usize,
    clients: usize,
) -> Vec<Duration> {
    futures::stream::iter(0..calls)
        .map(|n| call(http, url, key, path, n))
        .buffer_unordered(clients)
        .collect()
        .await
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let calls: usize = std::env::var("FRONTDOOR_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let mut config = test_config(dir.path());
    config.requests_in_flight_max = 4_096;
    let host = Host::start_with(config).await;
    let provider = host.org("provider").await;
    // The converter's listed rate limit (600 a minute) would throttle a
    // load test: the same component, listed without one.
    let unthrottled = manifest("unit-converter")
        .replace("rate_limit_per_minute = 600", "rate_limit_per_minute = 0");
    let (status, body) = host
        .upload(&provider, component("unit-converter"), unthrottled)
        .await;
    assert!(status.is_success(), "{body}");
    let consumer = host.org("consumer").await;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .expect("client");
    let (url, key) = (host.url.clone(), consumer.api_key.clone());
    for path in [Path::Rest, Path::Mcp] {
        run(&http, &url, &key, path, 300, 4).await;
    }
    println!(
        "{:<28} {:>8} {:>10} {:>12} {:>12}",
        "tools/call, free capability", "clients", "calls", "p50", "p99"
    );
    for clients in [1, 16] {
        let mut rest = Vec::new();
        let mut mcp = Vec::new();
        for _ in 0..ROUNDS {
            rest.extend(run(&http, &url, &key, Path::Rest, calls, clients).await);
            mcp.extend(run(&http, &url, &key, Path::Mcp, calls, clients).await);
        }
        rest.sort();
        mcp.sort();
        for (label, latencies) in [("REST invoke", &rest), ("MCP /mcp", &mcp)] {
            println!(
                "{:<28} {:>8} {:>10} {:>12?} {:>12?}",
                label,
                clients,
                latencies.len(),
                percentile(latencies, 0.5),
                percentile(latencies, 0.99)
            );
        }
        let added = percentile(&mcp, 0.5).as_secs_f64() - percentile(&rest, 0.5).as_secs_f64();
        println!(
            "{:<28} {:>8} {:>10} {:>11.1}µs",
            "MCP added, p50",
            clients,
            "",
            added * 1e6
        );
    }
    host.stop().await;
}
