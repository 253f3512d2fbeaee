//! One idempotency rule through every front door: a call retried under the
//! same key (REST `Idempotency-Key`, MCP `_meta` `mercato/idempotency_key`,
//! A2A `messageId`) is answered once, charged once, and replayed after; the
//! same key with another request is refused. The key space is shared, so a
//! retry through another door is the same call.

use mercato_host::mcp::tool_name;
use mercato_tests::{Host, Org, STARTING_BALANCE_MICROS, test_config};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SUMMARIZE: &str = "summarizer.summarize";

fn input(text: &str) -> Value {
    json!({ "text": text, "sentences": 1 })
}

async fn market() -> (tempfile::TempDir, Host, Org) {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start_with(test_config(dir.path())).await;
    let provider = host.org("provider").await;
    host.publish(&provider, "summarizer").await;
    let consumer = host.org("consumer").await;
    (dir, host, consumer)
}

async fn spent(host: &Host, org: &Org) -> u64 {
    let balance = host.balance(org).await;
    assert_eq!(balance["pending_micros"], 0, "{balance}");
    STARTING_BALANCE_MICROS - balance["available_micros"].as_u64().expect("available")
}

/// A stateless MCP `tools/call` of the summarizer with `_meta` `meta`.
async fn mcp_call(host: &Host, org: &Org, arguments: Value, meta: Value) -> Value {
    let name = tool_name(SUMMARIZE).expect("tool name");
    let mut meta = meta;
    meta["io.modelcontextprotocol/protocolVersion"] = json!("2026-07-28");
    meta["io.modelcontextprotocol/clientCapabilities"] = json!({});
    let response = host
        .http
        .post(format!("{}/mcp", host.url))
        .bearer_auth(&org.api_key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", &name)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": name, "arguments": arguments, "_meta": meta}}))
        .send()
        .await
        .expect("tools/call");
    assert_eq!(response.status(), StatusCode::OK);
    mercato_tests::jsonrpc_answer(&response.text().await.expect("body"))
}

#[tokio::test]
async fn an_mcp_call_with_a_key_is_charged_once_and_replayed_through_any_door() {
    let (_dir, host, consumer) = market().await;
    let text = "Keys make retries safe. Every call has a price. Prices come from fuel.";
    let meta = json!({"mercato/idempotency_key": "mcp-1", "mercato/max_price_micros": 100_000});
    let first = mcp_call(&host, &consumer, input(text), meta.clone()).await;
    let settlement = &first["result"]["_meta"]["mercato/settlement"];
    let tx = settlement["transaction_id"].as_str().expect("transaction");
    let charged = settlement["charged_micros"].as_u64().expect("charged");
    assert!(charged > 0, "{first}");
    assert!(first["result"]["_meta"]["mercato/idempotent_replay"].is_null());

    let again = mcp_call(&host, &consumer, input(text), meta.clone()).await;
    assert_eq!(
        again["result"]["_meta"]["mercato/settlement"]["transaction_id"],
        tx
    );
    assert_eq!(again["result"]["_meta"]["mercato/idempotent_replay"], true);
    assert_eq!(
        again["result"]["structuredContent"],
        first["result"]["structuredContent"]
    );

    // The same call through REST under the same key: the same answer.
    let (status, rest) = host
        .http
        .post(format!("{}/v1/capabilities/{SUMMARIZE}/invoke", host.url))
        .bearer_auth(&consumer.api_key)
        .header("idempotency-key", "mcp-1")
        .json(&json!({"input": input(text), "max_price_micros": 100_000}))
        .send()
        .await
        .map(|r| (r.status(), r))
        .expect("REST");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rest.headers()["idempotent-replay"], "true");
    let rest: Value = rest.json().await.expect("JSON");
    assert_eq!(rest["transaction_id"], tx);
    assert_eq!(spent(&host, &consumer).await, charged, "charged once");

    // The key with other arguments is refused, and nothing runs.
    let other = mcp_call(&host, &consumer, input("Another text. Entirely."), meta).await;
    assert_eq!(other["result"]["isError"], true, "{other}");
    assert_eq!(
        other["result"]["_meta"]["mercato/error"]["error"]["code"], "idempotency_conflict",
        "{other}"
    );
    // A key that is not a string is a protocol error, never an unkeyed call.
    let bad = mcp_call(
        &host,
        &consumer,
        input(text),
        json!({"mercato/idempotency_key": 7}),
    )
    .await;
    assert_eq!(bad["error"]["code"], -32602, "{bad}");
    assert_eq!(spent(&host, &consumer).await, charged);
    host.stop().await;
}

async fn a2a_send(host: &Host, org: &Org, message_id: &str, text: &str) -> Value {
    let send = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {
        "message": {"messageId": message_id, "role": "ROLE_USER", "parts": [{"data": {
            "capability_id": SUMMARIZE, "input": input(text), "max_price_micros": 100_000,
        }}]},
    }});
    let (status, body) = host.post("/a2a", Some(&org.api_key), send).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["result"]["task"].clone()
}

#[tokio::test]
async fn an_a2a_message_sent_again_is_answered_once() {
    let (_dir, host, consumer) = market().await;
    let text = "Messages are unique. Every call has a price. Prices come from fuel.";
    let first = a2a_send(&host, &consumer, "msg-1", text).await;
    assert_eq!(first["status"]["state"], "TASK_STATE_COMPLETED", "{first}");
    let settlement = &first["metadata"]["mercato/settlement"];
    let charged = settlement["charged_micros"].as_u64().expect("charged");
    assert!(charged > 0);

    let again = a2a_send(&host, &consumer, "msg-1", text).await;
    assert_eq!(again["status"]["state"], "TASK_STATE_COMPLETED", "{again}");
    assert_eq!(
        again["metadata"]["mercato/settlement"]["transaction_id"],
        settlement["transaction_id"]
    );
    assert_eq!(again["metadata"]["mercato/idempotent_replay"], true);
    assert_eq!(again["artifacts"], first["artifacts"]);
    assert_eq!(spent(&host, &consumer).await, charged, "charged once");

    // The same messageId with another message: refused, nothing charged.
    let other = a2a_send(
        &host,
        &consumer,
        "msg-1",
        "Something else. Quite different.",
    )
    .await;
    assert_eq!(other["status"]["state"], "TASK_STATE_REJECTED", "{other}");
    assert_eq!(
        other["metadata"]["mercato/error"]["error"]["code"],
        "idempotency_conflict"
    );
    // A new message is a new call.
    let fresh = a2a_send(&host, &consumer, "msg-2", text).await;
    assert_ne!(
        fresh["metadata"]["mercato/settlement"]["transaction_id"],
        settlement["transaction_id"]
    );
    assert!(spent(&host, &consumer).await > charged);
    host.stop().await;
}
