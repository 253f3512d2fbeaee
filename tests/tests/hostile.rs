//! Hostile agents: each attack ends in its own error code, nothing is charged
//! (except what the consumer asked for: running out of the fuel its own cap
//! bought, or of time while the guest computed, charged for the fuel burned
//! as documented), and the host goes on serving the next request.

use mercato_tests::{Host, Org, assert_error, component, sample_file, test_config};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn hostile_host() -> (tempfile::TempDir, Host, Org) {
    let dir = tempfile::tempdir().expect("tempdir");
    // A fuel cap so high that a free infinite loop meets the deadline first.
    let mut config = test_config(dir.path());
    config.sandbox.fuel_per_call_max = 1_000_000_000_000;
    let host = Host::start_with(config).await;
    let org = host.org("mallory").await;
    // Without a cap a call holds what the whole fuel cap would cost (10^12
    // fuel at 1,000 micros per Mfuel, plus the fee): fund it.
    host.deposit(&org, 20_000_000_000).await;
    host.publish(&org, "hostile/misbehaver").await;
    host.publish(&org, "unit-converter").await;
    (dir, host, org)
}

/// The host still answers a real call correctly.
async fn assert_still_serving(host: &Host, org: &Org) {
    let (status, body) = host
        .invoke(
            &org.api_key,
            "unit-converter.convert",
            json!({ "value": 1, "from": "km", "to": "m" }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["output"]["value"], 1000.0);
}

/// The failed call was recorded and charged nothing (its hold voided), or,
/// when `paid` (the consumer's own limits ended it), charged what the fuel
/// it burned costs.
async fn assert_settled(host: &Host, org: &Org, body: &Value, code: &str, paid: bool) {
    let details = &body["error"]["details"];
    let tx = details["transaction_id"].as_str().expect("transaction id");
    let (status, record) = host
        .get(&format!("/v1/transactions/{tx}"), Some(&org.api_key))
        .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["outcome"], code);
    assert_eq!(
        record["charged_micros"], details["charged_micros"],
        "{body}"
    );
    if paid {
        let fuel_used = details["fuel_used"].as_u64().expect("fuel used");
        // spin: no price, 1,000 micros per Mfuel, a 1% fee (rounded up).
        let cost = fuel_used.div_ceil(1_000);
        assert_eq!(record["cost_micros"], cost, "{record}");
        assert_eq!(
            details["charged_micros"],
            cost + cost.div_ceil(100),
            "{body}"
        );
        assert_eq!(record["settlement"], "escrowed");
    } else {
        assert_eq!(details["charged_micros"], 0, "{body}");
        assert_eq!(record["cost_micros"], 0);
        assert!(
            record["settlement"] == "voided" || record["settlement"] == "free",
            "{record}"
        );
    }
    assert_eq!(
        host.balance(org).await["pending_micros"],
        0,
        "no hold is left"
    );
}

/// Whether the consumer pays for an attack's end.
const PAID: bool = true;
const FREE: bool = false;

async fn attack(
    capability: &str,
    max_price: Option<u64>,
    status: StatusCode,
    code: &str,
    paid: bool,
) -> Value {
    let (_dir, host, org) = hostile_host().await;
    let (got, body) = host
        .invoke(
            &org.api_key,
            &format!("misbehaver.{capability}"),
            json!({}),
            max_price,
        )
        .await;
    assert_error(got, &body, status, code);
    assert_settled(&host, &org, &body, code, paid).await;
    assert_still_serving(&host, &org).await;
    host.stop().await;
    body
}

#[tokio::test]
async fn infinite_loop_with_a_price_cap_runs_out_of_fuel() {
    // spin costs 1000 micros per Mfuel and the fee is 1%: a cap of 1000 micros
    // leaves 990 for the cost, which buys 990,000 fuel; all of it burns and
    // is charged (990 + 10 fee).
    let body = attack(
        "spin",
        Some(1_000),
        StatusCode::PAYMENT_REQUIRED,
        "fuel_exhausted",
        PAID,
    )
    .await;
    assert_eq!(body["error"]["details"]["fuel_used"], 990_000);
    assert_eq!(body["error"]["details"]["charged_micros"], 1_000);
}

