//! The agent front doors (`/mcp`, `/a2a`, streamed REST) driven by the
//! official third-party client SDKs, against a real host with real
//! components: the same identity, metering and settlement as REST.

use mercato_tests::{Host, Org, clients};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A host with the unit converter (free), the summarizer (priced, emits
/// chunks) and the misbehaver (hostile) listed, and a funded consumer.
/// The deadline is long so a `sleep` is surely running when a test cancels it.
async fn market(dir: &std::path::Path) -> (Host, Org) {
    let mut config = mercato_tests::test_config(dir);
    config.sandbox.deadline_ms = 60_000;
    let host = Host::start_with(config).await;
    let provider = host.org("provider").await;
    for agent in ["unit-converter", "summarizer", "hostile/misbehaver"] {
        host.publish(&provider, agent).await;
    }
    let consumer = host.org("consumer").await;
    (host, consumer)
}

async fn spent(host: &Host, org: &Org) -> u64 {
    let balance = host.balance(org).await;
    mercato_tests::STARTING_BALANCE_MICROS
        - balance["available_micros"].as_u64().expect("available")
}

/// Checks what the Python MCP client saw, in either protocol revision.
async fn check_python_mcp(host: &Host, consumer: &Org, seen: &Value) {
    let tools: Vec<&str> = seen["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for tool in [
        "discover",
        "negotiate",
        "quote",
        "unit-converter__convert",
        "summarizer__summarize",
        "misbehaver__panic",
    ] {
        assert!(tools.contains(&tool), "{tool} not listed: {tools:?}");
    }
    assert_eq!(
        seen["convert_schema_required"],
        json!(["from", "to", "value"]),
        "{seen}"
    );
    assert_eq!(seen["convert_has_output_schema"], true);

    let convert = &seen["convert"];
    assert_eq!(convert["is_error"], false, "{convert}");
    assert_eq!(convert["structured"]["value"], json!(10000.0), "{convert}");
    let settlement = &convert["meta"]["mercato/settlement"];
    assert_eq!(
        settlement["charged_micros"], 0,
        "a free capability: {convert}"
    );

    // The priced call: progress from `emit`, a charge on the consumer's books.
    let summarize = &seen["summarize"];
    assert_eq!(summarize["is_error"], false, "{summarize}");
    assert_eq!(summarize["structured"]["sentence_count"], 4, "{summarize}");
    let progress = summarize["progress"].as_array().expect("progress");
    assert!(
        progress.len() >= 2,
        "each emitted chunk is a progress notification: {summarize}"
    );
    assert!(
        progress.iter().all(|p| p["message"].is_string()),
        "{summarize}"
    );
    let settlement = &summarize["meta"]["mercato/settlement"];
    let charged = settlement["charged_micros"].as_u64().expect("charged");
    assert!(charged >= 5_000, "{settlement}");
    let tx = settlement["transaction_id"]
        .as_str()
        .expect("transaction id");
    let (status, record) = host
        .get(&format!("/v1/transactions/{tx}"), Some(&consumer.api_key))
        .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["consumer_org_id"], consumer.org_id.as_str());
    assert_eq!(record["charged_micros"], charged);
    assert_eq!(record["settlement"], "escrowed");

    // A cap in the arguments' `_meta` below the price is the consumer's refusal.
    assert_eq!(seen["capped"]["is_error"], true, "{seen}");
    assert_eq!(seen["capped"]["error"]["error"]["code"], "price_too_low");
    // The same in the request's `_meta`, on both transports; a contract that
    // does not exist is an error, never a call without one.
    assert_eq!(seen["capped_request"]["is_error"], true, "{seen}");
    assert_eq!(
        seen["capped_request"]["error"]["error"]["code"], "price_too_low",
        "{seen}"
    );
    assert_eq!(seen["unknown_contract"]["is_error"], true, "{seen}");
    assert_eq!(
        seen["unknown_contract"]["error"]["error"]["code"], "not_found",
        "{seen}"
    );
    // A provider fault is a tool error, not a protocol error, and free.
    assert_eq!(seen["hostile"]["is_error"], true, "{seen}");
    assert_eq!(seen["hostile"]["error"]["error"]["code"], "guest_trapped");
    assert_eq!(
        seen["hostile"]["error"]["error"]["details"]["charged_micros"],
        0
    );
    // Unknown tools and invalid arguments are JSON-RPC errors.
    assert_eq!(seen["unknown_tool"]["code"], -32602, "{seen}");
    assert_eq!(seen["invalid_arguments"]["code"], -32602, "{seen}");

    let results = seen["discover"]["results"]
        .as_array()
        .expect("discover results");
    assert_eq!(results[0]["tool"], "unit-converter__convert", "{results:?}");
    assert!(
        seen["quote"]["capability_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("summarizer.summarize@")),
        "{seen}"
    );
}

#[tokio::test]
async fn the_python_mcp_sdk_lists_and_calls_in_both_protocol_revisions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, consumer) = market(dir.path()).await;
    let url = format!("{}/mcp", host.url);
    let python = clients::python();
    let script = clients::script("mcp_client.py");
    let script = script.to_str().expect("utf-8 path");

    let seen = clients::run(&python, &[script, &url, &consumer.api_key, "auto"]).await;
    assert_eq!(seen["protocol_version"], "2026-07-28", "{seen}");
    check_python_mcp(&host, &consumer, &seen).await;
    let after_modern = spent(&host, &consumer).await;
    assert!(after_modern > 0);

    let seen = clients::run(&python, &[script, &url, &consumer.api_key, "legacy"]).await;
    assert_eq!(seen["protocol_version"], "2025-11-25", "{seen}");
    check_python_mcp(&host, &consumer, &seen).await;
    assert!(
        spent(&host, &consumer).await > after_modern,
        "the legacy run paid too"
    );
    host.stop().await;
}

