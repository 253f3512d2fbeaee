//! Metering under attack: a guest pays in fuel for the host work it asks for
//! (WASI included), a deadline is charged to whoever caused it, and a
//! stream nobody reads holds its own guest, not the host's memory. Real host,
//! real HTTP, real components, bounded loops.

use mercato_host::sandbox::{HOST_CALL_FUEL, RANDOM_WORD_FUEL};
use mercato_tests::{Host, Org, assert_error, test_config};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

async fn market(config: mercato_host::config::Config) -> (Host, Org) {
    let host = Host::start_with(config).await;
    let provider = host.org("provider").await;
    for agent in ["unit-converter", "hostile/misbehaver"] {
        host.publish(&provider, agent).await;
    }
    (host, provider)
}

async fn record(host: &Host, org: &Org, body: &Value) -> Value {
    let tx = body["error"]["details"]["transaction_id"]
        .as_str()
        .or(body["transaction_id"].as_str())
        .unwrap_or_else(|| panic!("no transaction id: {body}"));
    let (status, record) = host
        .get(&format!("/v1/transactions/{tx}"), Some(&org.api_key))
        .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    record
}

#[tokio::test]
async fn wasi_random_is_charged_for_the_work_it_makes_the_host_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, _provider) = market(test_config(dir.path())).await;
    let consumer = host.org("consumer").await;
    let roll = |n: u64, cap: Option<u64>| {
        host.invoke(&consumer.api_key, "misbehaver.roll", json!({ "n": n }), cap)
    };
    let (status, none) = roll(0, None).await;
    assert_eq!(status, StatusCode::OK, "{none}");
    let (status, four) = roll(4, None).await;
    assert_eq!(status, StatusCode::OK, "{four}");
    assert_eq!(four["output"]["n"], 4 * (64 << 10));
    // Each 64 KiB request: one host call, and at least one generator word
    // per four bytes (wasmtime draws one per byte today).
    let per_request = HOST_CALL_FUEL + (64 << 10) / 4 * RANDOM_WORD_FUEL;
    let fuel = |body: &Value| body["fuel_used"].as_u64().expect("fuel used");
    assert!(
        fuel(&four) >= fuel(&none) + 4 * per_request,
        "four draws of 64 KiB cost {} fuel, none {}",
        fuel(&four),
        fuel(&none)
    );
    assert!(four["charged_micros"].as_u64() > none["charged_micros"].as_u64());

    // Drawing without end: the cap's fuel runs out (and is paid for) long
    // before the deadline; before, the host made the bytes for free until it.
    let (status, body) = roll(1 << 40, Some(1_000)).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYMENT_REQUIRED,
        "fuel_exhausted",
    );
    assert_eq!(body["error"]["details"]["charged_micros"], 1_000, "{body}");
    let record = record(&host, &consumer, &body).await;
    assert_eq!(record["fuel_used"], record["fuel_limit"], "{record}");
    assert!(record["duration_ms"].as_u64() < Some(900), "{record}");
    host.stop().await;
}

#[tokio::test]
async fn a_deadline_is_charged_to_whoever_caused_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // A flood of eight spinning calls per core: each gets an eighth of a core.
    let flood = u32::try_from(8 * cores).expect("fits");
    let mut config = test_config(dir.path());
    config.calls_per_org_max = Some(flood);
    config.sandbox.concurrent_calls_max = 2 * flood + 8;
    let (host, _provider) = market(config).await;
    let attacker = host.org("attacker").await;
    host.deposit(&attacker, 10_000_000_000).await;
    let bystander = host.org("bystander").await;

    let spin = |org: &Org| {
        let http = host.http.clone();
        let url = format!("{}/v1/capabilities/misbehaver.spin/invoke", host.url);
        let key = org.api_key.clone();
        tokio::spawn(async move {
            let response = http
                .post(url)
                .bearer_auth(key)
                .json(&json!({"input": {}}))
                .send()
                .await
                .expect("answer");
            let status = response.status();
            (status, response.json::<Value>().await.expect("json"))
        })
    };
    let flooding: Vec<_> = (0..flood).map(|_| spin(&attacker)).collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, body) = spin(&bystander).await.expect("bystander");

    // The bystander's one call starved behind the flood: the host's fault,
    // not charged, not the provider's, to be retried.
    assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    assert_eq!(body["error"]["details"]["charged_micros"], 0, "{body}");
    let voided = record(&host, &bystander, &body).await;
    assert_eq!(voided["settlement"], "voided", "{voided}");
    assert_eq!(voided["outcome"], "overloaded");

    // The flood's calls ran out of time queued behind each other: the
    // attacker's own doing, charged for the fuel each burned.
    let mut charged = 0u64;
    for call in flooding {
        let (status, body) = call.await.expect("flood call");
        assert_error(
            status,
            &body,
            StatusCode::GATEWAY_TIMEOUT,
            "deadline_exceeded",
        );
        let details = &body["error"]["details"];
        let micros = details["charged_micros"].as_u64().expect("charged");
        assert!(micros > 0, "a flooding call went free: {body}");
        charged += micros;
    }
    let balance = host.balance(&attacker).await;
    assert_eq!(balance["pending_micros"], 0, "{balance}");
    assert!(charged > 0);
    host.stop().await;
}

