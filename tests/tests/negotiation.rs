//! Negotiation, contracts and reputation over real HTTP.

use mercato_host::identity::{KeySet, signing};
use mercato_tests::{ADMIN_TOKEN, Host, Org, assert_error, test_config};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn market(dir: &std::path::Path) -> (Host, Org, Org) {
    let mut config = test_config(dir);
    config.dispute_window_ms = 3_600_000;
    let host = Host::start_with(config).await;
    let provider = host.org("provider").await;
    let consumer = host.org("consumer").await;
    host.publish(&provider, "pii-redactor").await;
    host.publish(&provider, "hostile/misbehaver").await;
    (host, provider, consumer)
}

async fn propose(host: &Host, org: &Org, capability: &str, terms: Value) -> (StatusCode, Value) {
    host.post(
        "/v1/negotiations",
        Some(&org.api_key),
        json!({ "capability_id": capability, "terms": terms }),
    )
    .await
}

async fn respond(host: &Host, org: &Org, id: &Value, answer: Value) -> (StatusCode, Value) {
    let id = id.as_str().expect("negotiation id");
    host.post(
        &format!("/v1/negotiations/{id}/respond"),
        Some(&org.api_key),
        answer,
    )
    .await
}

async fn invoke_under(
    host: &Host,
    org: &Org,
    id: &str,
    contract: &str,
    input: Value,
) -> (StatusCode, Value) {
    host.post(
        &format!("/v1/capabilities/{id}/invoke"),
        Some(&org.api_key),
        json!({ "input": input, "contract_id": contract }),
    )
    .await
}

async fn verify(host: &Host, document: &Value) -> bool {
    let (_, keys) = host.get("/.well-known/mercato-keys.json", None).await;
    let keys: KeySet = serde_json::from_value(keys).expect("keys");
    let verifying = keys.verifying_keys();
    signing::verify_document(document, verifying.iter().map(|(id, k)| (id.as_str(), k))).is_ok()
}

#[tokio::test]
async fn terms_within_the_policy_give_a_signed_contract_that_every_call_is_held_to() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, provider, consumer) = market(dir.path()).await;
    let terms = json!({
        "max_price_micros": 5_000, "latency_ms_max": 200, "retention": "none",
        "encryption": true, "jurisdiction": "EU", "rate_limit_per_minute": 2,
        "validity_ms": 3_600_000
    });
    let (status, answer) = propose(&host, &consumer, "pii-redactor.redact", terms).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["negotiation"]["status"], "accepted");
    let contract = &answer["contract"];
    assert!(verify(&host, contract).await, "signed by the marketplace");
    assert_eq!(contract["capability_id"], "pii-redactor.redact@1.0.0");
    assert_eq!(contract["terms"]["latency_ms_max"], 200);
    let contract_id = contract["contract_id"].as_str().expect("id");
    let (status, stored) = host
        .get(
            &format!("/v1/contracts/{contract_id}"),
            Some(&provider.api_key),
        )
        .await;
    assert_eq!((status, &stored), (StatusCode::OK, contract));

    // Calls under it: the contract's price cap and rate limit hold.
    let input = json!({ "text": "Mail jo@example.com" });
    let (status, first) = invoke_under(
        &host,
        &consumer,
        "pii-redactor.redact",
        contract_id,
        input.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["contract_id"], contract_id);
    assert_eq!(first["receipt"]["contract_id"], contract_id);
    assert_eq!(first["retention"], "none");
    // 5,000 micros cap with a 1% fee leaves 4,950 for the cost: (4,950 − 2,000) × 10⁴ fuel.
    assert_eq!(first["fuel_limit"], 29_500_000);
    let (status, _) = invoke_under(
        &host,
        &consumer,
        "pii-redactor.redact",
        contract_id,
        input.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let response = host
        .http
        .post(format!(
            "{}/v1/capabilities/pii-redactor.redact/invoke",
            host.url
        ))
        .bearer_auth(&consumer.api_key)
        .json(&json!({ "input": input, "contract_id": contract_id }))
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));

    // Only its consumer, only its capability.
    let (status, body) = invoke_under(
        &host,
        &provider,
        "pii-redactor.redact",
        contract_id,
        input.clone(),
    )
    .await;
    assert_error(status, &body, StatusCode::CONFLICT, "contract_invalid");
    let stranger = host.org("stranger").await;
    let (status, body) = invoke_under(
        &host,
        &stranger,
        "pii-redactor.redact",
        contract_id,
        input.clone(),
    )
    .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = invoke_under(
        &host,
        &consumer,
        "pii-redactor.detect",
        contract_id,
        json!({ "text": "x" }),
    )
    .await;
    assert_error(status, &body, StatusCode::CONFLICT, "contract_invalid");
    host.stop().await;
}