#[tokio::test]
async fn the_stdio_bridge_serves_a_python_mcp_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, consumer) = market(dir.path()).await;
    let binary = env!("CARGO_BIN_EXE_mercato-under-test");
    let python = clients::python();
    let script = clients::script("mcp_stdio_client.py");
    let script = script.to_str().expect("utf-8 path");
    for (mode, version) in [("auto", "2026-07-28"), ("legacy", "2025-11-25")] {
        let before = spent(&host, &consumer).await;
        let seen = clients::run(
            &python,
            &[script, binary, &host.url, &consumer.api_key, mode],
        )
        .await;
        assert_eq!(seen["protocol_version"], version, "{seen}");
        assert!(
            seen["tools"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("summarizer__summarize"))),
            "{seen}"
        );
        let summarize = &seen["summarize"];
        assert_eq!(summarize["is_error"], false, "{seen}");
        assert_eq!(summarize["structured"]["sentence_count"], 4, "{seen}");
        assert!(
            summarize["progress"]
                .as_array()
                .is_some_and(|p| !p.is_empty()),
            "{seen}"
        );
        let charged = summarize["meta"]["mercato/settlement"]["charged_micros"]
            .as_u64()
            .expect("charged");
        assert!(charged > 0);
        assert_eq!(
            spent(&host, &consumer).await,
            before + charged,
            "{mode}: charged to the key's owner"
        );
        assert_eq!(seen["unknown_tool"]["code"], -32602, "{seen}");
    }
    host.stop().await;
}

#[tokio::test]
async fn the_typescript_mcp_sdk_lists_and_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, consumer) = market(dir.path()).await;
    let (node, script) = clients::node_script("mcp_client.mjs");
    let url = format!("{}/mcp", host.url);
    let seen = clients::run(
        &node,
        &[script.to_str().expect("utf-8"), &url, &consumer.api_key],
    )
    .await;
    let tools = seen["tools"].as_array().expect("tools");
    for tool in [
        "discover",
        "quote",
        "negotiate",
        "unit-converter__convert",
        "summarizer__summarize",
    ] {
        assert!(tools.contains(&json!(tool)), "{tool}: {seen}");
    }
    assert_eq!(seen["convert"]["isError"], false, "{seen}");
    let km = seen["convert"]["structured"]["value"]
        .as_f64()
        .expect("value");
    assert!((km - 1.609344).abs() < 1e-9, "{seen}");
    let summarize = &seen["summarize"];
    assert_eq!(summarize["isError"], false, "{seen}");
    assert!(
        summarize["progress"]
            .as_array()
            .is_some_and(|p| p.len() >= 2),
        "{seen}"
    );
    let charged = summarize["meta"]["mercato/settlement"]["charged_micros"]
        .as_u64()
        .expect("charged");
    assert_eq!(
        spent(&host, &consumer).await,
        charged,
        "only the priced call is charged"
    );
    // Caps in the request's `_meta` on the session transport.
    assert_eq!(seen["capped"]["isError"], true, "{seen}");
    assert_eq!(
        seen["capped"]["error"]["error"]["code"], "price_too_low",
        "{seen}"
    );
    assert_eq!(
        seen["unknown_contract"]["error"]["error"]["code"], "not_found",
        "{seen}"
    );
    assert_eq!(seen["hostile"]["isError"], true, "{seen}");
    assert_eq!(
        seen["hostile"]["error"]["error"]["code"], "guest_trapped",
        "{seen}"
    );
    assert_eq!(seen["unknown_tool"]["code"], -32602, "{seen}");
    host.stop().await;
}

