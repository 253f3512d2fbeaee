//! Three replicas on one PostgreSQL database: a capability published
//! through one is discovered and invoked through the others, concurrent
//! paid calls spread over all three never overdraw a balance, an
//! idempotency key replays on another replica, and a daily budget holds
//! across them. Each test runs its own cluster (`mercato_tests::postgres`)
//! and three hosts, each with a data directory of its own.

use mercato_tests::postgres::Postgres;
use mercato_tests::replicas::{Replicas, eventually};
use mercato_tests::{ADMIN_TOKEN, Host, Org, STARTING_BALANCE_MICROS as STARTING, test_config};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;

const NEED: &str = "remove e-mail addresses and credit card numbers from a support ticket";

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

async fn discovered(host: &Host) -> bool {
    let (status, body) = host
        .post("/v1/discover", None, json!({ "need": NEED, "limit": 5 }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["results"]
        .as_array()
        .expect("results")
        .iter()
        .any(|r| r["capability"]["id"] == "pii-redactor.redact")
}

async fn redact(host: &Host, key: &str, cap: u64) -> (StatusCode, Value) {
    host.invoke(
        key,
        "pii-redactor.redact",
        json!({ "text": "Mail jo@example.com today." }),
        Some(cap),
    )
    .await
}

/// A consumer registered through one replica with exactly `micros`.
async fn consumer(host: &Host, name: &str, micros: u64) -> Org {
    let org = host.org_unverified(name).await;
    host.deposit(&org, micros).await;
    org
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_share_one_marketplace_and_never_overdraw() {
    let Some(replicas) = Replicas::start().await else {
        return;
    };
    let [a, b, c] = &replicas.hosts[..] else {
        unreachable!()
    };
    let provider = a.org("provider").await;
    a.publish_unthrottled(&provider, "pii-redactor").await;

    // Published through A: discovered and invoked through B and C.
    for host in [b, c] {
        eventually("the capability is discoverable on another replica", || {
            discovered(host)
        })
        .await;
    }
    let probe = consumer(b, "probe", 1_000_000).await;
    let (status, first) = redact(c, &probe.api_key, 50_000).await;
    assert_eq!(status, StatusCode::OK, "invoked on C: {first}");
    let charged = u(&first["charged_micros"]);
    assert!(charged > 0, "{first}");
    let (status, again) = redact(b, &probe.api_key, charged).await;
    assert_eq!(
        (status, u(&again["charged_micros"])),
        (StatusCode::OK, charged),
        "the same call costs the same on B: {again}"
    );

    // 300 calls at once over the three replicas, each holding exactly what
    // it costs, against a balance that covers 100 of them.
    let buyer = consumer(a, "buyer", 100 * charged).await;
    let calls = (0..300).map(|n| {
        let host = &replicas.hosts[n % 3];
        let key = buyer.api_key.clone();
        async move { (n % 3, redact(host, &key, charged).await) }
    });
    let outcomes = futures::future::join_all(calls).await;
    let mut succeeded = Vec::new();
    let mut refused = 0;
    for (replica, (status, body)) in &outcomes {
        match status.as_u16() {
            200 => succeeded.push((
                *replica,
                body["transaction_id"].as_str().expect("tx").to_string(),
            )),
            402 => {
                assert_eq!(body["error"]["code"], "insufficient_funds", "{body}");
                refused += 1;
            }
            _ => panic!("an unexpected answer: {status} {body}"),
        }
    }
    assert_eq!(
        succeeded.len(),
        100,
        "exactly the 100 calls the balance covers succeed ({refused} refused)"
    );
    assert_eq!(
        succeeded
            .iter()
            .map(|(_, tx)| tx)
            .collect::<HashSet<_>>()
            .len(),
        100,
        "one transaction each"
    );
    // Every success has its record and receipt, on every replica.
    for (n, (_, tx)) in succeeded.iter().enumerate() {
        let host = &replicas.hosts[n % 3];
        let (status, record) = host
            .get(&format!("/v1/transactions/{tx}"), Some(&buyer.api_key))
            .await;
        assert_eq!(status, StatusCode::OK, "{record}");
        assert_eq!(u(&record["charged_micros"]), charged, "{record}");
        assert!(record["receipt"]["signature"].is_object(), "{record}");
    }
    // The same books on every replica, balanced, the buyer at zero.
    let books = a.audit().await;
    for host in [b, c] {
        assert_eq!(host.audit().await, books, "the replicas agree");
    }
    assert_eq!(books["pending_micros"], 0, "no hold left: {books}");
    for host in [a, b, c] {
        let balance = host.balance(&buyer).await;
        assert_eq!(
            (
                u(&balance["available_micros"]),
                u(&balance["escrowed_out_micros"])
            ),
            (0, 100 * charged),
            "{balance}"
        );
    }
    replicas.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_budgets_hold_across_replicas() {
    let Some(replicas) = Replicas::start().await else {
        return;
    };
    let [a, b, c] = &replicas.hosts[..] else {
        unreachable!()
    };
    let provider = a.org("provider").await;
    a.publish_unthrottled(&provider, "pii-redactor").await;
    for host in [b, c] {
        eventually("the capability is discoverable on another replica", || {
            discovered(host)
        })
        .await;
    }
    let buyer = consumer(a, "buyer", 10_000_000).await;

    // An idempotency key used on A and retried on B replays A's answer.
    let body = json!({ "input": { "text": "Call +1 555 0100." }, "max_price_micros": 50_000 });
    let send = |host: &Host| {
        reqwest::Client::new()
            .post(format!(
                "{}/v1/capabilities/pii-redactor.redact/invoke",
                host.server().url()
            ))
            .bearer_auth(&buyer.api_key)
            .header("idempotency-key", "retry-elsewhere-1")
            .json(&body)
            .send()
    };
    let first = send(a).await.expect("first");
    assert_eq!(first.status(), StatusCode::OK);
    let first: Value = first.json().await.expect("json");
    let before = a.balance(&buyer).await;
    let retried = send(b).await.expect("retry");
    assert_eq!(retried.status(), StatusCode::OK);
    assert_eq!(retried.headers()["idempotent-replay"], "true");
    let retried: Value = retried.json().await.expect("json");
    assert_eq!(retried["transaction_id"], first["transaction_id"]);
    b.audit().await; // caught up with A's entries
    assert_eq!(
        b.balance(&buyer).await["available_micros"],
        before["available_micros"],
        "charged once"
    );

    // A daily budget set through A holds on B and C: calls alternate
    // between them until it refuses, and the spending stays under it.
    let charged = u(&first["charged_micros"]);
    let daily = 5 * charged + charged / 2;
    let (status, set) = a
        .put_budget(&buyer, json!({ "daily_max_micros": daily }))
        .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    let mut paid = 0u64;
    let mut refusal = None;
    for n in 0..20 {
        let host = if n % 2 == 0 { b } else { c };
        let (status, body) = redact(host, &buyer.api_key, charged).await;
        match status {
            StatusCode::OK => paid += u(&body["charged_micros"]),
            _ => {
                refusal = Some((status, body));
                break;
            }
        }
    }
    let (status, body) = refusal.expect("the daily budget refuses a call");
    assert_eq!(status, StatusCode::PAYMENT_REQUIRED, "{body}");
    assert_eq!(body["error"]["code"], "budget_exhausted", "{body}");
    let spent_before_budget = charged; // the idempotent call above, today
    assert!(
        paid + spent_before_budget <= daily,
        "spent {paid} + {spent_before_budget} under a daily budget of {daily}"
    );
    assert!(
        paid + spent_before_budget + charged > daily,
        "refused only when the next call would pass it"
    );
    for host in [a, b, c] {
        host.audit().await;
    }

    // A rate limit of 30 a minute holds across the three: each replica
    // takes a third of it, so 45 calls spread over them admit 30 (one more
    // if a token refilled meanwhile).
    for host in [a, b, c] {
        eventually("every replica counts three", || async {
            host.get("/healthz", None).await.1["replicas"] == 3
        })
        .await;
    }
    let limited = mercato_tests::manifest("unit-converter")
        .replace("rate_limit_per_minute = 600", "rate_limit_per_minute = 30");
    let (status, body) = a
        .upload(
            &provider,
            mercato_tests::component("unit-converter"),
            limited,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for host in [b, c] {
        eventually("the converter is listed on another replica", || async {
            host.get("/v1/capabilities/unit-converter.convert", None)
                .await
                .0
                .is_success()
        })
        .await;
    }
    let mut admitted = 0;
    for n in 0..45 {
        let (status, body) = replicas.hosts[n % 3]
            .invoke(
                &buyer.api_key,
                "unit-converter.convert",
                json!({ "value": 1, "from": "km", "to": "m" }),
                None,
            )
            .await;
        match status {
            StatusCode::OK => admitted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(body["error"]["code"], "rate_limited", "{body}")
            }
            _ => panic!("{status} {body}"),
        }
    }
    assert!(
        (30..=31).contains(&admitted),
        "{admitted} of 45 calls admitted under a limit of 30 a minute"
    );
    replicas.stop().await;
}

/// A replica as a `mercato serve` process on `url`, with short deadlines
/// (so the holds of a killed one expire within the test); its address.
fn serve(dir: &std::path::Path, url: &str) -> (std::process::Child, String) {
    use std::io::BufRead;
    let config = dir.join("mercato.toml");
    std::fs::write(
        &config,
        "request_timeout_ms = 4000\nattestation_ms_max = 3000\nsettlement_tick_ms = 200\n[sandbox]\ndeadline_ms = 1000\nqueue_wait_ms = 500\n",
    )
    .expect("config");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mercato-under-test"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .arg("--config")
        .arg(&config)
        .args(["--database", url])
        .env("MERCATO_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("mercato starts");
    let mut lines = std::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("the host says where it listens")
            .expect("stderr line");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().expect("url").to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, address)
}

async fn post_to(url: &str, key: &str, path: &str, body: Value) -> (u16, Value) {
    match reqwest::Client::new()
        .post(format!("{url}{path}"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
    {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_during_paid_load_loses_nothing_and_leaves_no_hold() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database();
    let survivor_dir = tempfile::tempdir().expect("tempdir");
    let mut config = test_config(survivor_dir.path());
    config.database_url = Some(mercato_host::config::DatabaseUrl(url.clone()));
    config.settlement_tick_ms = 200;
    let survivor = Host::start_with(config).await;
    let victim_dir = tempfile::tempdir().expect("tempdir");
    let (mut victim, victim_url) = serve(victim_dir.path(), &url);

    let provider = survivor.org("provider").await;
    survivor
        .publish_unthrottled(&provider, "pii-redactor")
        .await;
    survivor
        .publish_unthrottled(&provider, "hostile/misbehaver")
        .await;
    let buyer = consumer(&survivor, "buyer", 1_000_000_000).await;
    // The victim lists it too before the load starts.
    eventually("the victim lists the capability", || async {
        post_to(
            &victim_url,
            &buyer.api_key,
            "/v1/capabilities/pii-redactor.redact/invoke",
            json!({ "input": { "text": "warm up" }, "max_price_micros": 50_000 }),
        )
        .await
        .0 == 200
    })
    .await;

    eventually("the victim lists the napper", || async {
        reqwest::get(format!("{victim_url}/v1/capabilities/misbehaver.nap"))
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;

    // Bounded workers over both replicas; the victim is killed once enough
    // calls succeeded.
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, u64)>::new()));
    let killed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..8 {
        let url = if w % 2 == 0 {
            victim_url.clone()
        } else {
            survivor.server().url()
        };
        let (key, acknowledged, killed) =
            (buyer.api_key.clone(), acknowledged.clone(), killed.clone());
        workers.push(tokio::spawn(async move {
            for i in 0..100 {
                if killed.load(std::sync::atomic::Ordering::SeqCst) && w % 2 == 0 {
                    break;
                }
                let (status, body) = post_to(
                    &url,
                    &key,
                    "/v1/capabilities/pii-redactor.redact/invoke",
                    json!({ "input": { "text": format!("{w}/{i}: mail a{i}@b.io") }, "max_price_micros": 50_000 }),
                )
                .await;
                if status == 200 {
                    let tx = body["transaction_id"].as_str().expect("tx").to_string();
                    let charged = body["charged_micros"].as_u64().expect("charged");
                    acknowledged.lock().expect("lock").push((tx, charged));
                }
            }
        }));
    }
    for _ in 0..6_000 {
        if acknowledged.lock().expect("lock").len() >= 120 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Slow paid calls in flight on the victim when it dies: their holds
    // are journaled and outlive it.
    let naps: Vec<_> = (0..3)
        .map(|_| {
            let (url, key) = (victim_url.clone(), buyer.api_key.clone());
            tokio::spawn(async move {
                post_to(
                    &url,
                    &key,
                    "/v1/capabilities/misbehaver.nap/invoke",
                    json!({ "input": { "ms": 500 }, "max_price_micros": 20_000 }),
                )
                .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await;
    victim.kill().expect("SIGKILL");
    killed.store(true, std::sync::atomic::Ordering::SeqCst);
    victim.wait().expect("reaped");
    for worker in workers {
        worker.await.expect("worker");
    }
    for nap in naps {
        let (status, _) = nap.await.expect("nap");
        assert_eq!(
            status, 0,
            "a call in flight on a killed replica gets no answer"
        );
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() >= 120,
        "load ran: {}",
        acknowledged.len()
    );

    let left = u(&survivor.audit().await["pending_micros"]);
    assert!(
        left >= 3 * 20_000,
        "the naps' holds outlive the victim until their timeout: {left}"
    );
    // The victim comes back on its own data directory.
    let (mut victim, victim_url) = serve(victim_dir.path(), &url);
    // Holds the victim left behind expire (their timeout is the deadline
    // plus the request timeout) by the sweepers.
    eventually("no hold is left pending", || async {
        survivor.audit().await["pending_micros"] == 0
    })
    .await;
    let books = survivor.audit().await;
    assert_eq!(
        u(&books["deposited_micros"]),
        STARTING + 1_000_000_000,
        "{books}"
    );
    // The restarted victim replays the same books.
    let victim_books: Value = reqwest::Client::new()
        .get(format!("{victim_url}/v1/admin/ledger"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("the restarted victim answers")
        .json()
        .await
        .expect("json");
    assert_eq!(victim_books, books, "the restarted replica agrees");

    // Every acknowledged call is recorded once with the charge the client
    // saw; the buyer paid exactly what escrow holds for it.
    let mut acknowledged_sum = 0;
    let mut seen = HashSet::new();
    for (tx, charged) in &acknowledged {
        assert!(seen.insert(tx.clone()), "{tx} acknowledged twice");
        let (status, record) = survivor
            .get(&format!("/v1/transactions/{tx}"), Some(&buyer.api_key))
            .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{tx} was acknowledged but is not recorded"
        );
        assert_eq!(u(&record["charged_micros"]), *charged, "{record}");
        acknowledged_sum += charged;
    }
    let balance = survivor.balance(&buyer).await;
    let out = u(&balance["escrowed_out_micros"]);
    assert!(out >= acknowledged_sum, "{out} < {acknowledged_sum}");
    assert_eq!(
        u(&balance["available_micros"]),
        1_000_000_000 - out,
        "{balance}"
    );
    assert_eq!(u(&balance["pending_micros"]), 0, "{balance}");
    victim.kill().expect("stop");
    victim.wait().expect("reaped");
    survivor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_answer_503_while_the_database_restarts_under_load_and_recover() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database();
    let (mut hosts, mut dirs) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = test_config(dir.path());
        config.database_url = Some(mercato_host::config::DatabaseUrl(url.clone()));
        // Holds a failed capture leaves behind expire 5 s after they were
        // taken (deadline + request timeout), swept every 200 ms.
        config.request_timeout_ms = 4_000;
        config.attestation_ms_max = 3_000;
        config.settlement_tick_ms = 200;
        hosts.push(Host::start_with(config).await);
        dirs.push(dir);
    }
    let provider = hosts[0].org("provider").await;
    hosts[0]
        .publish_unthrottled(&provider, "pii-redactor")
        .await;
    eventually("the other replica lists it", || discovered(&hosts[1])).await;
    let buyer = consumer(&hosts[0], "buyer", 1_000_000_000).await;
    let urls: Vec<String> = hosts.iter().map(|h| h.server().url()).collect();

    // Bounded workers on both replicas while the database stops and starts.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    let answers = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(u16, String)>::new()));
    let mut workers = Vec::new();
    for w in 0..4 {
        let url = urls[w % 2].clone();
        let (key, stop, acknowledged, answers) = (
            buyer.api_key.clone(),
            stop.clone(),
            acknowledged.clone(),
            answers.clone(),
        );
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for i in 0..2_000 {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let response = http
                    .post(format!("{url}/v1/capabilities/pii-redactor.redact/invoke"))
                    .bearer_auth(&key)
                    .json(&json!({ "input": { "text": format!("{w}/{i} a@b.io") }, "max_price_micros": 50_000 }))
                    .timeout(Duration::from_secs(20))
                    .send()
                    .await
                    .expect("an answer, not a hang");
                let status = response.status().as_u16();
                let retry_after = response.headers().contains_key("retry-after");
                let body: Value = response.json().await.unwrap_or(Value::Null);
                if status == 200 {
                    acknowledged
                        .lock()
                        .expect("lock")
                        .push(u(&body["charged_micros"]));
                } else {
                    assert!(status == 503 && retry_after, "{status} {body}");
                    let code = body["error"]["code"].as_str().unwrap_or("").to_string();
                    answers.lock().expect("lock").push((status, code));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    pg.pause();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    pg.resume();
    // Both replicas serve paid calls again, without a restart.
    for host in &hosts {
        eventually("a replica recovers by itself", || async {
            redact(host, &buyer.api_key, 50_000).await.0 == StatusCode::OK
        })
        .await;
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for worker in workers {
        worker.await.expect("worker");
    }
    let refused = answers.lock().expect("lock").clone();
    assert!(!refused.is_empty(), "the outage was seen");
    for (_, code) in &refused {
        assert!(
            ["unavailable", "unconfirmed", "overloaded"].contains(&code.as_str()),
            "{code}"
        );
    }
    // A call whose capture met the outage leaves its hold until it
    // expires; then the books agree and balance, the buyer paid at least
    // every acknowledged call, and nothing is held.
    eventually("no hold outlives its timeout", || async {
        hosts[0].audit().await["pending_micros"] == 0
    })
    .await;
    let books = hosts[0].audit().await;
    assert_eq!(hosts[1].audit().await, books, "the replicas agree");
    let paid: u64 = acknowledged.lock().expect("lock").iter().sum();
    let balance = hosts[1].balance(&buyer).await;
    let out = u(&balance["escrowed_out_micros"]);
    assert!(out >= paid, "{out} < {paid}");
    assert_eq!(u(&balance["pending_micros"]), 0, "{balance}");
    assert_eq!(
        u(&balance["available_micros"]) + out,
        1_000_000_000,
        "{balance}"
    );
    for host in hosts {
        host.stop().await;
    }
}
