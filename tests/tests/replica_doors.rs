//! The agent front doors across replicas on one PostgreSQL database: an MCP
//! session opened on one replica continues on the others and closes on
//! all of them; an A2A task opened on one is read, listed, followed and
//! cancelled through another. Each test runs its own cluster and three
//! hosts (`mercato_tests::replicas`).

use mercato_tests::replicas::{Replicas, eventually};
use mercato_tests::{Host, jsonrpc_answer};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A request to `/mcp` on `host`, in `session` when given; the status and
/// the JSON-RPC answer (or the body as a string), and the session id the
/// answer names.
async fn mcp(
    host: &Host,
    key: &str,
    session: Option<&str>,
    body: Value,
) -> (StatusCode, Value, Option<String>) {
    let mut request = host
        .http
        .post(format!("{}/mcp", host.url))
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&body);
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status();
    let named = response
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let text = response.text().await.expect("body");
    let answer = if status == StatusCode::OK && !text.is_empty() {
        jsonrpc_answer(&text)
    } else {
        Value::String(text)
    };
    (status, answer, named)
}

async fn close(host: &Host, key: &str, session: &str) -> StatusCode {
    host.http
        .delete(format!("{}/mcp", host.url))
        .bearer_auth(key)
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .expect("an answer")
        .status()
}