#[tokio::test]
async fn the_a2a_sdk_sends_gets_cancels_streams_and_negotiates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, consumer) = market(dir.path()).await;
    let provider = host.org("redactor-provider").await;
    host.publish(&provider, "pii-redactor").await;
    let python = clients::python();
    let script = clients::script("a2a_client.py");
    let seen = clients::run(
        &python,
        &[
            script.to_str().expect("utf-8"),
            &host.url,
            &consumer.api_key,
        ],
    )
    .await;

    // The card: the marketplace as an agent, capabilities as skills, bearer keys.
    let card = &seen["card"];
    assert_eq!(
        card["supportedInterfaces"][0]["protocolVersion"], "1.0",
        "{card}"
    );
    assert_eq!(
        card["supportedInterfaces"][0]["url"],
        format!("{}/a2a", host.url)
    );
    assert_eq!(
        card["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"],
        "Bearer"
    );
    assert_eq!(card["capabilities"]["streaming"], true);
    let skills: Vec<&str> = card["skills"]
        .as_array()
        .expect("skills")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert!(
        skills.contains(&"unit-converter.convert") && skills.contains(&"pii-redactor.redact"),
        "{skills:?}"
    );
    assert_eq!(
        seen["capability_card"]["supportedInterfaces"][0]["url"],
        format!("{}/a2a/agents/unit-converter.convert", host.url)
    );

    // SendMessage → a completed task with the output as a data artifact.
    let task = &seen["convert"]
        .as_array()
        .expect("events")
        .last()
        .expect("an event")["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{task}");
    assert_eq!(
        task["artifacts"][0]["parts"][0]["data"]["value"], 2000.0,
        "{task}"
    );
    assert_eq!(seen["get_task"]["status"]["state"], "TASK_STATE_COMPLETED");
    assert_eq!(seen["get_task"]["id"], task["id"]);

    let hostile = &seen["hostile"]["task"];
    assert_eq!(hostile["status"]["state"], "TASK_STATE_FAILED", "{hostile}");
    assert_eq!(
        hostile["metadata"]["mercato/error"]["error"]["code"],
        "guest_trapped"
    );

    let found = &seen["discover"]["task"]["artifacts"][0]["parts"][0]["data"]["results"];
    assert_eq!(
        found[0]["capability_id"], "unit-converter.convert",
        "{found}"
    );

    // Negotiation over A2A, then a call under the contract.
    let negotiated = &seen["negotiate"]["task"]["artifacts"][0]["parts"][0]["data"];
    assert_eq!(
        negotiated["negotiation"]["status"], "accepted",
        "{negotiated}"
    );
    let contract_id = seen["under_contract"]["contract_id"]
        .as_str()
        .expect("contract id");
    let under = &seen["under_contract"]["task"]["task"];
    assert_eq!(under["status"]["state"], "TASK_STATE_COMPLETED", "{under}");
    assert_eq!(
        under["metadata"]["mercato/settlement"]["contract_id"], contract_id,
        "{under}"
    );

    assert_eq!(
        seen["unknown_capability"]["type"], "InvalidParamsError",
        "{seen}"
    );

    // Cancel a running task, then again: the spec's TaskNotCancelableError.
    assert_eq!(
        seen["sleeping"]["status"]["state"], "TASK_STATE_WORKING",
        "{seen}"
    );
    assert_eq!(
        seen["cancel"]["status"]["state"], "TASK_STATE_CANCELED",
        "{seen}"
    );
    assert_eq!(
        seen["cancel_again"]["type"], "TaskNotCancelableError",
        "{seen}"
    );
    assert_eq!(
        seen["cancelled_task"]["status"]["state"], "TASK_STATE_CANCELED",
        "{seen}"
    );
    assert_eq!(seen["missing_task"]["type"], "TaskNotFoundError", "{seen}");

    // Streaming: the task, chunks from `emit`, the output, the final status.
    let events = seen["stream"].as_array().expect("stream events");
    assert!(events[0].get("task").is_some(), "{events:?}");
    let chunks = events
        .iter()
        .filter(|e| e["artifactUpdate"]["artifact"]["artifactId"] == "stream")
        .count();
    assert!(chunks >= 2, "{events:?}");
    let last = events.last().expect("events");
    assert_eq!(
        last["statusUpdate"]["status"]["state"], "TASK_STATE_COMPLETED",
        "{last}"
    );
    // Protobuf carries numbers as doubles.
    let charged = last["statusUpdate"]["metadata"]["mercato/settlement"]["charged_micros"]
        .as_f64()
        .expect("charged") as u64;
    assert!(charged >= 5_000);

    // The v0.3 method names and shapes.
    let v03 = &seen["v03"]["result"];
    assert_eq!(v03["kind"], "task", "{v03}");
    assert_eq!(v03["status"]["state"], "completed");
    assert_eq!(v03["artifacts"][0]["parts"][0]["kind"], "data");
    assert_eq!(seen["bad_version"]["error"]["code"], -32009, "{seen}");
    assert_eq!(seen["anonymous_status"], 401);

    // Every paid call is on the consumer's books, nothing for the cancelled one.
    let (status, me) = host.get("/v1/accounts/me", Some(&consumer.api_key)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(spent(&host, &consumer).await >= charged, "{me}");
    host.stop().await;
}

