//! The hardening suite: what one tenant, one guest or one client does costs
//! nobody else, and money follows one rule through every front door. Each
//! test reproduces an attack against a real host over real HTTP, with
//! bounded loops, and checks the host's answer and the books.

use mercato_tests::{Host, Org, assert_error, test_config};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const CONVERT: &str = "unit-converter.convert";

fn convert_input() -> Value {
    json!({ "value": 1, "from": "km", "to": "m" })
}

/// A host with the unit converter, the summarizer and the misbehaver listed.
async fn market(config: mercato_host::config::Config) -> (Host, Org, Org) {
    let host = Host::start_with(config).await;
    let provider = host.org("provider").await;
    for agent in ["unit-converter", "summarizer", "hostile/misbehaver"] {
        host.publish(&provider, agent).await;
    }
    let consumer = host.org("consumer").await;
    (host, provider, consumer)
}

async fn spent(host: &Host, org: &Org) -> u64 {
    let balance = host.balance(org).await;
    mercato_tests::STARTING_BALANCE_MICROS
        - balance["available_micros"].as_u64().expect("available")
}

/// Calls a front door `CALLS` times over one keep-alive connection and
/// returns how long they took together.
const CALLS: u32 = 40;
/// 40 calls that each waited for a delayed ACK (40 ms) would take 1.6 s;
/// without the stall they take a few milliseconds each, even unoptimised.
const NO_STALL_BOUND: Duration = Duration::from_millis(1_500);

async fn timed<F, Fut>(mut call: F) -> Duration
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = ()>,
{
    call(0).await; // warm: the connection, the caches
    let started = Instant::now();
    for i in 1..=CALLS {
        call(i).await;
    }
    started.elapsed()
}

/// An `initialize` request of the 2025-11-25 revision from client `name`.
fn initialize(id: u32, name: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": name, "version": "1"}}})
}

/// Opens a 2025-11-25 MCP session over HTTP; returns its id.
async fn mcp_session(client: &reqwest::Client, url: &str, key: &str) -> String {
    let response = client
        .post(format!("{url}/mcp"))
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize(1, "hostile-suite"))
        .send()
        .await
        .expect("initialize");
    assert_eq!(response.status(), StatusCode::OK);
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .expect("session id")
        .to_string();
    let _ = response.text().await;
    let response = client
        .post(format!("{url}/mcp"))
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
        .send()
        .await
        .expect("initialized");
    assert!(response.status().is_success(), "{}", response.status());
    session
}

/// A `tools/call` in an MCP session over HTTP; the JSON-RPC answer.
/// An MCP session over HTTP: the client, the host, the key, the session id.
struct Session<'a> {
    client: &'a reqwest::Client,
    url: &'a str,
    key: &'a str,
    id: &'a str,
}

impl<'a> Session<'a> {
    /// `org`'s session `id` on `host`, reached through `client`.
    fn of(client: &'a reqwest::Client, host: &'a Host, org: &'a Org, id: &'a str) -> Self {
        Session {
            client,
            url: &host.url,
            key: &org.api_key,
            id,
        }
    }
}

