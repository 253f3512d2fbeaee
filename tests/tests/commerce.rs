//! Settlement over real HTTP: holds, capture into escrow with the fee,
//! payout after the dispute window, receipts, budgets, disputes and
//! idempotency, and money conserved under concurrency.

use mercato_host::identity::{KeySet, signing};
use mercato_tests::{ADMIN_TOKEN, Host, Org, STARTING_BALANCE_MICROS, assert_error, test_config};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;

/// A host whose escrow is released only when a test calls [`sweep`], after a
/// dispute window of `window_ms`.
async fn money_host(dir: &Path, window_ms: u64) -> Host {
    let mut config = test_config(dir);
    config.dispute_window_ms = window_ms;
    config.settlement_tick_ms = 3_600_000;
    // The tests' webhook receivers listen on loopback.
    config.webhook_allowed_hosts = vec!["127.0.0.1".into()];
    Host::start_with(config).await
}

async fn sweep(host: &Host) {
    host.server().market().sweep().await.expect("sweep");
}

async fn audit(host: &Host) -> Value {
    let (status, body) = host.get("/v1/admin/ledger", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["problem"], Value::Null, "{body}");
    let sum = body["organisations_micros"].as_u64().unwrap_or(0)
        + body["escrow_micros"].as_u64().unwrap_or(0)
        + body["fees_micros"].as_u64().unwrap_or(0);
    assert_eq!(
        Some(sum),
        body["deposited_micros"].as_u64(),
        "not conserved: {body}"
    );
    body
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

async fn redact(host: &Host, org: &Org, cap: Option<u64>) -> (StatusCode, Value) {
    host.invoke(
        &org.api_key,
        "pii-redactor.redact",
        json!({ "text": "Mail jo@example.com today." }),
        cap,
    )
    .await
}

#[tokio::test]
async fn a_paid_call_is_held_captured_into_escrow_and_paid_out_when_the_window_closes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = money_host(dir.path(), 0).await;
    let provider = host.org("provider").await;
    let consumer = host.org("consumer").await;
    host.publish(&provider, "pii-redactor").await;

    let (status, call) = redact(&host, &consumer, Some(50_000)).await;
    assert_eq!(status, StatusCode::OK, "{call}");
    let (cost, fee, charged) = (
        u(&call["cost_micros"]),
        u(&call["fee_micros"]),
        u(&call["charged_micros"]),
    );
    assert_eq!(fee, cost.div_ceil(100), "1% fee, rounded up");
    assert_eq!(charged, cost + fee);

    // Charged, not yet paid out: it waits in escrow.
    let balance = host.balance(&consumer).await;
    assert_eq!(
        u(&balance["available_micros"]),
        STARTING_BALANCE_MICROS - charged
    );
    assert_eq!(u(&balance["escrowed_out_micros"]), charged);
    assert_eq!(
        u(&balance["pending_micros"]),
        0,
        "the rest of the hold was released"
    );
    let before = host.balance(&provider).await;
    assert_eq!(u(&before["escrowed_in_micros"]), cost);
    assert_eq!(u(&before["available_micros"]), STARTING_BALANCE_MICROS);
    assert_eq!(u(&audit(&host).await["escrow_micros"]), charged);

    // The window (0 ms here) closes: the provider is paid its cost, the fee goes to the market.
    sweep(&host).await;
    let after = host.balance(&provider).await;
    assert_eq!(
        u(&after["available_micros"]),
        STARTING_BALANCE_MICROS + cost
    );
    assert_eq!(u(&after["escrowed_in_micros"]), 0);
    let ledger = audit(&host).await;
    assert_eq!(
        (u(&ledger["escrow_micros"]), u(&ledger["fees_micros"])),
        (0, fee)
    );
    let tx = call["transaction_id"].as_str().expect("tx");
    let (_, record) = host
        .get(&format!("/v1/transactions/{tx}"), Some(&consumer.api_key))
        .await;
    assert_eq!(record["settlement"], "released");
    // Nothing moves twice: another sweep changes nothing.
    sweep(&host).await;
    assert_eq!(host.balance(&provider).await, after);

    // The receipt binds the component, the hashes, the fuel and the money,
    // and verifies with the published key.
    let receipt = &call["receipt"];
    let (_, view) = host.get("/v1/capabilities/pii-redactor.redact", None).await;
    assert_eq!(receipt["component_sha256"], view["component_sha256"]);
    assert_eq!(receipt["input_sha256"], record["input_sha256"]);
    assert_eq!(receipt["output_sha256"], record["output_sha256"]);
    assert_eq!(receipt["fuel_used"], call["fuel_used"]);
    assert_eq!(receipt["charged_micros"], charged);
    assert_eq!(&record["receipt"], receipt);
    let (_, keys) = host.get("/.well-known/mercato-keys.json", None).await;
    let keys: KeySet = serde_json::from_value(keys).expect("keys");
    let verifying = keys.verifying_keys();
    let verify = |doc: &Value| {
        signing::verify_document(doc, verifying.iter().map(|(id, k)| (id.as_str(), k)))
    };
    assert!(verify(receipt).is_ok());
    let mut forged = receipt.clone();
    forged["charged_micros"] = json!(charged - 1);
    assert!(verify(&forged).is_err());
    host.stop().await;
}