/// The `_meta` every 2026-07-28 request carries.
fn modern_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    })
}

/// A raw stateless (2026-07-28) MCP request with the headers the revision
/// wants (`Mcp-Name` when `name` is given).
fn raw_mcp(
    host: &Host,
    key: Option<&str>,
    method: &str,
    name: Option<&str>,
    params: Value,
) -> reqwest::RequestBuilder {
    let mut request = host
        .http
        .post(format!("{}/mcp", host.url))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method)
        .json(&json!({"jsonrpc": "2.0", "id": 9, "method": method, "params": params}));
    if let Some(name) = name {
        request = request.header("mcp-name", name);
    }
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request
}

/// A raw `tools/list`, with the given `Host` header.
async fn raw_tools_list(host: &Host, key: Option<&str>, host_header: &str) -> (StatusCode, String) {
    let response = raw_mcp(
        host,
        key,
        "tools/list",
        None,
        json!({"_meta": modern_meta()}),
    )
    .header("host", host_header)
    .send()
    .await
    .expect("request");
    let status = response.status();
    (status, response.text().await.unwrap_or_default())
}

#[tokio::test]
async fn the_front_doors_check_keys_hosts_and_publish_cards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = mercato_tests::test_config(dir.path());
    config.allowed_hosts = vec!["market.example".into()];
    config.public_url = Some("https://market.example".into());
    let host = Host::start_with(config).await;
    let provider = host.org("provider").await;
    host.publish(&provider, "unit-converter").await;
    let consumer = host.org("consumer").await;

    // Keys first: no key or an unknown key is a 401 that names the scheme.
    for key in [None, Some("mk_not-a-key")] {
        let (status, body) = raw_tools_list(&host, key, "market.example").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let response = host
            .http
            .post(format!("{}/a2a", host.url))
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "GetTask", "params": {"id": "x"}}))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        // The scheme, and where this door's OAuth metadata is (the
        // configured public URL names it).
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer realm=\"mercato\", resource_metadata=\"https://market.example/.well-known/\
             oauth-protected-resource/a2a\", scope=\"discover invoke\""
        );
    }
    // Then the configured hosts: a configured name passes, loopback does not.
    let (status, body) = raw_tools_list(&host, Some(&consumer.api_key), "market.example").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("unit-converter__convert"), "{body}");
    let (status, body) = raw_tools_list(&host, Some(&consumer.api_key), "127.0.0.1").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    // Cards are public and name the configured public URL.
    let (status, card) = host.get("/.well-known/agent-card.json", None).await;
    assert_eq!(status, StatusCode::OK, "{card}");
    assert_eq!(
        card["supportedInterfaces"][0]["url"],
        "https://market.example/a2a"
    );
    assert_eq!(card["skills"][0]["id"], "unit-converter.convert", "{card}");
    let (status, _) = host
        .get(
            "/a2a/agents/nobody.nothing/.well-known/agent-card.json",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A JSON-RPC request that is not one.
    let (status, body) = host
        .post(
            "/a2a",
            Some(&consumer.api_key),
            json!({"method": "GetTask"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["error"]["code"], -32600, "{body}");
    let (_, body) = host
        .post(
            "/a2a",
            Some(&consumer.api_key),
            json!({"jsonrpc": "2.0", "id": 2, "method": "Nope"}),
        )
        .await;
    assert_eq!(body["error"]["code"], -32601, "{body}");
    host.stop().await;
}

/// The consumer's held money once `done` says so (polled, at most 2 s).
async fn pending_until(host: &Host, consumer: &Org, done: impl Fn(u64) -> bool) -> u64 {
    let mut held = 0;
    for _ in 0..100 {
        held = host.balance(consumer).await["pending_micros"]
            .as_u64()
            .expect("pending");
        if done(held) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    held
}

#[tokio::test]
async fn a_cancelled_call_is_neither_charged_nor_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A long deadline, and the misbehaver's hour-long `sleep` priced, so the
    // call is surely running (and holding money) when it is cancelled.
    let mut config = mercato_tests::test_config(dir.path());
    config.sandbox.deadline_ms = 60_000;
    let host = Host::start_with(config).await;
    let provider = host.org("provider").await;
    let manifest = mercato_tests::manifest("hostile/misbehaver").replace(
        "[capabilities.sleep]\nprice_micros = 0",
        "[capabilities.sleep]\nprice_micros = 700",
    );
    assert!(manifest.contains("price_micros = 700"));
    let (status, body) = host
        .upload(&provider, mercato_tests::component("misbehaver"), manifest)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let consumer = host.org("consumer").await;
    let send = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {
        "message": {"messageId": "m", "role": "ROLE_USER", "parts": [{"data": {
            "capability_id": "misbehaver.sleep", "input": {}, "max_price_micros": 100000,
        }}]},
        "configuration": {"returnImmediately": true},
    }});
    let (status, body) = host.post("/a2a", Some(&consumer.api_key), send).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let task = &body["result"]["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_WORKING", "{body}");
    let held = pending_until(&host, &consumer, |held| held > 0).await;
    assert!(held > 0, "the call's maximum is held while it runs");
    // A subscriber to the running task sees it now, and its end.
    let subscription = host
        .http
        .post(format!("{}/a2a", host.url))
        .bearer_auth(&consumer.api_key)
        .json(
            &json!({"jsonrpc": "2.0", "id": 3, "method": "SubscribeToTask",
            "params": {"id": task["id"]}}),
        )
        .send()
        .await
        .expect("subscribe");
    let events = tokio::spawn(subscription.text());
    let cancel =
        json!({"jsonrpc": "2.0", "id": 2, "method": "CancelTask", "params": {"id": task["id"]}});
    let (_, body) = host
        .post("/a2a", Some(&consumer.api_key), cancel.clone())
        .await;
    assert_eq!(
        body["result"]["status"]["state"], "TASK_STATE_CANCELED",
        "{body}"
    );
    let (_, body) = host.post("/a2a", Some(&consumer.api_key), cancel).await;
    assert_eq!(body["error"]["code"], -32002, "{body}");
    let events = tokio::time::timeout(std::time::Duration::from_secs(10), events)
        .await
        .expect("the subscription ends with the task")
        .expect("joined")
        .expect("events");
    let events: Vec<Value> = events
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[0]["result"]["task"]["status"]["state"],
        "TASK_STATE_WORKING"
    );
    assert_eq!(
        events[1]["result"]["statusUpdate"]["status"]["state"],
        "TASK_STATE_CANCELED"
    );
    // The hold is voided as the sandbox future is dropped.
    assert_eq!(pending_until(&host, &consumer, |held| held == 0).await, 0);
    assert_eq!(spent(&host, &consumer).await, 0);
    let metrics = host.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("mercato_invocations_total{")
                && l.contains("outcome=\"cancelled\"")
                && l.ends_with(" 1")),
        "{metrics}"
    );
    host.stop().await;
}