async fn session_call(
    s: &Session<'_>,
    id: u32,
    name: &str,
    arguments: Value,
    meta: Value,
) -> Value {
    let response = session_post(
        s,
        json!({"jsonrpc": "2.0", "id": id + 10, "method": "tools/call",
            "params": {"name": name, "arguments": arguments, "_meta": meta}}),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    mercato_tests::jsonrpc_answer(&response.text().await.expect("body"))
}

/// A JSON-RPC message posted in an MCP session over HTTP.
async fn session_post(s: &Session<'_>, message: Value) -> reqwest::Response {
    s.client
        .post(format!("{}/mcp", s.url))
        .bearer_auth(s.key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", s.id)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&message)
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn every_front_door_answers_keep_alive_calls_without_a_stall() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, _provider, consumer) = market(test_config(dir.path())).await;
    let key: &str = &consumer.api_key;
    let url: &str = &host.url;
    // One connection, reused for every call of a door.
    let client = &reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .expect("client");

    let rest = timed(|_| async move {
        let response = client
            .post(format!("{url}/v1/capabilities/{CONVERT}/invoke"))
            .bearer_auth(key)
            .json(&json!({ "input": convert_input() }))
            .send()
            .await
            .expect("invoke");
        assert_eq!(response.status(), StatusCode::OK);
        let _ = response.bytes().await;
    })
    .await;

    let stateless = timed(|i| async move {
        let response = client
            .post(format!("{url}/mcp"))
            .bearer_auth(key)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", "unit-converter__convert")
            .json(
                &json!({"jsonrpc": "2.0", "id": i, "method": "tools/call", "params": {
                "name": "unit-converter__convert", "arguments": convert_input(),
                "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                          "io.modelcontextprotocol/clientCapabilities": {}}}}),
            )
            .send()
            .await
            .expect("tools/call");
        assert_eq!(response.status(), StatusCode::OK);
        let _ = response.bytes().await;
    })
    .await;

    let id = &mcp_session(client, url, key).await;
    let session = &Session {
        client,
        url,
        key,
        id,
    };
    let in_session = timed(|i| async move {
        let answer = session_call(
            session,
            i,
            "unit-converter__convert",
            convert_input(),
            json!({}),
        )
        .await;
        assert_eq!(answer["result"]["isError"], false, "{answer}");
    })
    .await;

    let a2a = timed(|i| async move {
        let response = client
            .post(format!("{url}/a2a"))
            .bearer_auth(key)
            .header("a2a-version", "1.0")
            .json(
                &json!({"jsonrpc": "2.0", "id": i, "method": "SendMessage", "params": {
                "message": {"messageId": format!("m{i}"), "role": "ROLE_USER", "parts": [
                    {"data": {"capability_id": CONVERT, "input": convert_input()}}]}}}),
            )
            .send()
            .await
            .expect("SendMessage");
        assert_eq!(response.status(), StatusCode::OK);
        let _ = response.bytes().await;
    })
    .await;

    let stdio = stdio_bridge_calls(url, key).await;

    for (door, took) in [
        ("REST", rest),
        ("MCP stateless", stateless),
        ("MCP session", in_session),
        ("A2A", a2a),
        ("mcp-stdio", stdio),
    ] {
        assert!(
            took < NO_STALL_BOUND,
            "{door}: {CALLS} keep-alive calls took {took:?} (a delayed-ACK stall?)"
        );
    }
    host.stop().await;
}

/// `CALLS` session `tools/call`s through `mercato mcp-stdio`; their time.
async fn stdio_bridge_calls(url: &str, key: &str) -> Duration {
    let mut bridge = tokio::process::Command::new(env!("CARGO_BIN_EXE_mercato-under-test"))
        .args(["mcp-stdio", "--server", url, "--api-key", key])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("mcp-stdio");
    let mut stdin = bridge.stdin.take().expect("stdin");
    let mut lines = BufReader::new(bridge.stdout.take().expect("stdout")).lines();
    let mut ask = async |message: Value, answered: bool| -> Option<Value> {
        let mut line = message.to_string();
        line.push('\n');
        stdin.write_all(line.as_bytes()).await.expect("write");
        stdin.flush().await.expect("flush");
        if !answered {
            return None;
        }
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("an answer in time")
            .expect("read")
            .expect("a line");
        Some(serde_json::from_str(&line).expect("JSON-RPC"))
    };
    let init = ask(initialize(0, "hostile-suite"), true)
        .await
        .expect("initialize answer");
    assert_eq!(init["result"]["protocolVersion"], "2025-11-25", "{init}");
    ask(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        false,
    )
    .await;
    let call = |i: u32| {
        json!({"jsonrpc": "2.0", "id": i + 1, "method": "tools/call", "params": {
            "name": "unit-converter__convert", "arguments": convert_input()}})
    };
    let warm = ask(call(0), true).await.expect("answer");
    assert_eq!(warm["result"]["isError"], false, "{warm}");
    let started = Instant::now();
    for i in 1..=CALLS {
        let answer = ask(call(i), true).await.expect("answer");
        assert_eq!(answer["id"], i + 1, "{answer}");
    }
    let took = started.elapsed();
    drop(stdin);
    let _ = tokio::time::timeout(Duration::from_secs(10), bridge.wait()).await;
    took
}

#[tokio::test]
async fn the_session_transport_honours_price_caps_and_refuses_unknown_contracts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, _provider, consumer) = market(test_config(dir.path())).await;
    let client = reqwest::Client::new();
    let session = mcp_session(&client, &host.url, &consumer.api_key).await;
    let text = json!({"text": "Caps hold in sessions. Every call has a price.", "sentences": 1});
    for (i, meta, code) in [
        (1, json!({"mercato/max_price_micros": 1}), "price_too_low"),
        (2, json!({"mercato/contract_id": "ctr_nobody"}), "not_found"),
    ] {
        let in_session = Session {
            client: &client,
            url: &host.url,
            key: &consumer.api_key,
            id: &session,
        };
        let answer =
            session_call(&in_session, i, "summarizer__summarize", text.clone(), meta).await;
        assert_eq!(answer["result"]["isError"], true, "{answer}");
        assert_eq!(
            answer["result"]["_meta"]["mercato/error"]["error"]["code"], code,
            "{answer}"
        );
    }
    assert_eq!(spent(&host, &consumer).await, 0, "nothing was charged");

    // A2A reads the same caps the same way: a contract id that is not a
    // string, or names no contract, is refused, never run uncontracted.
    for (contract, expected) in [(json!(42), -32602), (json!("ctr_nobody"), 0)] {
        let send = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {
            "message": {"messageId": format!("c{expected}"), "role": "ROLE_USER", "parts": [{"data": {
                "capability_id": "summarizer.summarize", "input": text, "contract_id": contract}}]}}});
        let (status, body) = host.post("/a2a", Some(&consumer.api_key), send).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if expected != 0 {
            assert_eq!(body["error"]["code"], expected, "{body}");
        } else {
            let task = &body["result"]["task"];
            assert_eq!(task["status"]["state"], "TASK_STATE_REJECTED", "{body}");
            assert!(body.to_string().contains("not_found"), "{body}");
        }
    }
    assert_eq!(spent(&host, &consumer).await, 0, "nothing was charged");
    host.stop().await;
}

