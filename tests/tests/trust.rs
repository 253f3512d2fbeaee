//! Trust over real HTTP: verified organisations, signed uploads, attestation
//! batteries with signed reports, `mercato attest`, re-attestation, and the
//! upgrade gate.

use mercato_host::attestation::junit;
use mercato_host::cli::attest_file;
use mercato_host::identity::{KeySet, signing};
use mercato_host::store::{Store, Tree};
use mercato_tests::{
    ADMIN_TOKEN, Host, assert_error, component, manifest, new_signing_key, public_key, test_config,
    upload_signature,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// A battery for the `games` category the pretender claims, written the way an
/// operator adds a category: a data file, no code.
const GAMES_BATTERY: &str = r#"
description = "Toys."

[[cases]]
name = "answers with an object"
input = {}
checks = [{ schema = { type = "object" } }]

[[cases]]
name = "takes two numbers"
input = { a = 1, b = 2 }
checks = [{ schema = { type = "object" } }]
"#;

async fn host_with_batteries(dir: &Path) -> Host {
    let batteries = dir.join("batteries");
    std::fs::create_dir_all(&batteries).expect("mkdir");
    std::fs::write(batteries.join("games.toml"), GAMES_BATTERY).expect("write battery");
    let mut config = test_config(&dir.join("data"));
    config.batteries_dir = Some(batteries);
    Host::start_with(config).await
}

/// An upload that must be refused: what differs from the good one, and the code.
struct Refusal {
    what: &'static str,
    wasm: Option<Vec<u8>>,
    terms: Option<String>,
    signature: Option<String>,
    code: &'static str,
}

impl Refusal {
    fn new(what: &'static str, signature: Option<String>, code: &'static str) -> Self {
        Refusal {
            what,
            wasm: None,
            terms: None,
            signature,
            code,
        }
    }
}

/// Every tree an upload could have written to is empty.
async fn assert_nothing_stored(host: Host) {
    let data_dir = host.data_dir.clone();
    host.stop().await;
    let store = Store::open(&data_dir, Duration::from_millis(50)).expect("store reopens");
    for tree in [
        Tree::Components,
        Tree::Artifacts,
        Tree::Agents,
        Tree::Versions,
        Tree::Reports,
    ] {
        assert_eq!(store.len(tree), 0, "{tree:?} holds something");
    }
    store.close().await.expect("close");
}

#[tokio::test]
async fn an_unverified_organisation_cannot_publish_until_an_admin_verifies_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let mut org = host.org_unverified("newcomer").await;
    let key = new_signing_key();
    host.add_key(&org, &public_key(&key)).await;
    org.signing_key = Some(key);

    let (status, body) = host
        .upload(
            &org,
            component("unit-converter"),
            manifest("unit-converter"),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "org_not_verified");

    // Only the admin token verifies; an organisation cannot verify itself.
    let path = format!("/v1/orgs/{}/verify", org.org_id);
    let (status, body) = host.post(&path, Some(&org.api_key), json!({})).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = host.post(&path, Some(ADMIN_TOKEN), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["verified"], true);
    let (status, body) = host
        .post("/v1/orgs/org_nope/verify", Some(ADMIN_TOKEN), json!({}))
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");

    host.publish(&org, "unit-converter").await;
    host.stop().await;
}

