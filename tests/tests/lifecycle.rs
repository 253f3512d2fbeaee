//! Publishing rules, versions, ownership, and what survives a restart.

use mercato_tests::{Host, assert_error, component, manifest};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The unit converter as another version: the version string lives in the
/// component's data segment, so swapping it (same length) gives a valid
/// component that describes itself as that version.
fn unit_converter_as(version: &str) -> Vec<u8> {
    let mut wasm = component("unit-converter");
    let needle = b"1.0.0";
    let at: Vec<usize> = wasm
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(at.len(), 1, "expected the version string exactly once");
    wasm[at[0]..at[0] + needle.len()].copy_from_slice(version.as_bytes());
    wasm
}

#[tokio::test]
async fn versions_go_up_ids_pin_them_and_unpinned_means_latest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let org = host.org("units-ltd").await;
    host.publish(&org, "unit-converter").await;

    // The same component again is idempotent; other terms for the same version are not.
    let (status, body) = host
        .upload(
            &org,
            component("unit-converter"),
            manifest("unit-converter"),
        )
        .await;
    assert_eq!(
        (status, body["created"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{body}"
    );
    let repriced = manifest("unit-converter").replacen("price_micros = 0", "price_micros = 5", 1);
    let (status, body) = host
        .upload(&org, component("unit-converter"), repriced)
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "version_exists");

    let (status, body) = host
        .upload(&org, unit_converter_as("1.1.0"), manifest("unit-converter"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["version"], "1.1.0");

    let (_, latest) = host
        .get("/v1/capabilities/unit-converter.convert", None)
        .await;
    assert_eq!(
        latest["pinned_id"], "unit-converter.convert@1.1.0",
        "{latest}"
    );
    let (status, pinned) = host
        .get("/v1/capabilities/unit-converter.convert@1.0.0", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(pinned["version"], "1.0.0");
    let input = json!({ "value": 2, "from": "h", "to": "min" });
    let (status, old) = host
        .invoke(
            &org.api_key,
            "unit-converter.convert@1.0.0",
            input.clone(),
            None,
        )
        .await;
    assert_eq!(
        (status, old["capability_id"].as_str()),
        (StatusCode::OK, Some("unit-converter.convert@1.0.0"))
    );
    let (_, new) = host
        .invoke(&org.api_key, "unit-converter.convert", input, None)
        .await;
    assert_eq!(new["capability_id"], "unit-converter.convert@1.1.0");
    assert_eq!(new["output"]["value"], 120.0);

    // Going back down is refused.
    let (status, body) = host
        .upload(&org, unit_converter_as("0.9.0"), manifest("unit-converter"))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "version_not_newer");
    assert_eq!(body["error"]["details"]["latest"], "1.1.0");
    let (_, list) = host.get("/v1/capabilities", None).await;
    assert!(
        list.as_array()
            .into_iter()
            .flatten()
            .all(|c| c["version"] == "1.1.0"),
        "{list}"
    );
    for missing in [
        "unit-converter.convert@9.9.9",
        "unit-converter.nope",
        "no-such.thing",
        "bad id",
    ] {
        let (status, body) = host.get(&format!("/v1/capabilities/{missing}"), None).await;
        assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    host.stop().await;
}

#[tokio::test]
async fn another_org_cannot_overwrite_your_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let owner = host.org("owner").await;
    let thief = host.org("thief").await;
    host.publish(&owner, "unit-converter").await;
    let (status, body) = host
        .upload(
            &thief,
            unit_converter_as("1.1.0"),
            manifest("unit-converter"),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "not_owner");
    let (_, listed) = host
        .get("/v1/capabilities/unit-converter.convert", None)
        .await;
    assert_eq!(
        (
            listed["version"].as_str(),
            listed["provider_org_id"].as_str()
        ),
        (Some("1.0.0"), Some(owner.org_id.as_str()))
    );
    // Without a key nothing is published at all.
    let response = host
        .http
        .post(format!("{}/v1/components", host.url))
        .multipart(reqwest::multipart::Form::new().text("manifest", manifest("unit-converter")))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    host.stop().await;
}

#[tokio::test]
async fn a_restart_keeps_everything_and_does_not_recompile() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let org = host.org("durable").await;
    for agent in ["pii-redactor", "unit-converter", "summarizer"] {
        host.publish(&org, agent).await;
    }
    assert_eq!(
        host.metric("mercato_component_compilations_total").await,
        3.0
    );
    let (status, call) = host
        .invoke(
            &org.api_key,
            "unit-converter.convert",
            json!({ "value": 3, "from": "ft", "to": "m" }),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{call}");
    let tx = call["transaction_id"].as_str().expect("tx").to_string();
    let (_, before) = host.get("/v1/capabilities", None).await;
    host.stop().await;

    let host = Host::start(dir.path()).await;
    let (_, after) = host.get("/v1/capabilities", None).await;
    let strip = |v: &serde_json::Value| {
        let mut v = v.clone();
        for c in v.as_array_mut().into_iter().flatten() {
            c["stats"] = serde_json::Value::Null;
        }
        v
    };
    assert_eq!(strip(&before), strip(&after));
    assert_eq!(
        host.metric("mercato_component_compilations_total").await,
        0.0,
        "a restart recompiled"
    );
    assert_eq!(host.metric("mercato_artifact_loads_total").await, 3.0);
    let (status, record) = host
        .get(&format!("/v1/transactions/{tx}"), Some(&org.api_key))
        .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(record["fuel_used"], call["fuel_used"]);
    assert_eq!(record["cost_micros"], call["cost_micros"]);
    // The organisation's key still works, and the listing still runs.
    let (status, again) = host
        .invoke(
            &org.api_key,
            "unit-converter.convert",
            json!({ "value": 3, "from": "ft", "to": "m" }),
            None,
        )
        .await;
    assert_eq!(
        (status, &again["output"]),
        (StatusCode::OK, &call["output"])
    );
    let (_, stats) = host
        .get("/v1/capabilities/unit-converter.convert", None)
        .await;
    assert_eq!(
        stats["stats"]["successes"], 2,
        "statistics are rebuilt from the records"
    );
    host.stop().await;
}

#[tokio::test]
async fn uploads_with_bad_manifests_store_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let org = host.org("o").await;
    // Manifests that do not parse are refused before anything is compiled.
    for bad in [
        manifest("unit-converter").replace("price_micros = 0", "price_micros = -1"),
        manifest("unit-converter").replace("uptime = 0.999", "uptime = 2"),
        "not toml at all [[[".to_string(),
    ] {
        let (status, body) = host.upload(&org, component("unit-converter"), bad).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_manifest");
    }
    assert_eq!(
        host.metric("mercato_component_compilations_total").await,
        0.0,
        "refused before compiling"
    );
    // Manifests that disagree with the component are refused after describe().
    for bad in [
        manifest("unit-converter").replace("[capabilities.list-units]", "[capabilities.other]"),
        manifest("pii-redactor"),
    ] {
        let (status, body) = host.upload(&org, component("unit-converter"), bad).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_manifest");
    }
    let (_, list) = host.get("/v1/capabilities", None).await;
    assert_eq!(list, json!([]));
    host.stop().await;
    // Nothing of the refused uploads survives a restart either.
    let host = Host::start(dir.path()).await;
    let (_, list) = host.get("/v1/capabilities", None).await;
    assert_eq!(list, json!([]));
    host.stop().await;
}