#[tokio::test]
async fn an_approval_survives_a_hold_that_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, _provider, _) = market(test_config(dir.path())).await;
    // A consumer with little money and an approval threshold of 1 micro.
    let consumer = host.org_unverified("thrifty").await;
    host.deposit(&consumer, 1_000).await;
    let (status, body) = host
        .put_budget(&consumer, json!({"approval_above_micros": 1}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let input =
        json!({"text": "Approvals are spent once. Every call has a price.", "sentences": 1});
    let cap = 200_000;
    let (status, body) = host
        .invoke(
            &consumer.api_key,
            "summarizer.summarize",
            input.clone(),
            Some(cap),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYMENT_REQUIRED,
        "approval_required",
    );
    let approval_id = body["error"]["details"]["approval_id"]
        .as_str()
        .expect("approval id")
        .to_string();
    let (status, approver) = host
        .post(
            &format!("/v1/orgs/{}/approvers", consumer.org_id),
            Some(&consumer.api_key),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{approver}");
    let token = approver["approver_token"].as_str().expect("token");
    let (status, body) = host
        .post(
            &format!("/v1/approvals/{approval_id}"),
            Some(token),
            json!({"decision": "approve"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let call = json!({"input": input, "max_price_micros": cap, "approval_id": approval_id});
    let path = "/v1/capabilities/summarizer.summarize/invoke";
    let (status, body) = host.post(path, Some(&consumer.api_key), call.clone()).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYMENT_REQUIRED,
        "insufficient_funds",
    );
    // Funded, the same approval still covers the same call.
    host.deposit(&consumer, 10_000_000).await;
    let (status, body) = host.post(path, Some(&consumer.api_key), call.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // And only once.
    let (status, body) = host.post(path, Some(&consumer.api_key), call).await;
    assert_error(status, &body, StatusCode::CONFLICT, "approval_not_granted");
    host.stop().await;
}

/// Reads an SSE body to its end; its events as (name, data).
fn sse_events(text: &str) -> Vec<(String, String)> {
    let mut events = Vec::new();
    let mut name = String::new();
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("event:") {
            name = n.trim().to_string();
        } else if let Some(data) = line.strip_prefix("data:") {
            events.push((name.clone(), data.trim().to_string()));
        }
    }
    events
}

#[tokio::test]
async fn a_keyed_streamed_call_is_charged_once_and_replayed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, _provider, consumer) = market(test_config(dir.path())).await;
    let body = json!({"input": {"text": "Streams are keyed too. Every call has a price. Prices come from fuel.", "sentences": 1},
        "max_price_micros": 100_000});
    let stream = || {
        host.http
            .post(format!(
                "{}/v1/capabilities/summarizer.summarize/invoke",
                host.url
            ))
            .bearer_auth(&consumer.api_key)
            .header("accept", "text/event-stream")
            .header("idempotency-key", "stream-1")
            .json(&body)
    };
    let first = stream().send().await.expect("stream");
    assert_eq!(first.status(), StatusCode::OK);
    let events = sse_events(&first.text().await.expect("events"));
    let (name, result) = events.last().expect("a result");
    assert_eq!(name, "result", "{events:?}");
    let result: Value = serde_json::from_str(result).expect("JSON");
    let charged = result["charged_micros"].as_u64().expect("charged");
    assert!(charged > 0);

    let again = stream().send().await.expect("stream");
    assert_eq!(again.headers()["idempotent-replay"], "true");
    let events = sse_events(&again.text().await.expect("events"));
    let (name, replayed) = events.last().expect("a result");
    assert_eq!(name, "result");
    let replayed: Value = serde_json::from_str(replayed).expect("JSON");
    assert_eq!(replayed["transaction_id"], result["transaction_id"]);
    // The same key answers a JSON retry too: one call, one charge.
    let (status, json_retry) = {
        let response = host
            .http
            .post(format!(
                "{}/v1/capabilities/summarizer.summarize/invoke",
                host.url
            ))
            .bearer_auth(&consumer.api_key)
            .header("idempotency-key", "stream-1")
            .json(&body)
            .send()
            .await
            .expect("retry");
        (
            response.status(),
            response.json::<Value>().await.expect("JSON"),
        )
    };
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json_retry["transaction_id"], result["transaction_id"]);
    assert_eq!(spent(&host, &consumer).await, charged, "charged once");
    host.stop().await;
}

#[tokio::test]
async fn a_client_that_leaves_never_leaves_its_key_in_progress() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, _provider, consumer) = market(test_config(dir.path())).await;
    let body = json!({"input": {"ms": 400}});
    let url = format!("{}/v1/capabilities/misbehaver.nap/invoke", host.url);
    // The client gives up long before the call ends.
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(50))
        .build()
        .expect("client");
    for (i, accept) in ["application/json", "text/event-stream"].iter().enumerate() {
        let key = format!("leaver-{i}");
        let gone = impatient
            .post(&url)
            .bearer_auth(&consumer.api_key)
            .header("accept", *accept)
            .header("idempotency-key", &key)
            .json(&body)
            .send()
            .await;
        if let Ok(response) = gone {
            // SSE answers its head at once; leave before the result.
            drop(response);
        }
        // The keyed call runs to its end; then the retry gets its answer.
        let mut answer = None;
        for _ in 0..100 {
            let response = host
                .http
                .post(&url)
                .bearer_auth(&consumer.api_key)
                .header("idempotency-key", &key)
                .json(&body)
                .send()
                .await
                .expect("retry");
            if response.status() == StatusCode::CONFLICT {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            let replay = response
                .headers()
                .get("idempotent-replay")
                .is_some_and(|v| v == "true");
            answer = Some((response.status(), replay, response.json::<Value>().await));
            break;
        }
        let (status, replay, body) = answer.expect("the key is released within 5 s");
        assert_eq!(status, StatusCode::OK, "{accept}: {body:?}");
        assert!(replay, "{accept}: the first run's answer is replayed");
        assert_eq!(body.expect("JSON")["output"]["n"], 400);
    }
    host.stop().await;
}