#[tokio::test]
async fn uploads_without_a_valid_signature_are_refused_each_with_its_code_and_nothing_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let org = host.org("signer").await;
    let other = host.org("other").await;
    let key = org.signing_key.clone().expect("key");
    let (wasm, terms) = (component("unit-converter"), manifest("unit-converter"));
    let good = upload_signature(&key, &wasm, &terms);

    let mut tampered_wasm = wasm.clone();
    let last = tampered_wasm.len() - 1;
    tampered_wasm[last] ^= 1;
    let tampered_terms = terms.replace("price_micros = 0", "price_micros = 1");
    assert_ne!(tampered_terms, terms, "the manifest changed");
    let stranger = new_signing_key();
    let first_id = signing::key_id(
        &signing::parse_signing_key(&key)
            .expect("key")
            .verifying_key(),
    );
    let short = json!({ "key_id": first_id, "signature": "abcd" }).to_string();
    let other_key = other.signing_key.as_deref().expect("key");
    let refusals = [
        Refusal::new("missing", None, "signature_missing"),
        Refusal::new("not JSON", Some("abc".into()), "signature_malformed"),
        Refusal::new("short signature", Some(short), "signature_malformed"),
        Refusal::new(
            "a key nobody registered",
            Some(upload_signature(&stranger, &wasm, &terms)),
            "signing_key_unknown",
        ),
        Refusal::new(
            "another organisation's key",
            Some(upload_signature(other_key, &wasm, &terms)),
            "signing_key_unknown",
        ),
        Refusal {
            wasm: Some(tampered_wasm),
            ..Refusal::new(
                "tampered component",
                Some(good.clone()),
                "signature_invalid",
            )
        },
        Refusal {
            terms: Some(tampered_terms),
            ..Refusal::new("tampered manifest", Some(good.clone()), "signature_invalid")
        },
    ];
    for refusal in refusals {
        let (status, body) = host
            .upload_raw(
                &org.api_key,
                refusal.wasm.unwrap_or_else(|| wasm.clone()),
                refusal.terms.unwrap_or_else(|| terms.clone()),
                refusal.signature,
            )
            .await;
        assert_eq!(
            body["error"]["code"], refusal.code,
            "{}: {body}",
            refusal.what
        );
        let expected = if refusal.code.starts_with("signing_key") {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_error(status, &body, expected, refusal.code);
    }

    // Rotation: a second key is added, the first revoked; the first's
    // signatures are refused from then on, the second's accepted.
    let second = new_signing_key();
    host.add_key(&org, &public_key(&second)).await;
    let response = host
        .http
        .delete(format!(
            "{}/v1/orgs/{}/keys/{first_id}",
            host.url, org.org_id
        ))
        .bearer_auth(&org.api_key)
        .send()
        .await
        .expect("revoke");
    assert_eq!(response.status(), StatusCode::OK);
    let (status, body) = host
        .upload_raw(&org.api_key, wasm.clone(), terms.clone(), Some(good))
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "signing_key_revoked");
    let (_, keys) = host
        .get(&format!("/v1/orgs/{}/keys", org.org_id), Some(&org.api_key))
        .await;
    let states: Vec<bool> = keys
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["revoked_at_ms"].is_null())
        .collect();
    assert_eq!(states, [false, true], "{keys}");
    // Another organisation can neither list nor revoke these keys.
    let (status, body) = host
        .get(
            &format!("/v1/orgs/{}/keys", org.org_id),
            Some(&other.api_key),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");

    assert_eq!(host.get("/v1/capabilities", None).await.1, json!([]));
    assert_nothing_stored(host).await;

    // And the rotated key publishes.
    let host = Host::start(dir.path()).await;
    let signature = upload_signature(&second, &wasm, &terms);
    let (status, body) = host
        .upload_raw(&org.api_key, wasm, terms, Some(signature))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    host.stop().await;
}

fn capability<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["capabilities"]
        .as_array()
        .expect("capabilities")
        .iter()
        .find(|c| c["capability"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

/// The failed checks of a capability, as `case: check`.
fn failed_checks(report: &Value, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for case in capability(report, name)["cases"].as_array().expect("cases") {
        for check in case["checks"].as_array().expect("checks") {
            if check["passed"] == false {
                out.push(format!(
                    "{}: {}",
                    case["name"].as_str().unwrap_or(""),
                    check["check"].as_str().unwrap_or("")
                ));
            }
        }
    }
    out
}

#[tokio::test]
async fn a_pretender_is_refused_with_every_failing_case_named_and_its_report_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = host_with_batteries(dir.path()).await;
    let org = host.org("pretender-inc").await;
    let (status, body) = host
        .upload(&org, component("pretender"), manifest("hostile/pretender"))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "attestation_failed",
    );
    let report = &body["error"]["details"]["report"];
    assert_eq!(report["verdict"], "fail");

    // Claims privacy, leaks the e-mail address: the battery cases are named.
    assert_eq!(
        failed_checks(report, "redact"),
        [
            "privacy: redaction removes an e-mail address: not_contains",
            "privacy: redaction removes a card number and a phone number: not_contains",
            "privacy: redaction removes a card number and a phone number: not_contains",
        ]
    );
    // The example disagrees with the code.
    assert_eq!(
        failed_checks(report, "add"),
        ["example 1: equals the example output"]
    );
    let add = &capability(report, "add")["cases"][0]["checks"];
    let equals = add
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["check"] == "equals the example output")
        .expect("equality check");
    assert!(
        equals["detail"]
            .as_str()
            .is_some_and(|d| d.contains("{\"sum\":5}") && d.contains("{\"sum\":4}")),
        "{equals}"
    );
    // Random without saying so: only determinism fails.
    assert_eq!(
        failed_checks(report, "stamp"),
        [
            "games: answers with an object: deterministic",
            "games: takes two numbers: deterministic"
        ]
    );
    // Random and declared: passes, and its case did not check determinism.
    let roll = capability(report, "roll");
    assert_eq!(roll["passed"], true, "{roll}");
    assert_eq!(roll["deterministic"], false);
    assert!(failed_checks(report, "roll").is_empty());
    let failures = body["error"]["details"]["failures"]
        .as_array()
        .expect("failures");
    assert_eq!(failures.len(), 6, "{failures:?}");

    // Nothing is listed; the signed report is kept and served.
    assert_eq!(host.get("/v1/capabilities", None).await.1, json!([]));
    let (status, stored) = host
        .get("/v1/capabilities/pretender.redact@0.1.0/attestation", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&stored, report);
    let (status, body) = host
        .get("/v1/capabilities/pretender.redact/attestation", None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    host.stop().await;
}