#[tokio::test]
async fn counter_offers_name_each_term_rounds_are_bounded_and_impossible_terms_are_rejected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, _provider, consumer) = market(dir.path()).await;
    let greedy = json!({
        "max_price_micros": 10, "latency_ms_max": 10, "uptime_min": 0.99999,
        "rate_limit_per_minute": 100_000, "validity_ms": 60 * 86_400_000u64
    });
    let (status, answer) = propose(&host, &consumer, "pii-redactor.redact", greedy.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let negotiation = &answer["negotiation"];
    assert_eq!(negotiation["status"], "countered");
    let reasons: Vec<&str> = negotiation["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for term in [
        "max_price_micros",
        "latency_ms_max",
        "uptime_min",
        "rate_limit_per_minute",
        "validity_ms",
    ] {
        assert!(
            reasons.iter().any(|r| r.starts_with(term)),
            "{term}: {reasons:?}"
        );
    }
    assert_eq!(reasons.len(), 5);
    let counter = &negotiation["counter"];
    assert_eq!(counter["max_price_micros"], 2_100);
    assert_eq!(counter["latency_ms_max"], 100);
    assert_eq!(counter["rate_limit_per_minute"], 6_000);
    // Accepting the counter signs a contract on those terms.
    let (status, accepted) = respond(
        &host,
        &consumer,
        &negotiation["negotiation_id"],
        json!({ "action": "accept" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    assert_eq!(accepted["negotiation"]["status"], "accepted");
    assert_eq!(accepted["contract"]["terms"]["max_price_micros"], 2_100);
    let (status, body) = respond(
        &host,
        &consumer,
        &negotiation["negotiation_id"],
        json!({ "action": "accept" }),
    )
    .await;
    assert_error(status, &body, StatusCode::CONFLICT, "negotiation_closed");

    // A consumer who keeps proposing what the provider refuses: closed after 5 rounds.
    let (_, answer) = propose(&host, &consumer, "pii-redactor.redact", greedy.clone()).await;
    let id = answer["negotiation"]["negotiation_id"].clone();
    let mut last = answer;
    for _ in 0..4 {
        let (status, next) = respond(
            &host,
            &consumer,
            &id,
            json!({ "action": "propose", "terms": greedy }),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{next}");
        last = next;
    }
    assert_eq!(last["negotiation"]["round"], 5);
    assert_eq!(last["negotiation"]["status"], "closed");
    let (status, body) = respond(&host, &consumer, &id, json!({ "action": "accept" })).await;
    assert_error(status, &body, StatusCode::CONFLICT, "negotiation_closed");

    // Terms the provider can never meet.
    let (status, answer) = propose(
        &host,
        &consumer,
        "pii-redactor.redact",
        json!({ "max_price_micros": 5_000, "jurisdiction": "BR", "validity_ms": 60_000 }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(answer["negotiation"]["status"], "rejected");
    assert!(answer["contract"].is_null());
    // The consumer may walk away from a counter.
    let (_, answer) = propose(&host, &consumer, "pii-redactor.redact", greedy).await;
    let (status, walked) = respond(
        &host,
        &consumer,
        &answer["negotiation"]["negotiation_id"],
        json!({ "action": "reject" }),
    )
    .await;
    assert_eq!(
        (status, &walked["negotiation"]["status"]),
        (StatusCode::OK, &json!("rejected"))
    );
    // Nonsense is refused.
    let (status, body) = propose(
        &host,
        &consumer,
        "pii-redactor.redact",
        json!({ "max_price_micros": 1, "validity_ms": 0 }),
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    host.stop().await;
}

#[tokio::test]
async fn a_call_slower_than_its_contract_sla_is_recorded_and_not_charged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, _provider, consumer) = market(dir.path()).await;
    let (_, answer) = propose(
        &host,
        &consumer,
        "misbehaver.nap",
        json!({ "max_price_micros": 10_000, "latency_ms_max": 20, "validity_ms": 3_600_000 }),
    )
    .await;
    assert_eq!(answer["negotiation"]["status"], "accepted", "{answer}");
    let contract = answer["contract"]["contract_id"].as_str().expect("id");
    let before = host.balance(&consumer).await;
    // The nap takes at least 100 ms: the 20 ms SLA is missed, whatever the machine.
    let (status, slow) = invoke_under(
        &host,
        &consumer,
        "misbehaver.nap",
        contract,
        json!({ "ms": 100 }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{slow}");
    assert_eq!(slow["output"]["n"], 100);
    assert_eq!(slow["sla_missed"], true);
    assert_eq!(slow["charged_micros"], 0);
    assert_eq!(host.balance(&consumer).await, before, "nothing charged");
    let tx = slow["transaction_id"].as_str().expect("tx");
    let (_, record) = host
        .get(&format!("/v1/transactions/{tx}"), Some(&consumer.api_key))
        .await;
    assert_eq!(
        (record["sla_missed"].clone(), record["settlement"].clone()),
        (json!(true), json!("voided"))
    );
    // Without the contract the same call is charged (no SLA promised below 1 s).
    let (status, charged) = host
        .invoke(
            &consumer.api_key,
            "misbehaver.nap",
            json!({ "ms": 100 }),
            Some(10_000),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(charged["charged_micros"].as_u64().is_some_and(|c| c > 0));
    host.stop().await;
}

#[tokio::test]
async fn each_side_rates_once_and_ratings_feed_listings_and_discovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, provider, consumer) = market(dir.path()).await;
    let (_, call) = host
        .invoke(
            &consumer.api_key,
            "pii-redactor.redact",
            json!({ "text": "a@b.io" }),
            Some(50_000),
        )
        .await;
    let tx = call["transaction_id"].as_str().expect("tx");
    let path = format!("/v1/transactions/{tx}/rating");
    let (status, body) = host
        .post(&path, Some(&consumer.api_key), json!({ "score": 6 }))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    let (status, rating) = host
        .post(
            &path,
            Some(&consumer.api_key),
            json!({ "score": 5, "comment": "fast and right" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rating}");
    let (status, body) = host
        .post(&path, Some(&consumer.api_key), json!({ "score": 1 }))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "already_rated");
    let (status, _) = host
        .post(&path, Some(&provider.api_key), json!({ "score": 2 }))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let stranger = host.org("stranger").await;
    let (status, body) = host
        .post(&path, Some(&stranger.api_key), json!({ "score": 3 }))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    let (_, view) = host.get("/v1/capabilities/pii-redactor.redact", None).await;
    let reputation = &view["reputation"];
    assert_eq!(
        (
            reputation["rating"].as_f64(),
            reputation["ratings"].as_u64()
        ),
        (Some(5.0), Some(1))
    );
    assert_eq!(reputation["calls"], 1);
    assert_eq!(reputation["success_rate"], 1.0);
    let (_, org) = host
        .get(&format!("/v1/orgs/{}/reputation", consumer.org_id), None)
        .await;
    assert_eq!(org["rating"], 2.0, "the provider rated its consumer");
    let (_, org) = host
        .get(&format!("/v1/orgs/{}/reputation", provider.org_id), None)
        .await;
    assert_eq!(org["rating"], 5.0);

    // Discovery: rating_min keeps the rated capability and drops the unrated
    // one; the rating lifts its score.
    let (status, found) = host
        .post(
            "/v1/discover",
            None,
            json!({ "need": "redact personal data", "rating_min": 4, "limit": 10 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let ids: Vec<&str> = found["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["capability"]["id"].as_str())
        .collect();
    assert_eq!(ids, ["pii-redactor.redact"]);
    let boost = found["results"][0]["explanation"]["rating_boost"]
        .as_f64()
        .expect("boost");
    assert!((boost - 1.1).abs() < 1e-6, "{boost}");
    // Ratings survive a restart.
    let data_dir = host.data_dir.clone();
    host.stop().await;
    let host = Host::start(&data_dir).await;
    let (_, view) = host.get("/v1/capabilities/pii-redactor.redact", None).await;
    assert_eq!(view["reputation"]["rating"], 5.0);
    let _ = ADMIN_TOKEN;
    host.stop().await;
}

#[tokio::test]
async fn a_component_that_implements_the_negotiator_world_answers_for_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, provider, consumer) = market(dir.path()).await;
    host.publish(&provider, "vendor-compliance").await;
    // Its code (not its manifest) says: evidence kept less than 30 days costs
    // at least 40,000 a call, and contracts run at most a week.
    let (status, answer) = propose(
        &host,
        &consumer,
        "vendor-compliance.check-vendor",
        json!({ "max_price_micros": 30_000, "retention": "24h", "validity_ms": 30 * 86_400_000u64 }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let negotiation = &answer["negotiation"];
    assert_eq!(negotiation["status"], "countered", "{answer}");
    assert_eq!(negotiation["counter"]["max_price_micros"], 40_000);
    assert_eq!(negotiation["counter"]["validity_ms"], 7 * 86_400_000u64);
    assert_eq!(negotiation["reasons"].as_array().map(Vec::len), Some(2));
    let (status, accepted) = respond(
        &host,
        &consumer,
        &negotiation["negotiation_id"],
        json!({ "action": "accept" }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    let terms = &accepted["contract"]["terms"];
    // Shorter retention than the manifest's 30 days: the provider's code agreed to it.
    assert_eq!(
        (
            terms["retention"].clone(),
            terms["max_price_micros"].clone()
        ),
        (json!("24h"), json!(40_000))
    );
    // The host's hard limits still hold: a jurisdiction the manifest does not list.
    let (_, answer) = propose(
        &host,
        &consumer,
        "vendor-compliance.check-vendor",
        json!({ "max_price_micros": 50_000, "jurisdiction": "CN", "validity_ms": 60_000 }),
    )
    .await;
    assert_eq!(answer["negotiation"]["status"], "rejected");
    host.stop().await;
}

#[tokio::test]
async fn an_expired_offer_cannot_be_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    // Offers lapse the moment they are made.
    config.offer_ms = 0;
    let host = Host::start_with(config).await;
    let provider = host.org("provider").await;
    let consumer = host.org("consumer").await;
    host.publish(&provider, "pii-redactor").await;
    let (_, answer) = propose(
        &host,
        &consumer,
        "pii-redactor.redact",
        json!({ "max_price_micros": 10, "validity_ms": 60_000 }),
    )
    .await;
    assert_eq!(answer["negotiation"]["status"], "countered");
    let id = &answer["negotiation"]["negotiation_id"];
    let (status, body) = respond(&host, &consumer, id, json!({ "action": "accept" })).await;
    assert_error(status, &body, StatusCode::CONFLICT, "negotiation_closed");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("expired")),
        "{body}"
    );
    let (_, negotiation) = host
        .get(
            &format!("/v1/negotiations/{}", id.as_str().expect("id")),
            Some(&consumer.api_key),
        )
        .await;
    assert_eq!(negotiation["status"], "closed");
    host.stop().await;
}

#[tokio::test]
async fn under_a_no_retention_contract_an_idempotent_replay_keeps_no_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, _provider, consumer) = market(dir.path()).await;
    let (_, answer) = propose(
        &host,
        &consumer,
        "pii-redactor.redact",
        json!({ "max_price_micros": 5_000, "retention": "none", "validity_ms": 3_600_000 }),
    )
    .await;
    let contract = answer["contract"]["contract_id"]
        .as_str()
        .expect("contract");
    let send = || async {
        let response = host
            .http
            .post(format!(
                "{}/v1/capabilities/pii-redactor.redact/invoke",
                host.url
            ))
            .bearer_auth(&consumer.api_key)
            .header("Idempotency-Key", "secret-call")
            .json(&json!({ "input": { "text": "Mail jo@example.com" }, "contract_id": contract }))
            .send()
            .await
            .expect("call");
        response.json::<Value>().await.expect("json")
    };
    let first = send().await;
    assert_eq!(first["output"]["redacted"], "Mail [EMAIL]");
    let replay = send().await;
    assert_eq!(
        replay["transaction_id"], first["transaction_id"],
        "the same call, not charged again"
    );
    assert_eq!(
        replay["output"],
        Value::Null,
        "the output never reached the disk"
    );
    assert_eq!(replay["output_withheld"], true);
    host.stop().await;
}
