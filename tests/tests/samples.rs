//! Every sample agent publishes, lists its examples, and reproduces them when
//! invoked over HTTP; inputs and prices are checked as promised.

use mercato_tests::{Host, assert_error};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SAMPLES: [&str; 4] = [
    "pii-redactor",
    "unit-converter",
    "summarizer",
    "vendor-compliance",
];

#[tokio::test]
async fn every_sample_agent_reproduces_its_examples_over_http() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let provider = host.org("samples-inc").await;
    let consumer = host.org("buyer").await;
    let mut checked = 0;
    for agent in SAMPLES {
        let published = host.publish(&provider, agent).await;
        assert_eq!(published["agent"], agent);
        assert_eq!(published["created"], true);
        for capability in published["capabilities"].as_array().expect("capabilities") {
            let id = capability["pinned_id"].as_str().expect("pinned id");
            let examples = capability["examples"].as_array().expect("examples");
            assert!(!examples.is_empty(), "{id} has no worked examples");
            for example in examples {
                let (status, body) = host
                    .invoke(&consumer.api_key, id, example["input"].clone(), None)
                    .await;
                assert_eq!(status, StatusCode::OK, "{id}: {body}");
                assert_eq!(
                    body["output"], example["output"],
                    "{id} disagrees with its own example"
                );
                assert!(body["fuel_used"].as_u64().is_some_and(|f| f > 0), "{body}");
                assert!(
                    body["transaction_id"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("tx_"))
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 8, "only {checked} examples ran");
    let (_, list) = host.get("/v1/capabilities", None).await;
    let ids: Vec<&str> = list
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids.len(), 7, "{ids:?}");
    assert!(
        list.as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["agent"] == "pii-redactor")
            .count()
            >= 2
    );
    host.stop().await;
}