#[tokio::test]
async fn a2a_v03_clients_stream_get_and_cancel_with_the_old_names_and_shapes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, consumer) = market(dir.path()).await;
    let message = |id: &str, data: Value| json!({"kind": "message", "messageId": id, "role": "user", "parts": [{"kind": "data", "data": data}]});
    let stream = json!({"jsonrpc": "2.0", "id": "s", "method": "message/stream", "params": {
        "message": message("m1", json!({"capability_id": "summarizer.summarize", "max_price_micros": 100000,
            "input": {"text": "Old clients stream. Every call has a price. The sky is blue. Prices come from fuel.", "sentences": 2}})),
    }});
    let response = host
        .http
        .post(format!("{}/a2a", host.url))
        .bearer_auth(&consumer.api_key)
        .header("a2a-version", "0.3")
        .json(&stream)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/event-stream"))
    );
    let text = response.text().await.expect("body");
    let events: Vec<Value> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).expect("JSON event"))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| e["result"]["kind"].as_str())
        .collect();
    assert_eq!(kinds.first(), Some(&"task"), "{text}");
    assert!(
        kinds.iter().filter(|k| **k == "artifact-update").count() >= 3,
        "chunks and the output: {text}"
    );
    let last = &events.last().expect("events")["result"];
    assert_eq!(last["kind"], "status-update", "{text}");
    assert_eq!(last["status"]["state"], "completed");
    assert_eq!(last["final"], true);
    let task_id = events[0]["result"]["id"].as_str().expect("task id");

    let get = json!({"jsonrpc": "2.0", "id": 2, "method": "tasks/get", "params": {"id": task_id}});
    let (_, body) = host.post("/a2a", Some(&consumer.api_key), get).await;
    assert_eq!(body["result"]["kind"], "task", "{body}");
    assert_eq!(body["result"]["status"]["state"], "completed");
    assert_eq!(body["result"]["artifacts"][0]["parts"][0]["kind"], "data");
    // Another organisation's key does not see the task.
    let other = host.org("other").await;
    let get = json!({"jsonrpc": "2.0", "id": 3, "method": "tasks/get", "params": {"id": task_id}});
    let (_, body) = host.post("/a2a", Some(&other.api_key), get).await;
    assert_eq!(body["error"]["code"], -32001, "{body}");
    let cancel =
        json!({"jsonrpc": "2.0", "id": 4, "method": "tasks/cancel", "params": {"id": task_id}});
    let (_, body) = host.post("/a2a", Some(&consumer.api_key), cancel).await;
    assert_eq!(body["error"]["code"], -32002, "a finished task: {body}");
    host.stop().await;
}

