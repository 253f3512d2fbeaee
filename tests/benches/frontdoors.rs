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
use mercato_tests::{Host, test_config};
use serde_json::json;
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
    let body = match path {
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
    .bytes()
    .await
    .expect("body");
    let elapsed = started.elapsed();
    // Checked without parsing, so the client's own JSON work (the MCP answer
    // is larger) does not weigh on the shared cores.
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    let ok = has(br#""unit":"m""#)
        && match path {
            Path::Rest => has(br#""transaction_id""#),
            Path::Mcp => has(br#""isError":false"#) && has(br#""structuredContent""#),
        };
    assert!(ok, "{path:?}: {}", String::from_utf8_lossy(&body));
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
    host.publish_unthrottled(&provider, "unit-converter").await;
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
    if which_wrk() {
        wrk_rows(&url, &key, dir.path()).await;
    } else {
        println!("(wrk not installed: the out-of-process rows are skipped)");
    }
    host.stop().await;
}

fn which_wrk() -> bool {
    std::process::Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok()
}

/// The same two requests from wrk, a separate C process (no JSON parsing),
/// 5 s per row.
async fn wrk_rows(url: &str, key: &str, dir: &std::path::Path) {
    let rest = format!(
        r#"wrk.method = "POST"
wrk.body = '{{"input": {{"value": 26.2, "from": "mi", "to": "km"}}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
"#
    );
    let mcp = format!(
        r#"wrk.method = "POST"
wrk.body = '{{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {{"name": "unit-converter__convert", "arguments": {{"value": 26.2, "from": "mi", "to": "km"}}, "_meta": {{"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {{}}}}}}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
wrk.headers["Mcp-Method"] = "tools/call"
wrk.headers["Mcp-Name"] = "unit-converter__convert"
wrk.headers["Authorization"] = "Bearer {key}"
"#
    );
    let scripts = [
        (
            "REST invoke (wrk)",
            "rest.lua",
            rest,
            "/v1/capabilities/unit-converter.convert/invoke",
        ),
        ("MCP /mcp (wrk)", "mcp.lua", mcp, "/mcp"),
    ];
    println!(
        "{:<28} {:>8} {:>10} {:>12} {:>12}",
        "out of process", "conns", "req/s", "p50", "p99"
    );
    for connections in [1, 16] {
        for (label, file, script, path) in &scripts {
            let script_path = dir.join(file);
            std::fs::write(&script_path, script).expect("lua script");
            let out = tokio::process::Command::new("wrk")
                .args(["-t", if connections == 1 { "1" } else { "2" }])
                .args([
                    "-c",
                    &connections.to_string(),
                    "-d",
                    "5s",
                    "--latency",
                    "-s",
                ])
                .arg(&script_path)
                .arg(format!("{url}{path}"))
                .output()
                .await
                .expect("wrk runs");
            let text = String::from_utf8_lossy(&out.stdout);
            let field = |key: &str, at: usize| {
                text.lines()
                    .find(|l| l.trim_start().starts_with(key))
                    .and_then(|l| l.split_whitespace().nth(at))
                    .unwrap_or("?")
                    .to_string()
            };
            assert!(!text.contains("Non-2xx"), "{label}: {text}");
            println!(
                "{:<28} {:>8} {:>10} {:>12} {:>12}",
                label,
                connections,
                field("Requests/sec", 1),
                field("50%", 1),
                field("99%", 1)
            );
        }
    }
}