#[tokio::test]
async fn without_funds_nothing_runs_and_free_calls_move_no_money() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    // No background flush during the test: any sync is one a request asked for.
    config.background_flush_ms = 600_000;
    let host = Host::start_with(config).await;
    let provider = host.org("provider").await;
    host.publish(&provider, "pii-redactor").await;
    host.publish(&provider, "unit-converter").await;
    let broke = host.org_unverified("broke").await;

    let (status, body) = redact(&host, &broke, Some(5_000)).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYMENT_REQUIRED,
        "insufficient_funds",
    );
    assert_eq!(body["error"]["details"]["available_micros"], 0);
    assert_eq!(
        host.metric("mercato_invocations_total").await,
        0.0,
        "nothing ran"
    );

    // A free capability needs no funds and takes no disk sync on its path.
    let syncs = host.metric("mercato_store_syncs").await;
    for _ in 0..5 {
        let (status, body) = host
            .invoke(
                &broke.api_key,
                "unit-converter.convert",
                json!({ "value": 1, "from": "km", "to": "m" }),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            (u(&body["charged_micros"]), u(&body["cost_micros"])),
            (0, 0)
        );
    }
    assert_eq!(host.metric("mercato_store_syncs").await, syncs);
    let balance = host.balance(&broke).await;
    assert_eq!(u(&balance["available_micros"]), 0);
    // A paid call does sync (the charge is on disk before the answer).
    let buyer = host.org("buyer").await;
    let syncs = host.metric("mercato_store_syncs").await;
    let (status, _) = redact(&host, &buyer, Some(50_000)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(host.metric("mercato_store_syncs").await > syncs);
    audit(&host).await;
    host.stop().await;
}