/// A raw stateless `tools/call`; `progress` adds a progress token, which
/// sends it down rmcp's path instead of the fast one.
async fn raw_tools_call(
    host: &Host,
    key: &str,
    name: &str,
    arguments: Value,
    progress: bool,
) -> Value {
    let mut meta = modern_meta();
    if progress {
        meta["progressToken"] = json!("p1");
    }
    let params = json!({"name": name, "arguments": arguments, "_meta": meta});
    let response = raw_mcp(host, Some(key), "tools/call", Some(name), params)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("application/json"))
    );
    response.json().await.expect("JSON-RPC response")
}

fn keys(value: &Value) -> Vec<&String> {
    value
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_fast_path_answers_exactly_as_rmcp_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, consumer) = market(dir.path()).await;
    let key = &consumer.api_key;
    let input = json!({"value": 3, "from": "km", "to": "m"});
    let fast = raw_tools_call(&host, key, "unit-converter__convert", input.clone(), false).await;
    assert_eq!(host.metric("mercato_mcp_fast_calls_total").await, 1.0);
    let rmcp = raw_tools_call(&host, key, "unit-converter__convert", input, true).await;
    assert_eq!(
        host.metric("mercato_mcp_fast_calls_total").await,
        1.0,
        "a progress token goes to rmcp"
    );
    assert_eq!(keys(&fast), keys(&rmcp), "{fast}\n{rmcp}");
    assert_eq!(
        keys(&fast["result"]),
        keys(&rmcp["result"]),
        "{fast}\n{rmcp}"
    );
    for field in ["structuredContent", "content", "isError", "resultType"] {
        assert_eq!(fast["result"][field], rmcp["result"][field], "{field}");
    }
    assert_eq!(fast["id"], 9);
    let settlement = |v: &Value| v["result"]["_meta"]["mercato/settlement"].clone();
    assert_eq!(keys(&settlement(&fast)), keys(&settlement(&rmcp)));
    assert_ne!(
        settlement(&fast)["transaction_id"],
        settlement(&rmcp)["transaction_id"]
    );
    // Errors too: an unknown tool, arguments that break the schema, a tool error.
    for (name, arguments) in [
        ("nobody__nothing", json!({})),
        ("unit-converter__convert", json!({"value": "three"})),
        ("misbehaver__panic", json!({})),
    ] {
        let fast = raw_tools_call(&host, key, name, arguments.clone(), false).await;
        let rmcp = raw_tools_call(&host, key, name, arguments, true).await;
        assert_eq!(
            fast["error"]["code"], rmcp["error"]["code"],
            "{name}: {fast}\n{rmcp}"
        );
        assert_eq!(fast["error"]["message"], rmcp["error"]["message"], "{name}");
        assert_eq!(
            fast["result"]["isError"], rmcp["result"]["isError"],
            "{name}"
        );
        assert_eq!(
            fast["result"]["_meta"]["mercato/error"]["error"]["code"],
            rmcp["result"]["_meta"]["mercato/error"]["error"]["code"],
            "{name}"
        );
    }
    host.stop().await;
}

/// `SendMessage` with `message` as `key`'s organisation; the JSON-RPC answer.
async fn send_message(host: &Host, key: &str, message: Value) -> Value {
    let request =
        json!({"jsonrpc": "2.0", "id": 7, "method": "SendMessage", "params": {"message": message}});
    host.post("/a2a", Some(key), request).await.1
}