#[tokio::test]
async fn a_report_verifies_with_the_published_key_and_fails_after_any_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let org = host.org("o").await;
    let published = host.publish(&org, "pii-redactor").await;
    let (status, report) = host
        .get("/v1/capabilities/pii-redactor.redact/attestation", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report, published["attestation"]);
    assert_eq!(report["verdict"], "pass");
    // Every capability ran its examples and its battery, each case twice.
    for name in ["redact", "detect"] {
        let suites: Vec<&str> = capability(&report, name)["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .filter_map(|c| c["suite"].as_str())
            .collect();
        assert!(
            suites.contains(&"example") && suites.contains(&"battery"),
            "{suites:?}"
        );
    }
    let (_, view) = host.get("/v1/capabilities/pii-redactor.redact", None).await;
    assert_eq!(view["attestation"]["status"], "passed");
    assert!(
        view["attestation"]["fuel_p50"]
            .as_u64()
            .is_some_and(|f| f > 0)
    );

    let (_, keys) = host.get("/.well-known/mercato-keys.json", None).await;
    let keys: KeySet = serde_json::from_value(keys).expect("a key set");
    let verifying = keys.verifying_keys();
    let verify = |doc: &Value| {
        signing::verify_document(doc, verifying.iter().map(|(id, k)| (id.as_str(), k)))
    };
    assert_eq!(verify(&report).as_deref(), Ok(keys.keys[0].key_id.as_str()));

    let mut mutations: Vec<Value> = Vec::new();
    let mut m = report.clone();
    m["verdict"] = "fail".into();
    mutations.push(m);
    let mut m = report.clone();
    m["capabilities"][0]["cases"][0]["fuel_used"] = json!(1);
    mutations.push(m);
    let mut m = report.clone();
    m["component_sha256"] = json!("0".repeat(64));
    mutations.push(m);
    let mut m = report.clone();
    m["extra"] = json!(true);
    mutations.push(m);
    let mut m = report.clone();
    m.as_object_mut().expect("object").remove("structure");
    mutations.push(m);
    for m in &mutations {
        assert_eq!(verify(m), Err(signing::SignatureError::Mismatch), "{m}");
    }

    // The CLI's offline check: the same document from a file, with the key
    // set saved from the well-known URL.
    let report_file = dir.path().join("report.json");
    let keys_file = dir.path().join("keys.json");
    std::fs::write(&report_file, report.to_string()).expect("write");
    std::fs::write(&keys_file, serde_json::to_string(&keys).expect("json")).expect("write");
    mercato_host::cli::verify_document(&report_file, &keys).expect("verifies");
    std::fs::write(&report_file, mutations[0].to_string()).expect("write");
    assert!(mercato_host::cli::verify_document(&report_file, &keys).is_err());

    // The key survives a restart: old reports still verify.
    let data_dir = host.data_dir.clone();
    host.stop().await;
    let host = Host::start(&data_dir).await;
    let (_, again) = host.get("/.well-known/mercato-keys.json", None).await;
    assert_eq!(serde_json::to_value(&keys).expect("json"), again);
    host.stop().await;
}

/// (suite, case name, passed) of every case, in order.
fn case_outcomes(report: &Value) -> Vec<(String, String, bool)> {
    report["capabilities"]
        .as_array()
        .expect("capabilities")
        .iter()
        .flat_map(|c| c["cases"].as_array().cloned().unwrap_or_default())
        .map(|case| {
            (
                case["suite"].as_str().unwrap_or("").to_string(),
                case["name"].as_str().unwrap_or("").to_string(),
                case["passed"] == true,
            )
        })
        .collect()
}

