//! The REST surface: auth, the error shape, limits, health, metrics, OpenAPI.

use mercato_tests::{Host, assert_error, test_config};
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn writes_need_a_valid_bearer_key_and_errors_share_one_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let org = host.org("o").await;
    host.publish(&org, "unit-converter").await;
    let input = json!({ "value": 1, "from": "m", "to": "ft" });
    let (status, body) = host
        .post(
            "/v1/capabilities/unit-converter.convert/invoke",
            None,
            json!({ "input": input }),
        )
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = host
        .invoke("mk_wrong", "unit-converter.convert", input.clone(), None)
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, body) = host.get("/v1/nope", None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = host
        .post(
            "/v1/capabilities/unit-converter.convert/invoke",
            Some(&org.api_key),
            json!({ "inputs": input }),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    let (status, body) = host.post("/v1/orgs", None, json!({ "name": "" })).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    let response = host
        .http
        .post(format!("{}/v1/orgs", host.url))
        .header("content-type", "application/json")
        .body(format!("{{\"name\": \"{}\"}}", "x".repeat(2 << 20)))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = response.json().await.expect("json error");
    assert_eq!(body["error"]["code"], "body_too_large");
    host.stop().await;
}

#[tokio::test]
async fn the_admin_token_lists_organisations_and_a_key_sees_only_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let a = host.org("a").await;
    host.org("b").await;
    let (status, all) = host.get("/v1/orgs", Some("test-admin-token")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(all.as_array().map(Vec::len), Some(2));
    let (_, own) = host.get("/v1/orgs", Some(&a.api_key)).await;
    assert_eq!(
        own,
        json!([{ "org_id": a.org_id, "name": "a", "created_at_ms": own[0]["created_at_ms"],
                 "verified": true }])
    );
    let (status, body) = host.get("/v1/orgs", Some("not-the-token")).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    host.stop().await;
}

#[tokio::test]
async fn without_a_configured_admin_token_one_is_generated_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    config.admin_token = None;
    let host = Host::start_with(config.clone()).await;
    let token = match host.server().admin_token() {
        mercato_host::identity::AdminToken::Generated(token) => token.clone(),
        other => panic!("expected a generated token, got {other:?}"),
    };
    assert_eq!(host.get("/v1/orgs", Some(&token)).await.0, StatusCode::OK);
    host.stop().await;
    let host = Host::start_with(config).await;
    assert_eq!(
        host.server().admin_token(),
        &mercato_host::identity::AdminToken::Stored
    );
    assert_eq!(
        host.get("/v1/orgs", Some(&token)).await.0,
        StatusCode::OK,
        "the stored token still works"
    );
    host.stop().await;
}