/// What the A2A conformance kit asks of the JSON-RPC door beyond the SDK's
/// happy paths: ids that are not ids, the card beside the endpoint, a
/// message naming a task (continued when it is the caller's, not found
/// otherwise), and a generic data part.
#[tokio::test]
async fn a2a_refuses_bad_ids_continues_own_tasks_and_reads_generic_data_as_a_need() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let provider = host.org("provider").await;
    host.publish(&provider, "unit-converter").await;
    let consumer = host.org("consumer").await;
    let key = consumer.api_key.as_str();

    // An id that is an object, an array or a boolean makes the request invalid.
    for id in [json!({"a": 1}), json!([1]), json!(true)] {
        let (status, body) = host
            .post(
                "/a2a",
                Some(key),
                json!({"jsonrpc": "2.0", "id": id, "method": "GetTask", "params": {"id": "x"}}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["error"]["code"], -32600, "{body}");
        assert_eq!(body["id"], Value::Null, "{body}");
    }
    // The card is also beside the JSON-RPC endpoint.
    let (status, card) = host.get("/a2a/.well-known/agent-card.json", None).await;
    assert_eq!(status, StatusCode::OK, "{card}");
    let (_, root) = host.get("/.well-known/agent-card.json", None).await;
    assert_eq!(card, root);

    // A task that is not the caller's (or does not exist) is not found; no
    // task is started in its place.
    let body = send_message(
        &host,
        key,
        json!({"messageId": "m1", "role": "ROLE_USER", "taskId": "no-such-task",
                "parts": [{"text": "convert metres to feet"}]}),
    )
    .await;
    assert_eq!(body["error"]["code"], -32001, "{body}");
    // A finished task of the caller's is continued: the same task, run
    // again for the new message, its history grown.
    let body = send_message(
        &host,
        key,
        json!({"messageId": "m2", "role": "ROLE_USER",
                "parts": [{"data": {"capability_id": "unit-converter.convert",
                    "input": {"value": 1, "from": "m", "to": "ft"}}}]}),
    )
    .await;
    let task = body["result"]["task"].clone();
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{body}");
    let body = send_message(
        &host,
        key,
        json!({"messageId": "m3", "role": "ROLE_USER", "taskId": task["id"],
                "contextId": task["contextId"], "parts": [{"text": "and again"}]}),
    )
    .await;
    let continued = &body["result"]["task"];
    assert_eq!(continued["id"], task["id"], "{body}");
    assert_eq!(
        continued["status"]["state"], "TASK_STATE_COMPLETED",
        "{body}"
    );
    let history = continued["history"].as_array().expect("history");
    assert_eq!(history.len(), 2, "{body}");
    // A call's input never stays in the history.
    assert_eq!(
        history[0]["parts"][0]["data"]["mercato/input_withheld"], true,
        "{body}"
    );
    assert!(
        history[0]["parts"][0]["data"].get("input").is_none(),
        "{body}"
    );
    let (_, body) = host
        .post(
            "/a2a",
            Some(key),
            json!({"jsonrpc": "2.0", "id": 8, "method": "GetTask",
                "params": {"id": task["id"], "historyLength": 1}}),
        )
        .await;
    assert_eq!(
        body["result"]["history"].as_array().map(Vec::len),
        Some(1),
        "{body}"
    );
    // Another organisation cannot even learn that the task exists.
    let other = host.org("other").await;
    let body = send_message(
        &host,
        &other.api_key,
        json!({"messageId": "m4", "role": "ROLE_USER", "taskId": task["id"],
                "parts": [{"text": "x"}]}),
    )
    .await;
    assert_eq!(body["error"]["code"], -32001, "{body}");

    // A message without its id or its role is invalid.
    let body = send_message(
        &host,
        key,
        json!({"role": "ROLE_USER", "parts": [{"text": "x"}]}),
    )
    .await;
    assert_eq!(body["error"]["code"], -32602, "{body}");
    let body = send_message(
        &host,
        key,
        json!({"messageId": "no-role", "parts": [{"text": "x"}]}),
    )
    .await;
    assert_eq!(
        body["error"]["code"], -32602,
        "a message has a role: {body}"
    );
    // SubscribeToTask answers as a stream, also to refuse: an unknown task
    // is not found, an ended one is read with GetTask.
    for (subscribed, code) in [
        (json!("no-such-task"), -32001),
        (task["id"].clone(), -32004),
    ] {
        let response = host
            .http
            .post(format!("{}/a2a", host.url))
            .bearer_auth(key)
            .header("accept", "text/event-stream")
            .json(
                &json!({"jsonrpc": "2.0", "id": 9, "method": "SubscribeToTask",
                "params": {"id": subscribed}}),
            )
            .send()
            .await
            .expect("subscribe");
        assert!(
            response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream")),
            "{response:?}"
        );
        let text = response.text().await.expect("events");
        let event: Value = text
            .lines()
            .find_map(|l| l.strip_prefix("data:"))
            .and_then(|d| serde_json::from_str(d.trim()).ok())
            .unwrap_or_else(|| panic!("no event: {text}"));
        assert_eq!(event["error"]["code"], code, "{text}");
        assert_eq!(event["id"], 9, "{text}");
    }
    // A data part that names no capability and no action is a need.
    let body = send_message(
        &host,
        key,
        json!({"messageId": "m5", "role": "ROLE_USER",
                "parts": [{"data": {"need": "convert a length from metres to feet"}}]}),
    )
    .await;
    let task = &body["result"]["task"];
    assert_eq!(task["status"]["state"], "TASK_STATE_COMPLETED", "{body}");
    assert!(
        task.to_string().contains("unit-converter.convert"),
        "the need was discovered for: {body}"
    );
    host.stop().await;
}