#[tokio::test]
async fn mercato_attest_gives_the_servers_verdict_and_junit_that_parses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = host_with_batteries(dir.path()).await;
    let org = host.org("ci").await;
    let samples = Path::new(env!("MERCATO_SAMPLES_DIR"));
    let wasm_dir = Path::new(env!("MERCATO_AGENTS_WASM_DIR"));
    for (agent, crate_name) in [
        ("pii-redactor", "pii_redactor"),
        ("hostile/pretender", "pretender"),
    ] {
        let (_, body) = host
            .upload(&org, component(crate_name), manifest(agent))
            .await;
        let server = if body["attestation"].is_object() {
            body["attestation"].clone()
        } else {
            body["error"]["details"]["report"].clone()
        };
        let local = attest_file(
            &wasm_dir.join(format!("{crate_name}.wasm")),
            &samples.join(agent).join("mercato.toml"),
            Some(&dir.path().join("batteries")),
            false,
        )
        .await
        .expect("attest runs");
        let local_json = serde_json::to_value(&local).expect("json");
        assert_eq!(local_json["verdict"], server["verdict"], "{agent}");
        assert_eq!(
            case_outcomes(&local_json),
            case_outcomes(&server),
            "{agent}"
        );
        assert_eq!(local.failures().len(), server_failures(&server), "{agent}");

        let xml = junit::render(&local).expect("junit");
        let (cases, failures) = parse_junit(&xml);
        let structure = local.structure.len();
        let problems: usize = local.capabilities.iter().map(|c| c.problems.len()).sum();
        let outcomes = case_outcomes(&local_json);
        assert_eq!(cases, structure + outcomes.len() + problems, "{xml}");
        let failed_cases = outcomes.iter().filter(|c| !c.2).count();
        assert_eq!(failures, failed_cases + problems, "{xml}");
    }
    host.stop().await;
}

async fn listed_ids(host: &Host) -> Vec<String> {
    let (_, all) = host.get("/v1/capabilities", None).await;
    all.as_array()
        .expect("a list")
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_string))
        .collect()
}

fn server_failures(report: &Value) -> usize {
    let report: mercato_host::attestation::Report =
        serde_json::from_value(report.clone()).expect("a report");
    report.failures().len()
}