/// Resident memory of this process, in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS")
}

#[tokio::test]
async fn a_stream_nobody_reads_holds_its_guest_not_the_hosts_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    // Room for all 400 MiB the flood emits: only backpressure bounds it.
    config.sandbox.emit_bytes_max = 1 << 30;
    let (host, _provider) = market(config).await;
    let consumer = host.org("consumer").await;
    let before = rss_bytes();
    let mut streams = Vec::new();
    for _ in 0..4 {
        let response = host
            .http
            .post(format!(
                "{}/v1/capabilities/misbehaver.flood/invoke",
                host.url
            ))
            .bearer_auth(&consumer.api_key)
            .header("accept", "text/event-stream")
            .json(&json!({"input": {}}))
            .send()
            .await
            .expect("stream");
        assert_eq!(response.status(), StatusCode::OK);
        // Held, never read.
        streams.push(response);
    }
    // Past the 1 s deadline: each guest waited in `emit` for its reader.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let grown = rss_bytes().saturating_sub(before);
    let (status, _) = host.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    // Unbounded, the host buffered all 4 × 400 MiB; bounded, each stream
    // holds its channel (16 chunks of 1 MiB) and the socket buffers.
    assert!(
        grown < 400 << 20,
        "four unread streams grew the host by {} MiB",
        grown >> 20
    );
    drop(streams);
    host.stop().await;
}

/// Child processes of this test process still running `compile-component`.
fn compilers_running() -> usize {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            let dir = e.path();
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
            // pid (comm) state ppid ...: the parent is the 4th field after the name.
            let parent = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_string));
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            parent.as_deref() == Some(me.as_str())
                && String::from_utf8_lossy(&cmdline).contains("compile-component")
        })
        .count()
}

/// Uploads the converter and expects `component_too_complex`.
async fn refused_as_too_complex(host: &Host, provider: &Org) {
    let (status, body) = host
        .upload(
            provider,
            mercato_tests::component("unit-converter"),
            mercato_tests::manifest("unit-converter"),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "component_too_complex",
    );
}

#[tokio::test]
async fn a_compilation_past_its_budget_is_stopped_and_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    assert!(
        config.compiler_exe.is_some(),
        "the tests compile in a child process"
    );
    config.compile_ms_max = 1;
    let host = Host::start_with(config).await;
    let provider = host.org("provider").await;
    let compilations = "mercato_component_compilations_total";
    refused_as_too_complex(&host, &provider).await;
    assert_eq!(host.metric(compilations).await, 1.0);
    // The compiler was killed, not left to finish on the host's cores.
    let mut left = compilers_running();
    for _ in 0..50 {
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = compilers_running();
    }
    assert_eq!(left, 0, "a compiler outlived its budget");
    // The same bytes are refused again without compiling.
    refused_as_too_complex(&host, &provider).await;
    assert_eq!(host.metric(compilations).await, 1.0);
    // Another component, within a normal budget elsewhere, still publishes
    // here through the child compiler (the other suites all do).
    host.stop().await;
}