fn tools_list(id: u32) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/list"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_session_opened_on_one_replica_continues_on_the_others() {
    let Some(replicas) = Replicas::start().await else {
        return;
    };
    let [a, b, c] = &replicas.hosts[..] else {
        unreachable!()
    };
    let provider = a.org("provider").await;
    a.publish(&provider, "pii-redactor").await;
    let buyer = a.org("buyer").await;
    let key: &str = &buyer.api_key;

    let initialize = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "replica-suite", "version": "1"}}});
    let (status, answer, session) = mcp(a, key, None, initialize).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let session = session.expect("a session id");
    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let (status, _, _) = mcp(a, key, Some(&session), initialized).await;
    assert!(status.is_success(), "{status}");

    // B and C never saw the handshake; each continues the session, and
    // lists the capability published on A once it follows the catalog.
    for (n, replica) in [b, c].into_iter().enumerate() {
        let id = 10 + n as u32;
        eventually("the session lists A's capability elsewhere", || async {
            let (status, answer, _) = mcp(replica, key, Some(&session), tools_list(id)).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            assert_eq!(answer["id"], id, "{answer}");
            answer["result"]["tools"]
                .as_array()
                .expect("tools")
                .iter()
                .any(|t| t["name"].as_str().unwrap_or("").contains("pii-redactor"))
        })
        .await;
    }
    let call = json!({"jsonrpc": "2.0", "id": 20, "method": "tools/call", "params": {
        "name": "discover",
        "arguments": {"need": "remove e-mail addresses from a support ticket", "limit": 3}}});
    let (status, answer, _) = mcp(c, key, Some(&session), call).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["result"]["isError"], false, "{answer}");
    assert!(
        answer["result"].to_string().contains("pii-redactor"),
        "{answer}"
    );

    // Another organisation naming the session: as if it did not exist, on
    // a replica that knows it and on one that would have to look it up.
    let stranger = b.org("stranger").await;
    for replica in [a, b] {
        let (status, _, _) = mcp(replica, &stranger.api_key, Some(&session), tools_list(30)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    // An unknown session: not found anywhere.
    let (status, _, _) = mcp(b, key, Some("no-such-session"), tools_list(31)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Closed through C: every replica forgets it.
    assert!(close(c, key, &session).await.is_success());
    for replica in [a, b, c] {
        eventually("the closed session is gone everywhere", || async {
            mcp(replica, key, Some(&session), tools_list(40)).await.0 == StatusCode::NOT_FOUND
        })
        .await;
    }
    replicas.stop().await;
}
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_a2a_task_opened_on_one_replica_is_read_listed_followed_and_cancelled_on_others() {
    let Some(replicas) = Replicas::start().await else {
        return;
    };
    let [a, b, c] = &replicas.hosts[..] else {
        unreachable!()
    };
    let provider = a.org("provider").await;
    a.publish_unthrottled(&provider, "hostile/misbehaver").await;
    eventually("B lists the sleeper", || async {
        b.get("/v1/capabilities/misbehaver.sleep", None)
            .await
            .0
            .is_success()
    })
    .await;
    let buyer = a.org("buyer").await;
    let send = json!({"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {
        "message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"data": {
            "capability_id": "misbehaver.sleep", "input": {},
        }}]},
        "configuration": {"returnImmediately": true},
    }});
    let (status, body) = a.post("/a2a", Some(&buyer.api_key), send).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["result"]["task"]["id"].clone();
    assert_eq!(
        body["result"]["task"]["status"]["state"],
        "TASK_STATE_WORKING"
    );

    // Read through B (shared through the store), and not by another
    // organisation.
    let get = json!({"jsonrpc": "2.0", "id": 2, "method": "GetTask", "params": {"id": id}});
    eventually("B reads the task", || async {
        let seen = b.post("/a2a", Some(&buyer.api_key), get.clone()).await.1;
        seen["result"]["status"]["state"] == "TASK_STATE_WORKING"
    })
    .await;
    let stranger = b.org_unverified("stranger").await;
    let (_, hidden) = b.post("/a2a", Some(&stranger.api_key), get.clone()).await;
    assert!(hidden["error"].is_object(), "{hidden}");

    // Listed through C, beside C's own tasks, and only to its organisation.
    let list = json!({"jsonrpc": "2.0", "id": 4, "method": "ListTasks", "params": {}});
    let (_, listed) = c.post("/a2a", Some(&buyer.api_key), list.clone()).await;
    let ids: Vec<&Value> = listed["result"]["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"))
        .iter()
        .map(|t| &t["id"])
        .collect();
    assert_eq!(ids, vec![&id], "{listed}");
    assert_eq!(listed["result"]["totalSize"], 1, "{listed}");
    let (_, none) = c.post("/a2a", Some(&stranger.api_key), list).await;
    assert_eq!(none["result"]["totalSize"], 0, "{none}");

    // Subscribed to through C (which does not run it), cancelled through B:
    // A stops the call, B answers CANCELED, and C's stream ends with it.
    let subscription = c
        .http
        .post(format!("{}/a2a", c.url))
        .bearer_auth(&buyer.api_key)
        .header("accept", "text/event-stream")
        .json(
            &json!({"jsonrpc": "2.0", "id": 5, "method": "SubscribeToTask",
            "params": {"id": id}}),
        )
        .send()
        .await
        .expect("subscribe");
    let events = tokio::spawn(subscription.text());
    let cancel = json!({"jsonrpc": "2.0", "id": 3, "method": "CancelTask", "params": {"id": id}});
    let (_, cancelled) = b.post("/a2a", Some(&buyer.api_key), cancel).await;
    assert_eq!(
        cancelled["result"]["status"]["state"], "TASK_STATE_CANCELED",
        "{cancelled}"
    );
    let events = tokio::time::timeout(std::time::Duration::from_secs(20), events)
        .await
        .expect("the subscription ends with the task")
        .expect("joined")
        .expect("events");
    let events: Vec<Value> = events
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|l| serde_json::from_str(l.trim()).expect("an event"))
        .collect();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[0]["result"]["task"]["status"]["state"], "TASK_STATE_WORKING",
        "{events:?}"
    );
    assert_eq!(
        events[1]["result"]["statusUpdate"]["status"]["state"], "TASK_STATE_CANCELED",
        "{events:?}"
    );
    let (_, on_a) = a.post("/a2a", Some(&buyer.api_key), get).await;
    assert_eq!(
        on_a["result"]["status"]["state"], "TASK_STATE_CANCELED",
        "{on_a}"
    );
    replicas.stop().await;
}
