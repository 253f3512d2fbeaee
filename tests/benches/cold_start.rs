//! Cold start: from `mercato serve` on a data directory holding 50 published
//! components to the first successful invocation, with the artifact cache
//! (the normal case) and, as the peer, after the cache files are dropped so
//! every component is recompiled.
//!
//! Run: `cargo bench -p mercato-tests --bench cold_start`
//! (needs `target/release/mercato`: `cargo build --release -p mercato-host`).

use mercato_tests::{Host, component, manifest};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const AGENTS: usize = 50;

/// The unit converter as version `2.<n/10>.<n%10>`: the version string lives
/// in the data segment, so a same-length swap gives 50 distinct, valid
/// components (50 versions, each compiled and loaded on its own).
fn version(n: usize) -> (Vec<u8>, String) {
    let mut wasm = component("unit-converter");
    let version = format!("2.{}.{}", n / 10, n % 10);
    let needle = b"1.0.0";
    let at = wasm
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("version in data");
    wasm[at..at + needle.len()].copy_from_slice(version.as_bytes());
    (wasm, version)
}

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn first_invoke(binary: &str, dir: &std::path::Path, key: &str, recompile: bool) -> Duration {
    let port = 18_900;
    let started = Instant::now();
    let mut command = Command::new(binary);
    command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir);
    if recompile {
        command.arg("--recompile");
    }
    let _child = Served(
        command
            .env("MERCATO_ADMIN_TOKEN", "bench")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mercato"),
    );
    let http = reqwest::Client::new();
    let url =
        format!("http://127.0.0.1:{port}/v1/capabilities/unit-converter.convert@2.4.9/invoke");
    let body = serde_json::json!({ "input": { "value": 1, "from": "km", "to": "m" } });
    // Bounded: 30 s of 1 ms polls at most.
    for _ in 0..30_000 {
        let sent = http.post(&url).bearer_auth(key).json(&body).send().await;
        if sent.is_ok_and(|r| r.status().is_success()) {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("no successful invoke within 30 s");
}

#[tokio::main]
async fn main() {
    let binary = std::env::var("MERCATO_BIN").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/release/mercato").into()
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let org = host.org("bench").await;
    let publish_start = Instant::now();
    for n in 0..AGENTS {
        let (wasm, name) = version(n);
        let terms = manifest("unit-converter");
        let (status, body) = host.upload(&org, wasm, terms).await;
        assert!(status.is_success(), "{name}: {body}");
    }
    let publish = publish_start.elapsed();
    host.stop().await;

    // The peer first: it rewrites the cache, so the warm start after it
    // loads exactly what a normal restart would.
    let cold = first_invoke(&binary, dir.path(), &org.api_key, true).await;
    let warm = first_invoke(&binary, dir.path(), &org.api_key, false).await;
    println!("| cold start, {AGENTS} components | ms |");
    println!("|---|---:|");
    println!(
        "| `mercato serve` to first successful invoke (artifact cache) | {:.0} |",
        warm.as_secs_f64() * 1e3
    );
    println!(
        "| peer: `mercato serve --recompile` (cranelift compiles all {AGENTS}) | {:.0} |",
        cold.as_secs_f64() * 1e3
    );
    println!(
        "| (for reference) publishing the {AGENTS} through the API, in-process dev build | {:.0} |",
        publish.as_secs_f64() * 1e3
    );
}