#[tokio::test]
async fn one_tenants_flood_leaves_the_others_their_share() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    config.sandbox.concurrent_calls_max = 8;
    config.sandbox.queue_wait_ms = 300;
    config.calls_per_org_max = Some(2);
    let (host, provider, victim) = market(config).await;
    let attacker = host.org("attacker").await;
    let _ = provider;
    // 32 hour-long sleeps at once, each stopped by the 1 s deadline.
    let flood: Vec<_> = (0..32)
        .map(|_| {
            let http = host.http.clone();
            let url = format!("{}/v1/capabilities/misbehaver.sleep/invoke", host.url);
            let key = attacker.api_key.clone();
            tokio::spawn(async move {
                http.post(url)
                    .bearer_auth(key)
                    .json(&json!({"input": {}}))
                    .send()
                    .await
                    .map(|r| r.status())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut ok = 0;
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let (status, body) = host
            .invoke(&victim.api_key, CONVERT, convert_input(), None)
            .await;
        latencies.push(started.elapsed());
        if status == StatusCode::OK {
            ok += 1;
        } else {
            assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "overloaded");
        }
    }
    latencies.sort();
    // Before fair shares the victim's successes took a median of 1.9 s.
    assert!(
        latencies[latencies.len() / 2] < Duration::from_millis(500),
        "the victim's median latency during the flood: {:?}",
        latencies[latencies.len() / 2]
    );
    let mut refused = 0;
    for call in flood {
        if call.await.expect("task").expect("answer") == StatusCode::SERVICE_UNAVAILABLE {
            refused += 1;
        }
    }
    assert!(ok >= 18, "the victim kept {ok}/20 calls during the flood");
    assert!(refused > 0, "the flood was held to its own share");
    let (status, body) = host
        .invoke(&attacker.api_key, "misbehaver.sleep", json!({}), None)
        .await;
    assert_error(
        status,
        &body,
        StatusCode::GATEWAY_TIMEOUT,
        "deadline_exceeded",
    );
    host.stop().await;
}

#[tokio::test]
async fn a_guests_error_message_is_capped_and_said_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, _provider, consumer) = market(test_config(dir.path())).await;
    let response = host
        .http
        .post(format!(
            "{}/v1/capabilities/misbehaver.shout/invoke",
            host.url
        ))
        .bearer_auth(&consumer.api_key)
        .header("idempotency-key", "shout")
        .json(&json!({"input": {}}))
        .send()
        .await
        .expect("invoke");
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let text = response.text().await.expect("body");
    // 4 KiB of quotes, escaped: 8 KiB and some.
    assert!(text.len() < 16 * 1024, "a {} byte error", text.len());
    let body: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(body["error"]["code"], "capability_failed", "{body}");
    assert_eq!(body["error"]["details"]["kind"], "failed");
    assert!(body["error"]["details"].get("reason").is_none());
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.ends_with(&"\"".repeat(4_096)),
        "the guest's words, cut"
    );
    // The replay stores no more than that either.
    let (status, replay) = host
        .post(
            "/v1/capabilities/misbehaver.shout/invoke",
            Some(&consumer.api_key),
            json!({"input": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{replay}");
    assert_eq!(replay["error"]["message"], body["error"]["message"]);
    host.stop().await;
}

#[tokio::test]
async fn slow_and_idle_connections_are_capped_and_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    config.connections_per_client_max = 16;
    config.header_read_timeout_ms = 500;
    let host = Host::start_with(config).await;
    let addr = host.server().addr();
    // A slowloris from 127.0.0.2: headers that never end, more connections
    // than its share.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..40 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind("127.0.0.2:0".parse().expect("address"))
            .expect("bind 127.0.0.2");
        let mut stream = socket.connect(addr).await.expect("connect");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("write");
        held.push(stream);
    }
    // Past its share, a connection is closed at once.
    for stream in &mut held[16..] {
        let mut byte = [0u8; 1];
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await {
            Ok(Ok(0)) | Ok(Err(_)) => refused += 1,
            other => panic!("a connection over the cap stayed open: {other:?}"),
        }
    }
    assert_eq!(refused, 24);
    // Meanwhile everyone else is served.
    let (status, _) = host.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    // The unfinished heads are cut after the header-read timeout.
    for stream in &mut held[..16] {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
            .await
            .expect("closed by the host");
        assert!(read.is_ok() || rest.is_empty());
    }
    // An idle keep-alive connection is closed too.
    let mut idle = tokio::net::TcpStream::connect(addr).await.expect("connect");
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut answer))
        .await
        .expect("the idle connection is closed");
    assert!(read.is_ok());
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
    host.stop().await;
}

