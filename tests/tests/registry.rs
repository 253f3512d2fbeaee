//! The MCP registry listing against a real host over real HTTP: every
//! listed agent served as valid server.json (checked against the schema
//! written from the specification), paged by cursor, its versions; the
//! per-agent MCP endpoint shows and calls only that agent; a client that
//! knows only the registry finds an agent, authorizes with OAuth and calls
//! it (the official MCP Python SDK).

use mercato_host::registry::listing::listing_violations;
use mercato_tests::{Host, clients, test_config};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn market(dir: &std::path::Path) -> (Host, mercato_tests::Org) {
    let host = Host::start_with(test_config(dir)).await;
    let provider = host.org("provider").await;
    for agent in ["unit-converter", "summarizer", "pii-redactor"] {
        host.publish(&provider, agent).await;
    }
    let consumer = host.org("consumer").await;
    (host, consumer)
}

async fn get(host: &Host, path: &str) -> (StatusCode, Value) {
    let response = host
        .http
        .get(format!("{}{path}", host.url))
        .send()
        .await
        .expect("get");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

#[tokio::test]
async fn every_listed_agent_is_served_as_valid_server_json_and_pages_by_cursor() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, consumer) = market(dir.path()).await;
    // A second version of one agent: two versions listed, one latest.
    let provider = host.org("second-provider").await;
    host.publish(&provider, "upgrades/word-count-1-0-0").await;
    host.publish(&provider, "upgrades/word-count-1-1-0").await;

    let (status, all) = get(&host, "/v0/servers?limit=100").await;
    assert_eq!(status, StatusCode::OK, "{all}");
    let servers = all["servers"].as_array().expect("servers");
    assert_eq!(servers.len(), 5, "{all}");
    for response in servers {
        assert_eq!(
            listing_violations(response),
            Vec::<String>::new(),
            "{response}"
        );
        let server = &response["server"];
        let agent = server["title"].as_str().expect("title");
        assert_eq!(server["name"], format!("local.mercato/{agent}"));
        assert_eq!(
            server["remotes"],
            json!([{"type": "streamable-http", "url": format!("{}/mcp/agents/{agent}", host.url)}])
        );
    }
    let latest: Vec<(&str, bool)> = servers
        .iter()
        .map(|s| {
            (
                s["server"]["version"].as_str().unwrap_or(""),
                s["_meta"]["io.modelcontextprotocol.registry/official"]["isLatest"] == true,
            )
        })
        .collect();
    assert!(
        latest.contains(&("1.0.0", false)) && latest.contains(&("1.1.0", true)),
        "{latest:?}"
    );

    // Pages of one, followed by their cursors, give the same list.
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let path = match &cursor {
            Some(c) => format!("/v0/servers?limit=1&cursor={c}"),
            None => "/v0/servers?limit=1".into(),
        };
        let (_, page) = get(&host, &path).await;
        assert_eq!(page["metadata"]["count"], 1, "{page}");
        walked.push(page["servers"][0].clone());
        cursor = page["metadata"]["nextCursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(&walked, servers);
    // Only the newest of each with version=latest; a search; the v0.1 path.
    let (_, newest) = get(&host, "/v0.1/servers?version=latest").await;
    assert_eq!(
        newest["servers"].as_array().map(Vec::len),
        Some(4),
        "{newest}"
    );
    let (_, found) = get(&host, "/v0/servers?search=word").await;
    assert_eq!(found["metadata"]["count"], 2, "{found}");

    // One server: its latest, its versions newest first, one version.
    let name = "local.mercato%2Fword-count";
    let (status, one) = get(&host, &format!("/v0/servers/{name}")).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["server"]["version"], "1.1.0");
    let (_, versions) = get(&host, &format!("/v0/servers/{name}/versions")).await;
    let listed: Vec<&str> = versions["servers"]
        .as_array()
        .expect("servers")
        .iter()
        .filter_map(|s| s["server"]["version"].as_str())
        .collect();
    assert_eq!(listed, ["1.1.0", "1.0.0"]);
    let (_, old) = get(&host, &format!("/v0/servers/{name}/versions/1.0.0")).await;
    assert_eq!(
        old["_meta"]["io.modelcontextprotocol.registry/official"]["isLatest"],
        false
    );

    // Clear refusals.
    for (path, status) in [
        ("/v0/servers?limit=0", StatusCode::BAD_REQUEST),
        ("/v0/servers?limit=101", StatusCode::BAD_REQUEST),
        ("/v0/servers?cursor=forged", StatusCode::BAD_REQUEST),
        (
            "/v0/servers/other.example%2Fword-count",
            StatusCode::NOT_FOUND,
        ),
        (
            "/v0/servers/local.mercato%2Fnothing/versions",
            StatusCode::NOT_FOUND,
        ),
        (
            "/v0/servers/local.mercato%2Fword-count/versions/9.9.9",
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (got, body) = get(&host, path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }

    // The per-agent endpoint shows only that agent's tools, and calls
    // only them (with an API key too).
    let tools = rpc(
        &host,
        "/mcp/agents/unit-converter",
        &consumer.api_key,
        "tools/list",
        json!({}),
    )
    .await;
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["unit-converter__convert", "unit-converter__list-units"]
    );
    let other = rpc(
        &host,
        "/mcp/agents/unit-converter",
        &consumer.api_key,
        "tools/call",
        json!({"name": "summarizer__keywords", "arguments": {"text": "a b"}}),
    )
    .await;
    assert!(
        other["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("unknown tool")),
        "{other}"
    );
    let response = host
        .http
        .post(format!("{}/mcp/agents/nothing-here", host.url))
        .bearer_auth(&consumer.api_key)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    host.stop().await;
}

/// A stateless (2026-07-28) MCP request to `path`.
async fn rpc(host: &Host, path: &str, bearer: &str, method: &str, mut params: Value) -> Value {
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let mut request = host
        .http
        .post(format!("{}{path}", host.url))
        .bearer_auth(bearer)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", method);
    if let Some(name) = params["name"].as_str() {
        request = request.header("mcp-name", name);
    }
    let response = request
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await
        .expect("rpc");
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

#[tokio::test]
async fn a_client_knowing_only_the_registry_finds_an_agent_authorizes_and_calls_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, consumer) = market(dir.path()).await;
    let python = clients::python();
    let script = clients::script("mcp_registry_client.py");
    let seen = clients::run(
        &python,
        &[
            script.to_str().expect("utf-8"),
            &host.url,
            &consumer.api_key,
            "unit-conv",
        ],
    )
    .await;
    assert_eq!(seen["name"], "local.mercato/unit-converter", "{seen}");
    let remote = format!("{}/mcp/agents/unit-converter", host.url);
    assert_eq!(seen["remote"], remote.as_str());
    assert_eq!(
        seen["tools"],
        json!(["unit-converter__convert", "unit-converter__list-units"]),
        "{seen}"
    );
    assert_eq!(seen["call"]["is_error"], false, "{seen}");
    assert_eq!(seen["call"]["structured"]["value"], 3000.0, "{seen}");
    // The token is bound to that agent's endpoint: not the whole /mcp.
    let token = seen["access_token"].as_str().expect("token");
    let response = host
        .http
        .post(format!("{}/mcp", host.url))
        .bearer_auth(token)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    // Its metadata names the agent's endpoint as the resource.
    let (_, prm) = get(
        &host,
        "/.well-known/oauth-protected-resource/mcp/agents/unit-converter",
    )
    .await;
    assert_eq!(prm["resource"], remote.as_str());
    host.stop().await;
}