#[tokio::test]
async fn a_person_pauses_a_consumers_calls_in_its_budget_and_nothing_is_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = money_host(dir.path(), 3_600_000).await;
    let provider = host.org("provider").await;
    let consumer = host.org("consumer").await;
    host.publish(&provider, "pii-redactor").await;
    let (status, body) = host
        .put_budget(
            &consumer,
            json!({ "per_call_max_micros": 3_000, "paused": true }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["paused"], true);
    let before = host.balance(&consumer).await;
    let (status, body) = redact(&host, &consumer, Some(2_500)).await;
    assert_error(status, &body, StatusCode::PAYMENT_REQUIRED, "budget_paused");
    let after = host.balance(&consumer).await;
    assert_eq!(after["available_micros"], before["available_micros"]);
    assert_eq!(after["pending_micros"], 0);
    // A budget without the pause lets calls run again.
    let (status, body) = host
        .put_budget(&consumer, json!({ "per_call_max_micros": 3_000 }))
        .await;
    assert_eq!(
        (status, &body["paused"]),
        (StatusCode::OK, &json!(false)),
        "{body}"
    );
    let (status, body) = redact(&host, &consumer, Some(2_500)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    audit(&host).await;
    host.stop().await;
}

#[tokio::test]
async fn budgets_cap_each_call_and_pause_a_consumer_for_the_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = money_host(dir.path(), 3_600_000).await;
    let provider = host.org("provider").await;
    let consumer = host.org("consumer").await;
    host.publish(&provider, "pii-redactor").await;
    let put = |budget: Value| host.put_budget(&consumer, budget);
    let (status, body) = put(json!({ "per_call_max_micros": 0 })).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    let (status, body) =
        put(json!({ "per_call_max_micros": 3_000, "daily_max_micros": 5_000 })).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A cap above the per-call limit is refused before anything runs.
    let (status, body) = redact(&host, &consumer, Some(50_000)).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYMENT_REQUIRED,
        "budget_exceeded",
    );
    // Without a cap, the per-call limit is the cap.
    let (status, first) = redact(&host, &consumer, None).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert!(u(&first["charged_micros"]) <= 3_000);
    // Spent + this hold would pass the daily limit: paused, nothing runs.
    let (status, body) = redact(&host, &consumer, None).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYMENT_REQUIRED,
        "budget_exhausted",
    );
    let balance = host.balance(&consumer).await;
    assert_eq!(balance["paused"], true);
    assert_eq!(
        u(&balance["spent_today_micros"]),
        u(&first["charged_micros"])
    );
    // Even a call that would fit stays paused...
    let (status, body) = redact(&host, &consumer, Some(2_100)).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYMENT_REQUIRED,
        "budget_exhausted",
    );
    // ...until the budget is raised.
    let (status, _) =
        put(json!({ "per_call_max_micros": 3_000, "daily_max_micros": 50_000 })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(host.balance(&consumer).await["paused"], false);
    let (status, body) = redact(&host, &consumer, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    audit(&host).await;
    host.stop().await;
}

#[tokio::test]
async fn a_dispute_refunds_a_provider_fault_at_once_and_waits_for_an_admin_otherwise() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = money_host(dir.path(), 3_600_000).await;
    let provider = host.org("provider").await;
    let consumer = host.org("consumer").await;
    host.publish(&provider, "pii-redactor").await;
    host.publish(&provider, "hostile/misbehaver").await;

    // drift answers differently every time while claiming determinism.
    let (status, call) = host
        .invoke(
            &consumer.api_key,
            "misbehaver.drift",
            json!({}),
            Some(10_000),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{call}");
    let tx = call["transaction_id"].as_str().expect("tx");
    let path = format!("/v1/transactions/{tx}/dispute");
    let (status, body) = host
        .post(
            &path,
            Some(&consumer.api_key),
            json!({ "input": { "other": 1 } }),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    let (status, body) = host
        .post(&path, Some(&provider.api_key), json!({ "input": {} }))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let before = host.balance(&consumer).await;
    let (status, dispute) = host
        .post(
            &path,
            Some(&consumer.api_key),
            json!({ "input": {}, "reason": "wrong number" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{dispute}");
    assert_eq!(dispute["status"], "refunded");
    assert_eq!(dispute["rerun"]["provider_fault"], true);
    assert_eq!(dispute["rerun"]["same_output"], false);
    let after = host.balance(&consumer).await;
    assert_eq!(
        u(&after["available_micros"]),
        u(&before["available_micros"]) + u(&call["charged_micros"])
    );
    let (status, body) = host
        .post(&path, Some(&consumer.api_key), json!({ "input": {} }))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "dispute_exists");

    // A correct answer disputed anyway: held for review, then decided.
    let input = json!({ "text": "Mail jo@example.com today." });
    let (_, call) = redact(&host, &consumer, Some(50_000)).await;
    let tx = call["transaction_id"].as_str().expect("tx");
    let (status, dispute) = host
        .post(
            &format!("/v1/transactions/{tx}/dispute"),
            Some(&consumer.api_key),
            json!({ "input": input, "reason": "I expected more" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{dispute}");
    assert_eq!(dispute["status"], "pending_review");
    assert_eq!(dispute["rerun"]["same_output"], true);
    let decide = format!("/v1/transactions/{tx}/dispute/decision");
    let (status, body) = host
        .post(
            &decide,
            Some(&consumer.api_key),
            json!({ "decision": "refund" }),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let charged = u(&call["charged_micros"]);
    let (status, body) = host
        .post(
            &decide,
            Some(ADMIN_TOKEN),
            json!({ "decision": "partial", "refund_micros": charged + 1 }),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    let consumer_before = host.balance(&consumer).await;
    let provider_before = host.balance(&provider).await;
    let (status, decided) = host
        .post(
            &decide,
            Some(ADMIN_TOKEN),
            json!({ "decision": "partial", "refund_micros": 1_000 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    assert_eq!(decided["status"], "partial");
    assert_eq!(
        u(&host.balance(&consumer).await["available_micros"]),
        u(&consumer_before["available_micros"]) + 1_000
    );
    // The rest is paid out at once: the fee first, the provider the remainder.
    let fee = u(&call["fee_micros"]);
    assert_eq!(
        u(&host.balance(&provider).await["available_micros"]),
        u(&provider_before["available_micros"]) + (charged - 1_000 - fee)
    );
    let (status, body) = host
        .post(&decide, Some(ADMIN_TOKEN), json!({ "decision": "reject" }))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "no_pending_dispute");
    audit(&host).await;
    host.stop().await;
}

#[tokio::test]
async fn a_dispute_after_the_window_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = money_host(dir.path(), 0).await;
    let provider = host.org("provider").await;
    let consumer = host.org("consumer").await;
    host.publish(&provider, "pii-redactor").await;
    let (_, call) = redact(&host, &consumer, Some(50_000)).await;
    sweep(&host).await;
    let tx = call["transaction_id"].as_str().expect("tx");
    let (status, body) = host
        .post(
            &format!("/v1/transactions/{tx}/dispute"),
            Some(&consumer.api_key),
            json!({ "input": { "text": "Mail jo@example.com today." } }),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "not_in_escrow");
    host.stop().await;
}

async fn post_with_key(
    host: &Host,
    path: &str,
    bearer: &str,
    key: &str,
    body: Value,
) -> (StatusCode, Value) {
    let response = host
        .http
        .post(format!("{}{path}", host.url))
        .bearer_auth(bearer)
        .header("Idempotency-Key", key)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_never_charges_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = money_host(dir.path(), 3_600_000).await;
    let provider = host.org("provider").await;
    let consumer = host.org("consumer").await;
    host.publish(&provider, "pii-redactor").await;
    let path = "/v1/capabilities/pii-redactor.redact/invoke";
    let body =
        json!({ "input": { "text": "Mail jo@example.com today." }, "max_price_micros": 50_000 });
    let (status, first) =
        post_with_key(&host, path, &consumer.api_key, "order-1", body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (status, again) =
        post_with_key(&host, path, &consumer.api_key, "order-1", body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, first, "the first answer, replayed");
    let charged = u(&first["charged_micros"]);
    assert_eq!(
        u(&host.balance(&consumer).await["available_micros"]),
        STARTING_BALANCE_MICROS - charged,
        "charged once"
    );
    let mut other = body.clone();
    other["max_price_micros"] = json!(60_000);
    let (status, conflict) = post_with_key(&host, path, &consumer.api_key, "order-1", other).await;
    assert_error(
        status,
        &conflict,
        StatusCode::UNPROCESSABLE_ENTITY,
        "idempotency_conflict",
    );
    // Keys are per caller: another consumer's "order-1" is its own.
    let (status, theirs) =
        post_with_key(&host, path, &provider.api_key, "order-1", body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(theirs["transaction_id"], first["transaction_id"]);

    // Deposits: the same key credits once, also across a restart.
    let deposit = format!("/v1/accounts/{}/deposits", consumer.org_id);
    let amount = json!({ "amount_micros": 7 });
    let (status, credited) =
        post_with_key(&host, &deposit, ADMIN_TOKEN, "dep-1", amount.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{credited}");
    let data_dir = host.data_dir.clone();
    host.stop().await;
    let host = money_host(&data_dir, 3_600_000).await;
    let (status, replayed) = post_with_key(&host, &deposit, ADMIN_TOKEN, "dep-1", amount).await;
    assert_eq!((status, &replayed), (StatusCode::CREATED, &credited));
    assert_eq!(
        u(&host.balance(&consumer).await["available_micros"]),
        STARTING_BALANCE_MICROS - charged + 7
    );
    // With its idempotency record gone (purged after 24 h), the same deposit
    // id is refused by the ledger, as a conflict: never credited twice.
    let refused = host
        .server()
        .market()
        .deposit(&consumer.org_id, 7, "dep-1")
        .await
        .expect_err("a second credit under one deposit id");
    assert_eq!(refused.code(), "transfer_exists");
    assert_eq!(
        u(&host.balance(&consumer).await["available_micros"]),
        STARTING_BALANCE_MICROS - charged + 7
    );
    audit(&host).await;
    host.stop().await;
}

/// Several consumers call at once; afterwards every balance is exactly what
/// its receipts say, and the books balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_calls_leave_every_balance_equal_to_its_receipts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = money_host(dir.path(), 3_600_000).await;
    let provider = host.org("provider").await;
    host.publish(&provider, "pii-redactor").await;
    let mut consumers = Vec::new();
    for i in 0..5 {
        consumers.push(host.org(&format!("consumer-{i}")).await);
    }
    let calls = futures::stream::iter((0..500).map(|i| {
        let consumer = consumers[i % consumers.len()].clone();
        let host = &host;
        async move {
            let (status, body) = host
                .invoke(
                    &consumer.api_key,
                    "pii-redactor.redact",
                    json!({ "text": format!("call {i}: write to jo{i}@example.com") }),
                    Some(50_000),
                )
                .await;
            (consumer.org_id, status, body)
        }
    }));
    use futures::StreamExt;
    let results: Vec<(String, StatusCode, Value)> = calls.buffer_unordered(64).collect().await;
    let mut paid: std::collections::HashMap<String, u64> = Default::default();
    let mut earned = 0u64;
    let mut fees = 0u64;
    for (org, status, body) in &results {
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["receipt"]["charged_micros"], body["charged_micros"]);
        *paid.entry(org.clone()).or_default() += u(&body["charged_micros"]);
        earned += u(&body["cost_micros"]);
        fees += u(&body["fee_micros"]);
    }
    for consumer in &consumers {
        let balance = host.balance(consumer).await;
        let spent = paid[&consumer.org_id];
        assert_eq!(
            u(&balance["available_micros"]),
            STARTING_BALANCE_MICROS - spent
        );
        assert_eq!(u(&balance["escrowed_out_micros"]), spent);
        assert_eq!(u(&balance["pending_micros"]), 0);
    }
    assert_eq!(
        u(&host.balance(&provider).await["escrowed_in_micros"]),
        earned
    );
    let ledger = audit(&host).await;
    assert_eq!(u(&ledger["escrow_micros"]), earned + fees);
    let api_keys = consumers
        .iter()
        .map(|c| (c.org_id.clone(), c.api_key.clone()))
        .collect();
    receipts_verify_offline(&host, dir.path(), &api_keys, &results).await;
    // And the same after a restart (the journal replays to the same books).
    let data_dir = host.data_dir.clone();
    host.stop().await;
    let host = money_host(&data_dir, 3_600_000).await;
    assert_eq!(audit(&host).await, ledger);
    host.stop().await;
}

/// Every receipt of calls that ended together verifies against the
/// published keys alone, as its record keeps it; many share one signature
/// (each with its inclusion proof), and `mercato verify` checks those and
/// the lone ones offline.
async fn receipts_verify_offline(
    host: &Host,
    dir: &Path,
    api_keys: &std::collections::HashMap<String, String>,
    results: &[(String, StatusCode, Value)],
) {
    let (status, keys) = host.get("/.well-known/mercato-keys.json", None).await;
    assert_eq!(status, StatusCode::OK);
    let key_file = dir.join("mercato-keys.json");
    std::fs::write(&key_file, keys.to_string()).expect("write keys");
    let keys: KeySet = serde_json::from_value(keys).expect("key set");
    let verifying = keys.verifying_keys();
    let verify = |receipt: &Value| {
        signing::verify_document(receipt, verifying.iter().map(|(id, k)| (id.as_str(), k)))
    };
    let (mut shared, mut alone) = (None, None);
    for (org_id, _, body) in results {
        let receipt = &body["receipt"];
        verify(receipt).unwrap_or_else(|e| panic!("{e}: {receipt}"));
        let mut forged = receipt.clone();
        forged["charged_micros"] = (u(&receipt["charged_micros"]) + 1).into();
        assert!(verify(&forged).is_err());
        let id = body["transaction_id"].as_str().expect("id");
        let (_, record) = host
            .get(&format!("/v1/transactions/{id}"), Some(&api_keys[org_id]))
            .await;
        assert_eq!(&record["receipt"], receipt, "{id}");
        match receipt["signature"].get("batch") {
            Some(_) => shared = Some(receipt.clone()),
            None => alone = Some(receipt.clone()),
        }
    }
    let shared = shared.expect("calls ending together share a signature");
    for receipt in [Some(shared), alone].into_iter().flatten() {
        let checked = mercato_verify(dir, &receipt, &key_file).await;
        assert!(
            checked.status.success(),
            "{}",
            String::from_utf8_lossy(&checked.stderr)
        );
        let mut forged = receipt.clone();
        forged["fuel_used"] = (u(&receipt["fuel_used"]) + 1).into();
        let checked = mercato_verify(dir, &forged, &key_file).await;
        assert!(
            !checked.status.success(),
            "a forged receipt verifies: {forged}"
        );
    }
}

/// `mercato verify` of `document` against the key set in `keys`, offline.
async fn mercato_verify(dir: &Path, document: &Value, keys: &Path) -> std::process::Output {
    let file = dir.join("document.json");
    std::fs::write(&file, document.to_string()).expect("write document");
    tokio::process::Command::new(env!("CARGO_BIN_EXE_mercato-under-test"))
        .arg("verify")
        .arg(&file)
        .arg("--keys")
        .arg(keys)
        .output()
        .await
        .expect("mercato verify runs")
}

#[tokio::test]
async fn calls_above_the_approval_threshold_wait_for_an_approver() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = money_host(dir.path(), 3_600_000).await;
    let provider = host.org("provider").await;
    let consumer = host.org("consumer").await;
    host.publish(&provider, "pii-redactor").await;
    let (status, _) = host
        .put_budget(&consumer, json!({ "approval_above_micros": 3_000 }))
        .await;
    assert_eq!(status, StatusCode::OK);

    // Small calls run; a call that may cost more waits.
    let (status, _) = redact(&host, &consumer, Some(2_500)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = redact(&host, &consumer, Some(50_000)).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYMENT_REQUIRED,
        "approval_required",
    );
    let approval_id = body["error"]["details"]["approval_id"]
        .as_str()
        .expect("id")
        .to_string();
    let (_, pending) = host.get("/v1/approvals", Some(&consumer.api_key)).await;
    assert_eq!(pending[0]["approval_id"], approval_id.as_str());
    assert_eq!(pending[0]["status"], "pending");

    // The agent's own key cannot approve; an approver token can.
    let decide = format!("/v1/approvals/{approval_id}");
    let (status, body) = host
        .post(
            &decide,
            Some(&consumer.api_key),
            json!({ "decision": "approve" }),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, approver) = host
        .post(
            &format!("/v1/orgs/{}/approvers", consumer.org_id),
            Some(&consumer.api_key),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{approver}");
    let token = approver["approver_token"].as_str().expect("token");
    let (status, approved) = host
        .post(&decide, Some(token), json!({ "decision": "approve" }))
        .await;
    assert_eq!(
        (status, &approved["status"]),
        (StatusCode::OK, &json!("approved"))
    );

    // The approved call, exactly as asked, runs once.
    let call = |input: Value| {
        let host = &host;
        let key = consumer.api_key.clone();
        let approval_id = approval_id.clone();
        async move {
            host.post(
                "/v1/capabilities/pii-redactor.redact/invoke",
                Some(&key),
                json!({ "input": input, "max_price_micros": 50_000, "approval_id": approval_id }),
            )
            .await
        }
    };
    let (status, body) = call(json!({ "text": "another text" })).await;
    assert_error(status, &body, StatusCode::CONFLICT, "approval_mismatch");
    let (status, body) = call(json!({ "text": "Mail jo@example.com today." })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(json!({ "text": "Mail jo@example.com today." })).await;
    assert_error(status, &body, StatusCode::CONFLICT, "approval_not_granted");

    // A rejected one never runs.
    let (_, body) = redact(&host, &consumer, Some(40_000)).await;
    let rejected = body["error"]["details"]["approval_id"]
        .as_str()
        .expect("id");
    let (status, _) = host
        .post(
            &format!("/v1/approvals/{rejected}"),
            Some(token),
            json!({ "decision": "reject" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = host
        .post(
            "/v1/capabilities/pii-redactor.redact/invoke",
            Some(&consumer.api_key),
            json!({ "input": { "text": "Mail jo@example.com today." }, "max_price_micros": 40_000, "approval_id": rejected }),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "approval_not_granted");
    assert_eq!(host.get("/v1/approvals", Some(token)).await.1, json!([]));
    host.stop().await;
}

#[tokio::test]
async fn budget_alerts_reach_the_feed_and_the_webhook_after_a_retry() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A webhook receiver on loopback that fails its first delivery.
    let attempts = Arc::new(AtomicUsize::new(0));
    let (received_tx, mut received) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let attempts = attempts.clone();
            move |axum::Json(event): axum::Json<Value>| {
                let attempts = attempts.clone();
                let received_tx = received_tx.clone();
                async move {
                    if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                        return axum::http::StatusCode::INTERNAL_SERVER_ERROR;
                    }
                    let _ = received_tx.send(event);
                    axum::http::StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().expect("tempdir");
    let host = money_host(dir.path(), 3_600_000).await;
    let provider = host.org("provider").await;
    let consumer = host.org("consumer").await;
    host.publish(&provider, "pii-redactor").await;
    let (status, body) = host
        .put_budget(&consumer, json!({ "alert_percents": [10] }))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    let (status, _) = host
        .put_budget(
            &consumer,
            json!({ "daily_max_micros": 10_000, "alert_percents": [10, 90], "webhook_url": hook }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // ~2,020 micros: past 10% of 10,000.
    let (status, _) = redact(&host, &consumer, Some(2_500)).await;
    assert_eq!(status, StatusCode::OK);
    let event = tokio::time::timeout(std::time::Duration::from_secs(10), received.recv())
        .await
        .expect("the webhook is called")
        .expect("an event");
    assert_eq!(
        (event["kind"].clone(), event["details"]["percent"].clone()),
        (json!("budget_alert"), json!(10))
    );
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        2,
        "delivered on the second attempt"
    );

    // Spend until paused: the feed has the alert and the pause.
    for _ in 0..5 {
        let (status, _) = redact(&host, &consumer, Some(2_500)).await;
        if status == StatusCode::PAYMENT_REQUIRED {
            break;
        }
    }
    let (_, events) = host
        .get("/v1/accounts/me/events", Some(&consumer.api_key))
        .await;
    let kinds: Vec<&str> = events
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds.first(), Some(&"budget_alert"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"budget_exhausted"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "budget_exhausted").count(),
        1,
        "one pause, one event"
    );
    host.stop().await;
}

#[tokio::test]
async fn a_calls_wall_time_is_kept_in_microseconds_beside_whole_milliseconds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = money_host(dir.path(), 3_600_000).await;
    let provider = host.org("provider").await;
    let consumer = host.org("consumer").await;
    host.publish(&provider, "pii-redactor").await;
    let mut micros = Vec::new();
    for _ in 0..3 {
        let (status, call) = redact(&host, &consumer, Some(50_000)).await;
        assert_eq!(status, StatusCode::OK, "{call}");
        let (us, ms) = (u(&call["duration_us"]), u(&call["duration_ms"]));
        // A real call takes some microseconds; its milliseconds are the
        // same time rounded down.
        assert!(us > 0, "{call}");
        assert_eq!(ms, us / 1_000, "{call}");
        // The record and the signed receipt carry the same figure.
        let tx = call["transaction_id"].as_str().expect("tx");
        let (_, record) = host
            .get(&format!("/v1/transactions/{tx}"), Some(&consumer.api_key))
            .await;
        assert_eq!(record["duration_us"], call["duration_us"], "{record}");
        assert_eq!(call["receipt"]["duration_us"], call["duration_us"]);
        let (_, keys) = host.get("/.well-known/mercato-keys.json", None).await;
        let keys: KeySet = serde_json::from_value(keys).expect("keys");
        let verifying = keys.verifying_keys();
        let verify = |doc: &Value| {
            signing::verify_document(doc, verifying.iter().map(|(id, k)| (id.as_str(), k)))
        };
        assert!(verify(&call["receipt"]).is_ok());
        let mut forged = call["receipt"].clone();
        forged["duration_us"] = json!(us + 1);
        assert!(verify(&forged).is_err(), "the time is signed");
        micros.push(us);
    }
    // The statistics quantiles are in microseconds too.
    micros.sort_unstable();
    let (_, view) = host.get("/v1/capabilities/pii-redactor.redact", None).await;
    let stats = &view["stats"];
    assert_eq!(u(&stats["duration_us_p50"]), micros[1], "{view}");
    assert_eq!(u(&stats["duration_ms_p50"]), micros[1] / 1_000, "{view}");
    host.stop().await;
}