#[tokio::test]
async fn infinite_loop_without_a_cap_hits_the_deadline() {
    let body = attack(
        "spin",
        None,
        StatusCode::GATEWAY_TIMEOUT,
        "deadline_exceeded",
        PAID,
    )
    .await;
    assert_eq!(body["error"]["details"]["deadline_ms"], 1_000);
    // The guest computed for the whole second: the fuel it burned is paid for.
    assert!(
        body["error"]["details"]["fuel_used"].as_u64() > Some(1_000_000),
        "{body}"
    );
}

#[tokio::test]
async fn sleeping_in_a_host_call_hits_the_deadline() {
    attack(
        "sleep",
        None,
        StatusCode::GATEWAY_TIMEOUT,
        "deadline_exceeded",
        FREE,
    )
    .await;
}

#[tokio::test]
async fn memory_bomb_hits_the_memory_limit() {
    let body = attack(
        "hog-memory",
        None,
        StatusCode::BAD_GATEWAY,
        "memory_limit",
        FREE,
    )
    .await;
    assert_eq!(body["error"]["details"]["memory_bytes_max"], 64 << 20);
}

#[tokio::test]
async fn deep_recursion_overflows_the_stack() {
    let body = attack(
        "recurse",
        None,
        StatusCode::BAD_GATEWAY,
        "guest_trapped",
        FREE,
    )
    .await;
    assert_eq!(body["error"]["details"]["trap"], "stack_overflow");
}

#[tokio::test]
async fn panic_is_a_trap() {
    let body = attack(
        "panic",
        None,
        StatusCode::BAD_GATEWAY,
        "guest_trapped",
        FREE,
    )
    .await;
    assert_eq!(body["error"]["details"]["trap"], "unreachable");
}

#[tokio::test]
async fn streaming_hundreds_of_megabytes_is_cut_off() {
    let body = attack(
        "flood",
        None,
        StatusCode::BAD_GATEWAY,
        "output_too_large",
        FREE,
    )
    .await;
    assert_eq!(body["error"]["details"]["bytes_max"], 4 << 20);
}

#[tokio::test]
async fn a_huge_output_is_refused() {
    let body = attack(
        "big-output",
        None,
        StatusCode::BAD_GATEWAY,
        "output_too_large",
        FREE,
    )
    .await;
    assert_eq!(body["error"]["details"]["bytes_max"], 1 << 20);
}

#[tokio::test]
async fn output_breaking_the_declared_schema_is_refused() {
    let body = attack(
        "lie",
        None,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_output",
        FREE,
    )
    .await;
    let violations = body["error"]["details"]["violations"]
        .as_array()
        .expect("violations");
    assert!(
        violations
            .iter()
            .any(|v| v["message"].as_str().is_some_and(|m| m.contains("words"))),
        "{body}"
    );
}

#[tokio::test]
async fn a_component_importing_the_filesystem_is_refused_at_upload() {
    let (_dir, host, org) = hostile_host().await;
    let (status, body) = host
        .upload(
            &org,
            component("fs-reader"),
            mercato_tests::manifest("hostile/fs-reader"),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "forbidden_imports");
    let imports = body["error"]["details"]["imports"]
        .as_array()
        .expect("imports");
    assert!(
        imports.iter().any(|i| i
            .as_str()
            .is_some_and(|i| i.starts_with("wasi:filesystem/"))),
        "{body}"
    );
    assert!(
        host.get("/v1/capabilities/fs-reader.read-file", None)
            .await
            .0
            == StatusCode::NOT_FOUND
    );
    assert_still_serving(&host, &org).await;
    host.stop().await;
}

#[tokio::test]
async fn bytes_that_are_not_a_component_are_refused_at_upload() {
    let (_dir, host, org) = hostile_host().await;
    let core_module = b"\0asm\x01\0\0\0".to_vec();
    for wasm in [
        sample_file("hostile/not-a-component.wasm"),
        core_module,
        Vec::new(),
    ] {
        let (status, body) = host
            .upload(&org, wasm, mercato_tests::manifest("unit-converter"))
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_component");
    }
    // Over the upload limit (16 MiB by default): refused before it is read whole.
    let (status, body) = host
        .upload(
            &org,
            vec![0u8; 17 << 20],
            mercato_tests::manifest("unit-converter"),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "component_too_large",
    );
    assert_still_serving(&host, &org).await;
    host.stop().await;
}