#[tokio::test]
async fn small_things_users_see() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, _provider, consumer) = market(test_config(dir.path())).await;
    // `bearer` in lower case is the same scheme.
    let response = host
        .http
        .get(format!("{}/v1/accounts/me", host.url))
        .header("authorization", format!("bearer {}", consumer.api_key))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    // Not-found messages name what was looked for, and echo ids bounded.
    let long = "x".repeat(5_000);
    for (path, named) in [
        (format!("/v1/negotiations/{long}"), "no negotiation"),
        (format!("/v1/contracts/{long}"), "no contract"),
    ] {
        let (status, body) = host.get(&path, Some(&consumer.api_key)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.starts_with(named), "{message}");
        assert!(message.len() < 400, "{} bytes", message.len());
    }
    let (status, body) = host
        .post(
            "/v1/transactions/tx_nobody/rating",
            Some(&consumer.api_key),
            json!({"score": 5}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        body["error"]["message"],
        "no transaction `tx_nobody` of yours"
    );
    let (status, body) = host
        .post(
            "/v1/capabilities/unit-converter.convert/invoke",
            Some(&consumer.api_key),
            json!({"input": convert_input(), "contract_id": "ctr_nobody"}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        body["error"]["message"],
        "no contract `ctr_nobody` of yours"
    );
    // The data directory is its owner's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(dir.path()), 0o700);
    for entry in std::fs::read_dir(dir.path()).expect("data dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    host.stop().await;
}

#[tokio::test]
async fn an_mcp_session_answers_only_its_own_organisation_and_each_has_a_share() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, provider, consumer) = market(test_config(dir.path())).await;
    let client = reqwest::Client::new();
    let id = mcp_session(&client, &host.url, &consumer.api_key).await;
    // Another organisation that learnt the id can neither use nor close it.
    let intruder = provider;
    let stolen = client
        .post(format!("{}/mcp", host.url))
        .bearer_auth(&intruder.api_key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", &id)
        .header("mcp-protocol-version", "2025-11-25")
        .json(&json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
            "params": {"name": "unit-converter__convert", "arguments": convert_input()}}))
        .send()
        .await
        .expect("request");
    assert_eq!(stolen.status(), StatusCode::NOT_FOUND);
    let closed = client
        .delete(format!("{}/mcp", host.url))
        .bearer_auth(&intruder.api_key)
        .header("mcp-session-id", &id)
        .send()
        .await
        .expect("request");
    assert_eq!(closed.status(), StatusCode::NOT_FOUND);
    let mine = Session::of(&client, &host, &consumer, &id);
    let answer = session_call(
        &mine,
        6,
        "unit-converter__convert",
        convert_input(),
        json!({}),
    )
    .await;
    assert_eq!(answer["result"]["isError"], false, "{answer}");

    // One organisation's sessions are capped; the next initialize is a 503
    // with Retry-After, never a 500, and others still get theirs.
    let flooder = host.org("flooder").await;
    for _ in 0..mercato_host::mcp::SESSIONS_PER_ORG_MAX {
        mcp_session(&client, &host.url, &flooder.api_key).await;
    }
    let refused = client
        .post(format!("{}/mcp", host.url))
        .bearer_auth(&flooder.api_key)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize(1, "flooder"))
        .send()
        .await
        .expect("initialize");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(refused.headers()["retry-after"], "5");
    mcp_session(&client, &host.url, &consumer.api_key).await;
    host.stop().await;
}

/// A session closed while one of its calls runs: the call is answered
/// first (here the sleeper's deadline error), then the session is gone.
/// Before, the close ended rmcp's session at once and the call's stream
/// ended with no answer.
#[tokio::test]
async fn a_call_in_flight_when_its_session_closes_is_answered_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, _provider, consumer) = market(test_config(dir.path())).await;
    let client = reqwest::Client::new();
    let id = mcp_session(&client, &host.url, &consumer.api_key).await;
    let mine = Session::of(&client, &host, &consumer, &id);
    // The sleeper runs until the 1 s deadline; the close comes meanwhile.
    let call = session_call(&mine, 1, "misbehaver__sleep", json!({}), json!({}));
    let close = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        client
            .delete(format!("{}/mcp", host.url))
            .bearer_auth(&consumer.api_key)
            .header("mcp-session-id", &id)
            .header("mcp-protocol-version", "2025-11-25")
            .send()
            .await
            .expect("close")
            .status()
    };
    let (answer, closed) = tokio::join!(call, close);
    assert!(closed.is_success(), "{closed}");
    assert_eq!(answer["id"], 11, "{answer}");
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    assert_eq!(
        answer["result"]["_meta"]["mercato/error"]["error"]["code"], "deadline_exceeded",
        "{answer}"
    );
    // Closed: every later request in it is a 404.
    let after = session_post(
        &mine,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    assert_eq!(after.status(), StatusCode::NOT_FOUND);
    host.stop().await;
}