#[tokio::test]
async fn redactor_redacts_real_pii_and_keeps_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let org = host.org("o").await;
    host.publish(&org, "pii-redactor").await;
    let text = "Refund IBAN GB82 WEST 1234 5698 7654 32, card 5555 5555 5555 4444 (not 5555 5555 5555 4445), ping ana@corp.eu.";
    let (status, body) = host
        .invoke(
            &org.api_key,
            "pii-redactor.redact",
            json!({ "text": text }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let redacted = body["output"]["redacted"].as_str().expect("redacted");
    assert_eq!(
        redacted,
        "Refund IBAN [IBAN], card [CARD] (not 5555 5555 5555 4445), ping [EMAIL]."
    );
    host.stop().await;
}

#[tokio::test]
async fn schema_invalid_input_is_a_400_naming_the_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let org = host.org("o").await;
    host.publish(&org, "unit-converter").await;
    let (status, body) = host
        .invoke(
            &org.api_key,
            "unit-converter.convert",
            json!({ "value": "ten", "from": "km" }),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    let violations = body["error"]["details"]["violations"]
        .as_array()
        .expect("violations");
    assert!(violations.iter().any(|v| v["path"] == "/value"), "{body}");
    assert!(
        violations
            .iter()
            .any(|v| v["message"].as_str().is_some_and(|m| m.contains("to"))),
        "{body}"
    );
    // Nothing ran, so nothing was recorded.
    assert_eq!(host.metric("mercato_invocations_total").await, 0.0);
    // A guest's own refusal is also the caller's fault.
    let (status, body) = host
        .invoke(
            &org.api_key,
            "unit-converter.convert",
            json!({ "value": 1, "from": "km", "to": "kg" }),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_input");
    host.stop().await;
}

async fn redact(host: &Host, key: &str, cap: Option<u64>) -> (StatusCode, Value) {
    host.invoke(
        key,
        "pii-redactor.detect",
        json!({ "text": "call +1 (555) 010-9999 or a@b.io" }),
        cap,
    )
    .await
}

/// The cap buys exactly the fuel it covers: with too little the call ends
/// `fuel_exhausted`, with enough it succeeds, and its cost is the formula.
#[tokio::test]
async fn max_price_buys_exactly_the_fuel_it_covers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let org = host.org("o").await;
    host.publish(&org, "pii-redactor").await;
    // detect: price_micros = 1000, micros_per_mfuel = 100; the fee is 1% on top.
    let with_fee = |cost: u64| cost + cost.div_ceil(100);
    let (status, free) = redact(&host, &org.api_key, None).await;
    assert_eq!(status, StatusCode::OK, "{free}");
    let fuel = free["fuel_used"].as_u64().expect("fuel");
    let expected_cost = 1_000 + (fuel * 100).div_ceil(1_000_000);
    assert_eq!(free["cost_micros"], expected_cost, "{free}");
    assert_eq!(free["fee_micros"], expected_cost.div_ceil(100), "{free}");
    assert_eq!(free["charged_micros"], with_fee(expected_cost), "{free}");

    // A cap of exactly that charge buys at least `fuel`: the call succeeds.
    let (status, exact) = redact(&host, &org.api_key, Some(with_fee(expected_cost))).await;
    assert_eq!(status, StatusCode::OK, "{exact}");
    assert_eq!(
        exact["fuel_used"], fuel,
        "the same call must burn the same fuel"
    );
    assert_eq!(
        exact["fuel_limit"],
        (expected_cost - 1_000) * 1_000_000 / 100
    );
    assert!(
        exact["charged_micros"]
            .as_u64()
            .is_some_and(|c| c <= with_fee(expected_cost))
    );

    // A cap that buys less fuel than the call needs ends it; the fuel it
    // bought was burned at the caller's request, so it is charged.
    // Each micro over the base price buys 10,000 fuel at 100 micros per Mfuel.
    let starved_cost = 1_000 + (fuel / 10_000).saturating_sub(1);
    assert!((starved_cost - 1_000) * 10_000 < fuel);
    let (status, body) = redact(&host, &org.api_key, Some(with_fee(starved_cost))).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYMENT_REQUIRED,
        "fuel_exhausted",
    );
    let details = &body["error"]["details"];
    assert_eq!(details["fuel_used"], details["fuel_limit"], "{body}");
    assert_eq!(details["charged_micros"], with_fee(starved_cost), "{body}");
    let tx = details["transaction_id"]
        .as_str()
        .expect("a failed call is still recorded");
    let (status, record) = host
        .get(&format!("/v1/transactions/{tx}"), Some(&org.api_key))
        .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(
        (record["outcome"].as_str(), record["cost_micros"].as_u64()),
        (Some("fuel_exhausted"), Some(starved_cost))
    );
    assert_eq!(record["settlement"], "escrowed");

    // A cap under the base price never runs.
    let (status, body) = redact(&host, &org.api_key, Some(999)).await;
    assert_error(status, &body, StatusCode::PAYMENT_REQUIRED, "price_too_low");

    // The quote now rests on the observed fuel.
    let (status, quote) = host
        .get("/v1/capabilities/pii-redactor.detect/quote", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{quote}");
    assert_eq!(quote["observations"], 2);
    assert_eq!(quote["fuel_p50"], fuel);
    assert_eq!(quote["expected_cost_micros"], expected_cost);
    host.stop().await;
}

#[tokio::test]
async fn streaming_invoke_sends_chunks_then_the_result() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let org = host.org("o").await;
    host.publish(&org, "summarizer").await;
    let text =
        "Fuel is metered. Every call has a price. The weather is nice. Prices come from fuel.";
    let response = host
        .http
        .post(format!(
            "{}/v1/capabilities/summarizer.summarize/invoke",
            host.url
        ))
        .bearer_auth(&org.api_key)
        .header("accept", "text/event-stream")
        .json(&json!({ "input": { "text": text, "sentences": 2 } }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.text().await.expect("body");
    let events: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(events.last(), Some(&"result"), "{body}");
    assert!(
        events.iter().filter(|e| **e == "chunk").count() >= 2,
        "{body}"
    );
    let result: Value = body
        .lines()
        .skip_while(|l| *l != "event: result")
        .find_map(|l| l.strip_prefix("data: "))
        .and_then(|d| serde_json::from_str(d).ok())
        .expect("result data");
    assert_eq!(result["output"]["sentence_count"], 4, "{result}");
    host.stop().await;
}

/// The terms' `rate_limit_per_minute` is enforced per consumer: past it, a
/// 429 with `Retry-After`, nothing run and nothing recorded.
#[tokio::test]
async fn the_rate_limit_in_the_terms_is_enforced_per_consumer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let provider = host.org("p").await;
    let (a, b) = (host.org("a").await, host.org("b").await);
    let terms = mercato_tests::manifest("unit-converter").replacen(
        "rate_limit_per_minute = 600",
        "rate_limit_per_minute = 2",
        1,
    );
    let (status, body) = host
        .upload(&provider, mercato_tests::component("unit-converter"), terms)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let input = json!({ "value": 1, "from": "m", "to": "cm" });
    for _ in 0..2 {
        assert_eq!(
            host.invoke(&a.api_key, "unit-converter.convert", input.clone(), None)
                .await
                .0,
            StatusCode::OK
        );
    }
    let response = host
        .http
        .post(format!(
            "{}/v1/capabilities/unit-converter.convert/invoke",
            host.url
        ))
        .bearer_auth(&a.api_key)
        .json(&json!({ "input": input }))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("Retry-After");
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(body["error"]["details"]["per_minute"], 2);
    // Another consumer has its own allowance; the other capability has its own terms.
    assert_eq!(
        host.invoke(&b.api_key, "unit-converter.convert", input.clone(), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        host.invoke(&a.api_key, "unit-converter.list-units", json!({}), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        host.metric("mercato_invocations_total").await,
        4.0,
        "the refused call never ran"
    );
    host.stop().await;
}