/// (testcases, failures) of a JUnit document, read with a real XML parser.
fn parse_junit(xml: &str) -> (usize, usize) {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let (mut cases, mut failures) = (0, 0);
    let mut declared = None;
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) | Event::Empty(e) => match e.name().as_ref() {
                b"testcase" => cases += 1,
                b"failure" => failures += 1,
                b"testsuites" => {
                    declared = e
                        .try_get_attribute("failures")
                        .expect("attribute")
                        .map(|a| {
                            String::from_utf8_lossy(&a.value)
                                .parse::<usize>()
                                .expect("n")
                        });
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(declared, Some(failures), "the root counts its failures");
    (cases, failures)
}

#[tokio::test]
async fn reattestation_delists_what_a_changed_battery_now_fails_and_keeps_the_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = host_with_batteries(dir.path()).await;
    let org = host.org("o").await;
    host.publish(&org, "unit-converter").await;
    host.publish(&org, "pii-redactor").await;

    // The operator tightens the utilities battery: a case the converter fails.
    let stricter = r#"
description = "Stricter."
[[cases]]
name = "a mile is exactly 2 kilometres"
tags = ["conversion"]
input = { value = 1, from = "mi", to = "km" }
checks = [{ path = "/value", approx = 2, tolerance = 1e-9 }]
[[cases]]
name = "the unit list names the kilometre"
tags = ["reference"]
input = { dimension = "length" }
checks = [{ path = "/units", contains = "\"km\"" }]
"#;
    std::fs::write(dir.path().join("batteries/utilities.toml"), stricter).expect("write");
    let (status, body) = host
        .post(
            "/v1/admin/reattest",
            Some(&org.api_key),
            json!({ "category": "utilities" }),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = host
        .post(
            "/v1/admin/reattest",
            Some(ADMIN_TOKEN),
            json!({ "category": "utilities" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["checked"], json!(["unit-converter@1.0.0"]), "{body}");
    assert_eq!(body["delisted"][0]["version"], "unit-converter@1.0.0");
    assert!(
        body["delisted"][0]["failures"][0]
            .as_str()
            .is_some_and(|f| f.contains("a mile is exactly 2 kilometres")),
        "{body}"
    );

    let ids = listed_ids(&host).await;
    assert!(
        ids.iter().all(|id| id.starts_with("pii-redactor.")),
        "{ids:?}"
    );
    let (status, _) = host
        .invoke(
            &org.api_key,
            "unit-converter.convert",
            json!({"value": 1, "from": "mi", "to": "km"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, report) = host
        .get(
            "/v1/capabilities/unit-converter.convert@1.0.0/attestation",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(report["verdict"], "fail");

    // Delisting survives a restart.
    let data_dir = host.data_dir.clone();
    host.stop().await;
    let mut config = test_config(&data_dir);
    config.batteries_dir = Some(dir.path().join("batteries"));
    let host = Host::start_with(config).await;
    let ids = listed_ids(&host).await;
    assert!(
        ids.iter().all(|id| id.starts_with("pii-redactor.")) && !ids.is_empty(),
        "{ids:?}"
    );
    host.stop().await;
}

#[tokio::test]
async fn an_incompatible_minor_version_is_refused_and_the_same_change_as_a_major_is_accepted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(dir.path()).await;
    let org = host.org("words").await;
    host.publish(&org, "upgrades/word-count-1-0-0").await;
    // A compatible minor: an optional field. The bare id follows it.
    let published = host.publish(&org, "upgrades/word-count-1-1-0").await;
    assert_eq!(published["attestation"]["upgrades"], "1.0.0");
    let (_, view) = host.get("/v1/capabilities/word-count.count", None).await;
    assert_eq!(view["version"], "1.1.0");

    // A breaking minor: a new required field.
    let (status, body) = host
        .upload(
            &org,
            component("word-count-1-2-0"),
            manifest("upgrades/word-count-1-2-0"),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "incompatible_version");
    assert_eq!(body["error"]["details"]["previous"], "1.1.0");
    let failures: Vec<&str> = body["error"]["details"]["failures"]
        .as_array()
        .expect("failures")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        failures
            .iter()
            .any(|f| f.contains("accepts every input") && f.contains("now requires `language`")),
        "{failures:?}"
    );
    assert!(
        failures
            .iter()
            .any(|f| f.contains("upgrade `example 1 of the previous version`")),
        "{failures:?}"
    );
    let (_, view) = host.get("/v1/capabilities/word-count.count", None).await;
    assert_eq!(view["version"], "1.1.0", "nothing moved");

    // The same change as a new major is accepted; the bare id stays on 1.x.
    let published = host.publish(&org, "upgrades/word-count-2-0-0").await;
    assert_eq!(published["attestation"]["upgrades"], Value::Null);
    let (_, view) = host.get("/v1/capabilities/word-count.count", None).await;
    assert_eq!(view["version"], "1.1.0");
    let (_, view) = host.get("/v1/capabilities/word-count.count@2", None).await;
    assert_eq!(
        (view["version"].as_str(), view["id"].as_str()),
        (Some("2.0.0"), Some("word-count.count@2"))
    );
    let (status, out) = host
        .invoke(
            &org.api_key,
            "word-count.count",
            json!({ "text": "one two three" }),
            None,
        )
        .await;
    assert_eq!(
        (status, &out["output"]),
        (StatusCode::OK, &json!({ "words": 3 }))
    );
    let (status, out) = host
        .invoke(
            &org.api_key,
            "word-count.count@2",
            json!({ "text": "one two", "language": "en" }),
            None,
        )
        .await;
    assert_eq!(
        (status, &out["output"]),
        (StatusCode::OK, &json!({ "words": 2 }))
    );
    // Both lines are on offer.
    let (_, all) = host.get("/v1/capabilities", None).await;
    let mut ids: Vec<&str> = all
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["pinned_id"].as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, ["word-count.count@1.1.0", "word-count.count@2.0.0"]);
    host.stop().await;
}

#[tokio::test]
async fn attestation_stops_at_its_time_budget_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(dir.path());
    config.attestation_ms_max = 1;
    let host = Host::start_with(config).await;
    let org = host.org("slowpoke").await;
    let (status, body) = host
        .upload(&org, component("pii-redactor"), manifest("pii-redactor"))
        .await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "attestation_failed",
    );
    let failures = body["error"]["details"]["failures"].to_string();
    assert!(failures.contains("whole budget of 1 ms"), "{failures}");
    host.stop().await;
}