/// A `tools/call` in a session without a progress token is answered by the
/// fast path (as JSON, not through rmcp's session worker) with the answer
/// rmcp gives, and the session's `notifications/cancelled` still ends it.
#[tokio::test]
async fn a_session_call_takes_the_fast_path_answers_as_rmcp_and_can_be_cancelled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, _provider, consumer) = market(test_config(dir.path())).await;
    let client = reqwest::Client::new();
    let id = mcp_session(&client, &host.url, &consumer.api_key).await;
    let mine = Session::of(&client, &host, &consumer, &id);
    let fast_calls = "mercato_mcp_fast_calls_total";
    let before = host.metric(fast_calls).await;
    let fast = session_call(
        &mine,
        1,
        "unit-converter__convert",
        convert_input(),
        json!({}),
    )
    .await;
    assert_eq!(host.metric(fast_calls).await, before + 1.0);
    let progress = json!({"progressToken": "p1"});
    let rmcp = session_call(
        &mine,
        2,
        "unit-converter__convert",
        convert_input(),
        progress,
    )
    .await;
    assert_eq!(
        host.metric(fast_calls).await,
        before + 1.0,
        "a progress token goes to rmcp"
    );
    let keys = |v: &Value| -> Vec<String> {
        v.as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(keys(&fast), keys(&rmcp), "{fast}\n{rmcp}");
    assert_eq!(
        keys(&fast["result"]),
        keys(&rmcp["result"]),
        "{fast}\n{rmcp}"
    );
    for field in ["structuredContent", "content", "isError"] {
        assert_eq!(fast["result"][field], rmcp["result"][field], "{field}");
    }
    assert_eq!(
        (fast["id"].clone(), rmcp["id"].clone()),
        (json!(11), json!(12))
    );

    // The sleeper runs until the 1 s deadline; the session cancels it first.
    let call = session_call(&mine, 3, "misbehaver__sleep", json!({}), json!({}));
    let cancel = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let cancelled = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
            "params": {"requestId": 13, "reason": "changed my mind"}});
        session_post(&mine, cancelled).await.status()
    };
    let (answer, cancelled) = tokio::join!(call, cancel);
    assert!(cancelled.is_success(), "{cancelled}");
    assert_eq!(answer["id"], 13, "{answer}");
    assert_eq!(
        answer["result"]["_meta"]["mercato/error"]["error"]["code"], "cancelled",
        "{answer}"
    );
    host.stop().await;
}

#[tokio::test]
async fn empty_chunks_are_counted_and_cut_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, _provider, consumer) = market(test_config(dir.path())).await;
    // Each chunk counts at least 64 bytes: 4 MiB of budget is 65,536 empty
    // chunks, then the call is cut off (before: unbounded until the deadline).
    let (status, body) = host
        .invoke(&consumer.api_key, "misbehaver.drip", json!({}), None)
        .await;
    assert_error(status, &body, StatusCode::BAD_GATEWAY, "output_too_large");
    assert_eq!(body["error"]["details"]["charged_micros"], 0, "{body}");
    let tx = body["error"]["details"]["transaction_id"]
        .as_str()
        .expect("transaction");
    let (_, record) = host
        .get(&format!("/v1/transactions/{tx}"), Some(&consumer.api_key))
        .await;
    // The host calls were metered: 65,536 of them at 1,000 fuel each at least.
    assert!(
        record["fuel_used"]
            .as_u64()
            .is_some_and(|f| f >= 65_536 * 1_000),
        "{record}"
    );
    host.stop().await;
}

#[tokio::test]
async fn only_a_paid_call_by_another_organisation_can_be_rated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, provider, consumer) = market(test_config(dir.path())).await;
    let rate = async |org: &Org, call: &Value| {
        let tx = call["transaction_id"].as_str().expect("transaction");
        host.post(
            &format!("/v1/transactions/{tx}/rating"),
            Some(&org.api_key),
            json!({"score": 5}),
        )
        .await
    };
    let text = json!({"text": "Ratings cost money. Every call has a price.", "sentences": 1});
    // A provider rating its own capability: refused.
    let (status, own) = host
        .invoke(
            &provider.api_key,
            "summarizer.summarize",
            text.clone(),
            Some(100_000),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{own}");
    let (status, body) = rate(&provider, &own).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "rating_not_allowed");
    // A free call: refused.
    let (_, free) = host
        .invoke(&consumer.api_key, CONVERT, convert_input(), None)
        .await;
    let (status, body) = rate(&consumer, &free).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "rating_not_allowed");
    // A paid call by another organisation: rated once, weighted by its price.
    let (_, paid) = host
        .invoke(
            &consumer.api_key,
            "summarizer.summarize",
            text,
            Some(100_000),
        )
        .await;
    let (status, body) = rate(&consumer, &paid).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["weight_micros"], paid["charged_micros"], "{body}");
    let (_, view) = host
        .get("/v1/capabilities/summarizer.summarize", None)
        .await;
    assert_eq!(view["reputation"]["ratings"], 1, "{view}");
    host.stop().await;
}