/// `ListTasks`: the caller's tasks only, newest first, filtered and paged,
/// with bad parameters refused.
#[tokio::test]
async fn a2a_lists_the_callers_tasks_filtered_and_paged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let provider = host.org("provider").await;
    host.publish(&provider, "unit-converter").await;
    let consumer = host.org("consumer").await;
    let other = host.org("other").await;
    let rpc = |method: &str, params: Value| json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let convert = |n: u64, context: &str| {
        rpc(
            "SendMessage",
            json!({"message": {"messageId": format!("m{n}-{context}"), "role": "ROLE_USER",
                "contextId": context,
                "parts": [{"data": {"capability_id": "unit-converter.convert",
                    "input": {"value": n, "from": "m", "to": "ft"}}}]}}),
        )
    };
    let mut ids = Vec::new();
    for n in 0..5 {
        let context = if n % 2 == 0 { "even" } else { "odd" };
        let (_, body) = host
            .post("/a2a", Some(&consumer.api_key), convert(n, context))
            .await;
        ids.push(
            body["result"]["task"]["id"]
                .as_str()
                .expect("task id")
                .to_string(),
        );
    }
    host.post("/a2a", Some(&other.api_key), convert(9, "theirs"))
        .await;

    let list = |params: Value| {
        let host = &host;
        let key = consumer.api_key.clone();
        async move {
            host.post("/a2a", Some(&key), rpc("ListTasks", params))
                .await
                .1
        }
    };
    let all = list(json!({})).await;
    let result = &all["result"];
    assert_eq!(result["totalSize"], 5, "only the caller's: {all}");
    assert_eq!(result["nextPageToken"], "", "{all}");
    let listed: Vec<&str> = result["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["id"].as_str().expect("id"))
        .collect();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    assert_eq!(listed, newest_first, "{all}");
    assert!(
        result["tasks"][0].get("artifacts").is_none(),
        "artifacts only when asked"
    );

    // Pages of two, following the tokens, cover the same tasks once.
    let mut seen = Vec::new();
    let mut token = json!(null);
    for _ in 0..5 {
        let page = list(json!({"pageSize": 2, "pageToken": token})).await;
        let result = &page["result"];
        let on_page = result["tasks"].as_array().map(Vec::len).unwrap_or(0);
        assert!(on_page <= 2, "{page}");
        assert_eq!(result["pageSize"], on_page, "the page size used: {page}");
        for task in result["tasks"].as_array().expect("tasks") {
            seen.push(task["id"].as_str().expect("id").to_string());
        }
        token = result["nextPageToken"].clone();
        if token == "" {
            break;
        }
    }
    assert_eq!(seen, ids.iter().rev().cloned().collect::<Vec<_>>());

    // Filters.
    let even = list(json!({"contextId": "even", "includeArtifacts": true})).await;
    assert_eq!(even["result"]["totalSize"], 3, "{even}");
    assert!(even["result"]["tasks"][0]["artifacts"].is_array(), "{even}");
    let completed = list(json!({"status": "TASK_STATE_COMPLETED"})).await;
    assert_eq!(completed["result"]["totalSize"], 5, "{completed}");
    let failed = list(json!({"status": "TASK_STATE_FAILED"})).await;
    assert_eq!(failed["result"]["totalSize"], 0, "{failed}");
    let later = list(json!({"statusTimestampAfter": "2999-01-01T00:00:00Z"})).await;
    assert_eq!(later["result"]["totalSize"], 0, "{later}");
    let earlier = list(json!({"statusTimestampAfter": "2000-01-01T00:00:00+02:00"})).await;
    assert_eq!(earlier["result"]["totalSize"], 5, "{earlier}");

    // Bad parameters are invalid params, never a listing.
    for bad in [
        json!({"pageSize": 0}),
        json!({"pageSize": 101}),
        json!({"pageSize": -1}),
        json!({"historyLength": -1}),
        json!({"status": "TASK_STATE_NOPE"}),
        json!({"pageToken": "not-a-token"}),
        json!({"statusTimestampAfter": "yesterday"}),
        json!({"includeArtifacts": "yes"}),
    ] {
        let body = list(bad.clone()).await;
        assert_eq!(body["error"]["code"], -32602, "{bad}: {body}");
    }
    host.stop().await;
}