#[tokio::test]
async fn openapi_documents_every_route_the_router_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let (status, spec) = host.get("/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );
    let routes = [
        ("post", "/v1/orgs"),
        ("get", "/v1/orgs"),
        ("post", "/v1/orgs/{id}/verify"),
        ("post", "/v1/orgs/{id}/keys"),
        ("get", "/v1/orgs/{id}/keys"),
        ("delete", "/v1/orgs/{id}/keys/{key_id}"),
        ("post", "/v1/admin/reattest"),
        ("get", "/.well-known/mercato-keys.json"),
        ("get", "/v1/capabilities/{id}/attestation"),
        ("post", "/v1/components"),
        ("get", "/v1/capabilities"),
        ("post", "/v1/discover"),
        ("get", "/v1/capabilities/{id}"),
        ("get", "/v1/capabilities/{id}/quote"),
        ("post", "/v1/capabilities/{id}/invoke"),
        ("get", "/v1/transactions/{id}"),
        ("post", "/v1/transactions/{id}/dispute"),
        ("post", "/v1/transactions/{id}/dispute/decision"),
        ("post", "/v1/accounts/{org}/deposits"),
        ("get", "/v1/accounts/me"),
        ("put", "/v1/accounts/me/budget"),
        ("get", "/v1/admin/ledger"),
        ("post", "/v1/transactions/{id}/rating"),
        ("get", "/v1/orgs/{id}/reputation"),
        ("post", "/v1/negotiations"),
        ("get", "/v1/negotiations/{id}"),
        ("post", "/v1/negotiations/{id}/respond"),
        ("get", "/v1/contracts/{id}"),
        ("get", "/v1/accounts/me/events"),
        ("get", "/v1/accounts/me/webhook-secret"),
        ("post", "/v1/orgs/{id}/approvers"),
        ("get", "/v1/approvals"),
        ("post", "/v1/approvals/{id}"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/metrics"),
        ("get", "/openapi.json"),
    ];
    let documented: usize = spec["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|p| p.as_object().map_or(0, |m| m.len()))
        .sum();
    assert_eq!(
        documented,
        routes.len(),
        "the spec documents a route the router lacks, or misses one"
    );
    for (method, path) in routes {
        assert!(
            spec["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
        // And the router really serves it: anything but the fallback's 404 for routes.
        let url = format!(
            "{}{}",
            host.url,
            path.replace("{id}", "x.y")
                .replace("{key_id}", "k")
                .replace("{org}", "o")
        );
        let response = match method {
            "get" => host.http.get(&url).send().await,
            "delete" => host.http.delete(&url).send().await,
            "put" => host.http.put(&url).send().await,
            _ => host.http.post(&url).send().await,
        }
        .expect("request");
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert_ne!(
            body["error"]["message"]
                .as_str()
                .map(|m| m.starts_with("no such route")),
            Some(true),
            "{method} {path}"
        );
    }
    assert!(spec["components"]["schemas"]["InvokeResult"]["properties"]["cost_micros"].is_object());
    host.stop().await;
}

#[tokio::test]
async fn health_and_metrics_report_what_happened() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let org = host.org("o").await;
    host.publish(&org, "unit-converter").await;
    let (status, health) = host.get("/healthz", None).await;
    assert_eq!(
        (
            status,
            health["status"].as_str(),
            health["capabilities"].as_u64()
        ),
        (StatusCode::OK, Some("ok"), Some(2))
    );
    for _ in 0..3 {
        let input = json!({ "value": 1, "from": "kWh", "to": "J" });
        assert_eq!(
            host.invoke(&org.api_key, "unit-converter.convert", input, None)
                .await
                .0,
            StatusCode::OK
        );
    }
    host.invoke(
        &org.api_key,
        "unit-converter.convert",
        json!({ "value": 1, "from": "x", "to": "J" }),
        None,
    )
    .await;
    let text = host.metrics_text().await;
    assert!(
        text.contains("mercato_invocations_total{outcome=\"ok\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("mercato_invocations_total{outcome=\"invalid_input\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("mercato_invocation_duration_seconds_count 4"),
        "{text}"
    );
    assert!(host.metric("mercato_store_syncs").await >= 2.0, "{text}");
    host.stop().await;
}

/// 200 calls at once: each succeeds or is refused cleanly as overloaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_invocations_succeed_or_fail_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let org = host.org("o").await;
    host.publish(&org, "pii-redactor").await;
    let calls = (0..200).map(|i| {
        let text = format!("ticket {i}: write to user{i}@example.com");
        host.invoke(
            &org.api_key,
            "pii-redactor.redact",
            json!({ "text": text }),
            None,
        )
    });
    let results = futures::future::join_all(calls).await;
    let mut ok = 0;
    for (i, (status, body)) in results.iter().enumerate() {
        match *status {
            StatusCode::OK => {
                assert_eq!(
                    body["output"]["redacted"],
                    format!("ticket {i}: write to [EMAIL]")
                );
                ok += 1;
            }
            StatusCode::SERVICE_UNAVAILABLE => assert_eq!(body["error"]["code"], "overloaded"),
            other => panic!("call {i}: {other} {body}"),
        }
    }
    assert!(ok > 0);
    let (_, stats) = host.get("/v1/capabilities/pii-redactor.redact", None).await;
    assert_eq!(stats["stats"]["successes"], ok);
    host.stop().await;
}

/// The bodies the API refuses whatever serde would make of them: an array
/// where an object belongs (serde reads `[]` into a struct whose fields are
/// all optional), and numbers past the limits the schemas state.
#[tokio::test]
async fn bodies_are_objects_and_numbers_stay_within_the_stated_limits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let org = host.org("o").await;
    host.publish(&org, "unit-converter").await;
    let too_big = json!(1u64 << 63);
    let exact_max = json!((1u64 << 53) - 1);

    // Arrays are not bodies, on the operator's routes as on an
    // organisation's; nothing runs.
    for (path, key) in [
        ("/v1/admin/reattest", mercato_tests::ADMIN_TOKEN),
        ("/v1/discover", org.api_key.as_str()),
        ("/v1/negotiations", org.api_key.as_str()),
    ] {
        let (status, body) = host.post(path, Some(key), json!([])).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("JSON object")),
            "{path}: {body}"
        );
    }
    // Nor is an array where a nested object belongs.
    for (path, body) in [
        (
            "/v1/discover",
            json!({"need": "convert units", "data_policy": []}),
        ),
        (
            "/v1/negotiations",
            json!({"capability_id": "unit-converter.convert", "terms": []}),
        ),
    ] {
        let (status, answer) = host.post(path, Some(&org.api_key), body).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "invalid_request");
    }
    let (_, reports) = host
        .get("/v1/admin/ledger", Some(mercato_tests::ADMIN_TOKEN))
        .await;
    assert_eq!(reports["problem"], Value::Null);

    // Budget limits: at most 2^53 − 1 micros.
    for field in [
        "daily_max_micros",
        "per_call_max_micros",
        "approval_above_micros",
    ] {
        let (status, body) = host.put_budget(&org, json!({ field: too_big })).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
        let (status, body) = host.put_budget(&org, json!({ field: exact_max })).await;
        assert_eq!(status, StatusCode::OK, "{field} at the limit: {body}");
    }
    let (status, body) = host.put_budget(&org, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Latency: at most an hour, in discovery and in a proposal.
    let (status, body) = host
        .post(
            "/v1/discover",
            Some(&org.api_key),
            json!({ "need": "convert units", "latency_ms_max": too_big }),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    let (status, body) = host
        .post(
            "/v1/discover",
            Some(&org.api_key),
            json!({ "need": "convert units", "latency_ms_max": 3_600_000 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = host
        .post(
            "/v1/negotiations",
            Some(&org.api_key),
            json!({
                "capability_id": "unit-converter.convert",
                "terms": { "max_price_micros": 10_000, "latency_ms_max": too_big, "validity_ms": 60_000 }
            }),
        )
        .await;
    assert!(status.is_client_error(), "{status}: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("latency_ms_max")),
        "{body}"
    );
    // The OpenAPI document states the same limits.
    let (_, spec) = host.get("/openapi.json", None).await;
    let budget = &spec["components"]["schemas"]["Budget"]["properties"];
    // Every status a route can answer is documented: the layers' 503 and
    // 504 everywhere, 401 with a token, 400/413/415 with a JSON body, 429
    // for unproven organisations, 409/422 with an idempotency key.
    let responses = |path: &str, method: &str| spec["paths"][path][method]["responses"].clone();
    assert!(
        responses("/v1/discover", "post").get("401").is_none(),
        "discover is public"
    );
    for status in ["400", "413", "415", "503", "504"] {
        assert!(
            responses("/v1/discover", "post").get(status).is_some(),
            "discover {status}"
        );
    }
    for status in ["401", "409", "422", "429"] {
        assert!(
            responses("/v1/negotiations", "post").get(status).is_some(),
            "negotiate {status}"
        );
    }
    assert!(
        responses("/healthz", "get").get("401").is_none(),
        "healthz needs no token"
    );
    // Ids flow along links: a call's answer to its transaction.
    let link = &responses("/v1/capabilities/{id}/invoke", "post")["200"]["links"]["GetTransaction"];
    assert_eq!(link["operationId"], "transactions_get", "{link}");
    assert_eq!(
        link["parameters"]["id"], "$response.body#/transaction_id",
        "{link}"
    );
    assert!(
        responses("/metrics", "get")["200"]["content"]
            .get("application/openmetrics-text; version=1.0.0; charset=utf-8")
            .is_some(),
        "{}",
        responses("/metrics", "get")
    );
    assert_eq!(
        budget["daily_max_micros"]["maximum"].as_u64(),
        Some((1 << 53) - 1),
        "{budget}"
    );
    host.stop().await;
}