#[tokio::test]
async fn a_webhook_never_reaches_a_private_address_or_follows_a_redirect() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A receiver on loopback that answers every delivery with a redirect to
    // a second one; neither may be reached without the operator's leave,
    // and the second never (redirects are not followed).
    let hits = Arc::new(AtomicUsize::new(0));
    // The last delivery's signature header and body.
    let signed = Arc::new(std::sync::Mutex::new(None::<(String, Vec<u8>)>));
    let second = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let second_url = format!("http://{}/inner", second.local_addr().expect("addr"));
    let app = |redirect: Option<String>| {
        let hits = hits.clone();
        let signed = signed.clone();
        axum::Router::new().fallback(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let hits = hits.clone();
                let redirect = redirect.clone();
                let signed = signed.clone();
                async move {
                    let signature = headers
                        .get("mercato-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    *signed.lock().expect("lock") = Some((signature, body.to_vec()));
                    hits.fetch_add(1, Ordering::SeqCst);
                    match redirect {
                        Some(to) => axum::response::Redirect::temporary(&to).into_response(),
                        None => axum::http::StatusCode::NO_CONTENT.into_response(),
                    }
                }
            },
        )
    };
    use axum::response::IntoResponse;
    let first = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = format!("http://{}/hook", first.local_addr().expect("addr"));
    tokio::spawn(axum::serve(first, app(Some(second_url.clone()))).into_future());
    let inner_hits = Arc::new(AtomicUsize::new(0));
    let inner_app = {
        let inner_hits = inner_hits.clone();
        axum::Router::new().fallback(move || {
            let inner_hits = inner_hits.clone();
            async move {
                inner_hits.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::NO_CONTENT
            }
        })
    };
    tokio::spawn(axum::serve(second, inner_app).into_future());

    for allowed in [false, true] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = test_config(dir.path());
        if allowed {
            config.webhook_allowed_hosts = vec!["127.0.0.1".into()];
        }
        let host = Host::start_with(config).await;
        let org = host.org_unverified("hooked").await;
        // An approval threshold files an approval (an event) on the first
        // priced call, even with no money at all.
        let (status, body) = host
            .put_budget(
                &org,
                json!({"approval_above_micros": 1, "webhook_url": hook}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let provider = host.org("provider").await;
        host.publish(&provider, "summarizer").await;
        let before = hits.load(Ordering::SeqCst);
        let (status, body) = host
            .invoke(
                &org.api_key,
                "summarizer.summarize",
                json!({"text": "Hooks are bounded. Every call has a price.", "sentences": 1}),
                Some(100_000),
            )
            .await;
        assert_error(
            status,
            &body,
            StatusCode::PAYMENT_REQUIRED,
            "approval_required",
        );
        if allowed {
            // Delivered to the allowed host, answered with a redirect that is
            // not followed (three attempts, all to the first receiver).
            for _ in 0..200 {
                if hits.load(Ordering::SeqCst) >= before + 3 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            assert_eq!(hits.load(Ordering::SeqCst), before + 3);
            // Each delivery is signed with the organisation's secret.
            let (_, secret) = host
                .get("/v1/accounts/me/webhook-secret", Some(&org.api_key))
                .await;
            let secret = secret["webhook_secret"].as_str().expect("secret");
            assert!(secret.starts_with("whsec_"));
            let (signature, body) = signed.lock().expect("lock").clone().expect("a delivery");
            let at_ms: u64 = signature
                .strip_prefix("t=")
                .and_then(|rest| rest.split(',').next())
                .and_then(|t| t.parse().ok())
                .expect("t=");
            assert_eq!(
                signature,
                mercato_host::market::webhook_signature(secret, at_ms, &body)
            );
            let event: Value = serde_json::from_slice(&body).expect("JSON");
            assert_eq!(event["kind"], "approval_requested");
        } else {
            for _ in 0..200 {
                if host.metric("mercato_webhooks_refused_total").await >= 1.0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            assert_eq!(host.metric("mercato_webhooks_refused_total").await, 1.0);
            assert_eq!(hits.load(Ordering::SeqCst), before, "loopback was reached");
        }
        host.stop().await;
    }
    assert_eq!(
        inner_hits.load(Ordering::SeqCst),
        0,
        "a redirect was followed"
    );
}

#[tokio::test]
async fn anonymous_signup_is_rate_limited_per_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let signup = async |name: &str| host.post("/v1/orgs", None, json!({ "name": name })).await;
    for i in 0..5 {
        let (status, body) = signup(&format!("sybil-{i}")).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = signup("sybil-5").await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(
        body["error"]["details"]["retry_after_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0)
    );
    // The operator is not limited.
    let (status, body) = host
        .post(
            "/v1/orgs",
            Some(mercato_tests::ADMIN_TOKEN),
            json!({ "name": "by-the-operator" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    host.stop().await;

    // Operator-only: anonymous registration is closed.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    config.signup = mercato_host::config::Signup::OperatorOnly;
    let host = Host::start_with(config).await;
    let (status, body) = host
        .post("/v1/orgs", None, json!({ "name": "anyone" }))
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "signup_closed");
    host.stop().await;
}

#[tokio::test]
async fn an_a2a_stream_whose_client_leaves_is_never_drained_for_nobody() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, _provider, consumer) = market(test_config(dir.path())).await;
    // Calls of the dripping guest that ended: cancelled when the client left
    // first, cut off at the chunk budget when the guest got there first.
    let ended = async || {
        host.metrics_text()
            .await
            .lines()
            .filter(|l| {
                l.starts_with("mercato_invocations_total")
                    && (l.contains("\"cancelled\"") || l.contains("\"output_too_large\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    for i in 0..3 {
        let stream = json!({"jsonrpc": "2.0", "id": i, "method": "SendStreamingMessage", "params": {
            "message": {"messageId": format!("drip-{i}"), "role": "ROLE_USER", "parts": [
                {"data": {"capability_id": "misbehaver.drip", "input": {}}}]}}});
        let mut response = host
            .http
            .post(format!("{}/a2a", host.url))
            .bearer_auth(&consumer.api_key)
            .header("a2a-version", "1.0")
            .json(&stream)
            .send()
            .await
            .expect("stream");
        assert_eq!(response.status(), StatusCode::OK);
        // Read the first event, then leave with the guest still emitting.
        let first = response.chunk().await.expect("read").expect("an event");
        assert!(!first.is_empty());
        drop(response);
    }
    // Every call ends (nothing charged) and the host keeps answering.
    let mut seen = 0.0;
    for _ in 0..200 {
        seen = ended().await;
        if seen >= 3.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(seen, 3.0, "each stream's call ended");
    let (status, _) = host.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(spent(&host, &consumer).await, 0);
    host.stop().await;
}

#[tokio::test]
async fn refused_bytes_are_compiled_once_and_every_compilation_counts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let org = host.org("uploader").await;
    let metric = "mercato_component_compilations_total";
    let before = host.metric(metric).await;
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    let mut messages = Vec::new();
    for _ in 0..3 {
        let (status, body) = host
            .upload(
                &org,
                core_module.clone(),
                mercato_tests::manifest("unit-converter"),
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_component");
        messages.push(body["error"]["message"].clone());
    }
    assert!(messages.windows(2).all(|w| w[0] == w[1]), "{messages:?}");
    assert_eq!(
        host.metric(metric).await,
        before + 1.0,
        "a refused compilation counts, and the same bytes are not compiled again"
    );
    host.stop().await;
}

#[tokio::test]
async fn a_huge_random_request_traps_before_the_host_builds_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, _provider, consumer) = market(test_config(dir.path())).await;
    let (status, body) = host
        .invoke(&consumer.api_key, "misbehaver.dice", json!({}), None)
        .await;
    assert_error(status, &body, StatusCode::BAD_GATEWAY, "guest_trapped");
    assert_eq!(body["error"]["details"]["charged_micros"], 0, "{body}");
    let (status, _) = host
        .invoke(&consumer.api_key, CONVERT, convert_input(), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    host.stop().await;
}

#[tokio::test]
async fn an_unverified_unfunded_organisation_creates_little_and_asks_no_approver() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, _provider, _consumer) = market(test_config(dir.path())).await;
    let stranger = host.org_unverified("stranger").await;
    let approvers = format!("/v1/orgs/{}/approvers", stranger.org_id);
    // A burst of stored objects (10 a minute by default), then 429.
    let mut created = 0;
    let mut refused = None;
    for _ in 0..40 {
        let (status, body) = host
            .post(&approvers, Some(&stranger.api_key), json!({}))
            .await;
        if status == StatusCode::CREATED {
            created += 1;
        } else {
            refused = Some((status, body));
            break;
        }
    }
    assert_eq!(created, 10, "a burst of 10, then refused");
    let (status, body) = refused.expect("refused");
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(body["error"]["details"]["retry_after_ms"].as_u64() > Some(0));
    // Keys and negotiations draw on the same share.
    let (status, body) = host
        .http
        .post(format!("{}/v1/capabilities/{CONVERT}/invoke", host.url))
        .bearer_auth(&stranger.api_key)
        .header("idempotency-key", "k1")
        .json(&json!({"input": convert_input()}))
        .send()
        .await
        .map(|r| (r.status(), r))
        .expect("invoke");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(body.headers().get("retry-after").is_some(), "a Retry-After");
    // The same call without a key stores nothing and runs (free capability).
    let (status, _) = host
        .invoke(&stranger.api_key, CONVERT, convert_input(), None)
        .await;
    assert_eq!(status, StatusCode::OK);

    // Approval requests draw on the same share: with it spent, an approval
    // threshold asks no approver, and nothing reaches the feed.
    let (status, body) = host
        .put_budget(&stranger, json!({"approval_above_micros": 1}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = host
        .invoke(
            &stranger.api_key,
            "summarizer.summarize",
            json!({"text": "Empty accounts ask nobody. Twice.", "sentences": 1}),
            Some(10_000),
        )
        .await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let (_, events) = host
        .get("/v1/accounts/me/events", Some(&stranger.api_key))
        .await;
    assert!(
        !events.to_string().contains("approval_requested"),
        "{events}"
    );

    // Funded, it is no longer limited.
    host.deposit(&stranger, 1_000_000).await;
    let (status, body) = host
        .post(&approvers, Some(&stranger.api_key), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    host.stop().await;
}