#[tokio::test]
async fn the_catalog_is_listed_a_page_at_a_time_in_one_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let org = host.org("provider").await;
    for agent in ["unit-converter", "pii-redactor", "summarizer"] {
        host.publish(&org, agent).await;
    }
    let (_, all) = host.get("/v1/capabilities", None).await;
    let all: Vec<Value> = all.as_array().expect("a list").clone();
    assert!(all.len() >= 4, "{all:?}");
    let mut paged = Vec::new();
    for offset in (0..all.len() + 2).step_by(2) {
        let (status, page) = host
            .get(&format!("/v1/capabilities?offset={offset}&limit=2"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let page = page.as_array().expect("a page").clone();
        assert!(page.len() <= 2);
        paged.extend(page);
    }
    assert_eq!(paged, all, "the pages, in order, are the whole list");
    for bad in ["limit=0", "offset=-1", "limit=many"] {
        let (status, body) = host.get(&format!("/v1/capabilities?{bad}"), None).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    }
    host.stop().await;
}

/// The transactions the account page lists (newest first), with `query`.
async fn listed(host: &Host, cookie: &str, query: &str) -> Vec<String> {
    let page = reqwest::Client::new()
        .get(format!("{}/account{query}", host.url))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await
        .expect("account page")
        .text()
        .await
        .expect("page");
    page.split("href=\"/transactions/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .filter(|tx| tx.starts_with("tx_"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_consumers_calls_are_listed_newest_first_at_once_and_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let org = host.org("lister").await;
    host.publish_unthrottled(&org, "unit-converter").await;
    let mut calls = Vec::new();
    for n in 0..30 {
        let (status, call) = host
            .invoke(
                &org.api_key,
                "unit-converter.convert",
                json!({ "value": n, "from": "ft", "to": "m" }),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{call}");
        calls.push(call["transaction_id"].as_str().expect("tx").to_string());
    }
    calls.reverse();
    // Every call is listed as soon as it is answered, whether or not the
    // index has been written yet, a page of 20 and then the rest.
    let cookie = host.session(&org.api_key).await;
    let first = listed(&host, &cookie, "").await;
    assert_eq!(first, calls[..20]);
    let rest = listed(&host, &cookie, &format!("?before={}", calls[19])).await;
    assert_eq!(rest, calls[20..]);
    host.stop().await;

    // Closing wrote what waited: the listing is the same after a restart.
    let host = Host::start(dir.path()).await;
    let cookie = host.session(&org.api_key).await;
    assert_eq!(listed(&host, &cookie, "").await, calls[..20]);
    let rest = listed(&host, &cookie, &format!("?before={}", calls[19])).await;
    assert_eq!(rest, calls[20..]);
    host.stop().await;
}
