//! The PostgreSQL store: the same promises as the embedded one, a
//! marketplace that lives on after its host, the
//! database going away and coming back, and an embedded marketplace moved
//! into PostgreSQL with `mercato store migrate`. Every test runs its own
//! cluster (`mercato_tests::postgres`).

use mercato_host::store::{Database, Store, Tree};
use mercato_tests::postgres::Postgres;
use mercato_tests::{ADMIN_TOKEN, Host, STARTING_BALANCE_MICROS, test_config};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};

const FLUSH: Duration = Duration::from_millis(50);

fn pg_config(data_dir: &Path, url: &str) -> mercato_host::config::Config {
    let mut config = test_config(data_dir);
    config.database_url = Some(mercato_host::config::DatabaseUrl(url.to_string()));
    config
}

fn connect(url: &str, cache: &Path) -> Store {
    let database = Database::parse(url, None).expect("url");
    Store::connect(&database, cache, FLUSH).expect("connect")
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

async fn discover(host: &Host, need: &str) -> Vec<String> {
    let (status, body) = host
        .post("/v1/discover", None, json!({ "need": need, "limit": 3 }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["capability"]["id"].as_str().unwrap_or("").to_string())
        .collect()
}

async fn redact(host: &Host, key: &str) -> (StatusCode, Value) {
    host.invoke(
        key,
        "pii-redactor.redact",
        json!({ "text": "Mail jo@example.com today." }),
        Some(50_000),
    )
    .await
}

/// Every store operation the marketplace relies on, run against the
/// embedded engine and PostgreSQL alike: the answers must be the same.
async fn store_promises(store: Store, reopen: impl Fn() -> Store) {
    // Records: put, get, insert-if-absent, compare-and-swap, take.
    store.put(Tree::Meta, "a", &1).expect("put");
    assert_eq!(store.get::<i32>(Tree::Meta, "a").expect("get"), Some(1));
    assert!(!store.insert_new(Tree::Meta, "a", &2).expect("insert"));
    assert!(store.insert_new(Tree::Meta, "b", &2).expect("insert"));
    assert!(
        !store
            .compare_and_swap(Tree::Meta, "a", &5, &6)
            .expect("cas")
    );
    assert!(
        store
            .compare_and_swap(Tree::Meta, "a", &1, &3)
            .expect("cas")
    );
    assert_eq!(store.get::<i32>(Tree::Meta, "a").expect("get"), Some(3));
    assert_eq!(store.take::<i32>(Tree::Meta, "b").expect("take"), Some(2));
    assert_eq!(
        store.take::<i32>(Tree::Meta, "b").expect("take"),
        None,
        "taken once"
    );
    assert!(store.contains(Tree::Meta, "a").expect("contains"));
    store.remove(Tree::Meta, "a").expect("remove");
    assert!(!store.contains(Tree::Meta, "a").expect("contains"));

    // Keys in byte order, prefixes exact, pages newest first.
    for key in ["o1/3", "o1/1", "o2/1", "o1/2", "o10/1", "o1/ü"] {
        store.put(Tree::ByOrg, key, &key).expect("put");
    }
    let keys = |found: Vec<(String, String)>| found.into_iter().map(|(k, _)| k).collect::<Vec<_>>();
    assert_eq!(
        keys(store.scan(Tree::ByOrg).expect("scan")),
        ["o1/1", "o1/2", "o1/3", "o1/ü", "o10/1", "o2/1"]
    );
    assert_eq!(
        keys(store.scan_prefix(Tree::ByOrg, "o1/").expect("prefix")),
        ["o1/1", "o1/2", "o1/3", "o1/ü"]
    );
    assert_eq!(store.count_prefix(Tree::ByOrg, "o1/"), 4);
    assert_eq!(store.len(Tree::ByOrg), 6);
    assert_eq!(
        keys(
            store
                .page_before(Tree::ByOrg, "o1/", None, 2)
                .expect("page")
        ),
        ["o1/ü", "o1/3"]
    );
    assert_eq!(
        keys(
            store
                .page_before(Tree::ByOrg, "o1/", Some("o1/3"), 5)
                .expect("page")
        ),
        ["o1/2", "o1/1"]
    );
    assert!(
        store
            .page_before::<String>(Tree::ByOrg, "o1/", Some("o2/"), 5)
            .expect("page")
            .is_empty()
    );

    // Publishing: compare-and-swap on the agent, the version inserted once.
    assert!(
        store
            .put_agent_version("word", None, &"v1", "word@1", &"one")
            .expect("publish")
    );
    assert!(
        !store
            .put_agent_version("word", None, &"v1", "word@1b", &"x")
            .expect("publish"),
        "not new"
    );
    assert!(
        !store
            .put_agent_version("word", Some(&"v0"), &"v2", "word@2", &"x")
            .expect("publish"),
        "stale"
    );
    assert!(
        !store
            .put_agent_version("word", Some(&"v1"), &"v2", "word@1", &"x")
            .expect("publish"),
        "exists"
    );
    assert!(
        store
            .put_agent_version("word", Some(&"v1"), &"v2", "word@2", &"two")
            .expect("publish")
    );
    assert_eq!(
        store.get::<String>(Tree::Agents, "word").expect("get"),
        Some("v2".into())
    );
    assert!(
        !store.contains(Tree::Versions, "word@1b").expect("contains"),
        "a refused publish wrote nothing"
    );

    // Many keys at once: in the order asked, missing ones `None`, written
    // ones whether sent yet or pending (and, after the reopen below, read
    // back in several round trips).
    for n in 0..MANY {
        store
            .put_bytes(Tree::Vectors, &format!("v{n:04}"), &n.to_be_bytes())
            .expect("put");
        if n == MANY / 2 {
            store.sync().await.expect("sync");
        }
    }
    assert_many(&store);

    // The journal comes back in order; unsynced records are durable at close.
    for n in 0..50u32 {
        store
            .append_journal(format!("entry {n}").as_bytes())
            .expect("append");
    }
    store.sync_journal().await.expect("sync");
    store
        .put(Tree::Invocations, "tx_1", &"record")
        .expect("put");
    store.close().await.expect("close");
    drop(store);
    let reopened = reopen();
    let journal = reopened.take_journal();
    assert_eq!(journal.len(), 50);
    assert!(
        journal
            .iter()
            .enumerate()
            .all(|(n, r)| *r == format!("entry {n}").into_bytes())
    );
    assert_eq!(
        reopened
            .get::<String>(Tree::Invocations, "tx_1")
            .expect("get"),
        Some("record".into())
    );
    assert_eq!(
        reopened.get::<String>(Tree::Agents, "word").expect("get"),
        Some("v2".into())
    );
    assert_many(&reopened);
    reopened.close().await.expect("close");
}

/// Records [`store_promises`] reads back many at a time.
const MANY: u32 = 2_500;

fn assert_many(store: &Store) {
    let asked: Vec<String> = (0..MANY)
        .rev()
        .map(|n| format!("v{n:04}"))
        .chain(["absent".to_string(), "v0000".to_string()])
        .collect();
    let got = store
        .get_many_bytes(Tree::Vectors, &asked)
        .expect("get many");
    let expected: Vec<Option<Vec<u8>>> = (0..MANY)
        .rev()
        .map(|n| Some(n.to_be_bytes().to_vec()))
        .chain([None, Some(0u32.to_be_bytes().to_vec())])
        .collect();
    let wrong = (0..asked.len()).find(|i| got[*i] != expected[*i]);
    assert_eq!(
        wrong.map(|i| (&asked[i], &got[i])),
        None,
        "get_many_bytes answers each key in order ({})",
        store.engine()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_keeps_the_same_promises_on_both_engines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let embedded = Store::open(dir.path(), FLUSH).expect("open");
    store_promises(embedded, || Store::open(dir.path(), FLUSH).expect("reopen")).await;

    let Some(pg) = Postgres::start() else { return };
    let url = pg.database();
    let cache = tempfile::tempdir().expect("tempdir");
    let store = connect(&url, cache.path());
    assert_eq!(store.engine(), "postgres");
    store_promises(store, || connect(&url, cache.path())).await;
}

/// State a host derives and rebuilds at start (the escrow index) lives on
/// its own disk on both engines: replicas on one database do not share it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn derived_state_stays_on_each_hosts_own_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let embedded = Store::open(dir.path(), FLUSH).expect("open");
    let tree = embedded.derived_tree("escrow").expect("embedded");
    tree.insert(b"tx", b"kept").expect("insert");
    assert!(
        embedded
            .scan_prefix_bytes(Tree::Invocations, "")
            .expect("scan")
            .is_empty()
    );
    embedded.close().await.expect("close");

    let Some(pg) = Postgres::start() else { return };
    let url = pg.database();
    let (cache_a, cache_b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let (a, b) = (connect(&url, cache_a.path()), connect(&url, cache_b.path()));
    let (tree_a, tree_b) = (
        a.derived_tree("escrow").expect("replica a"),
        b.derived_tree("escrow").expect("replica b"),
    );
    tree_a.insert(b"tx", b"a's").expect("insert");
    assert_eq!(tree_b.get(b"tx").expect("get"), None, "not shared");
    assert!(cache_a.path().join("derived").is_dir());
    assert!(
        a.scan_prefix_bytes(Tree::Invocations, "")
            .expect("scan")
            .is_empty()
    );
    drop((tree_a, tree_b));
    a.close().await.expect("close");
    b.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marketplace_on_postgres_outlives_its_host() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database();
    let first_dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start_with(pg_config(first_dir.path(), &url)).await;
    let (_, health) = host.get("/healthz", None).await;
    assert_eq!(health["store"], "postgres");
    let provider = host.org("provider").await;
    let consumer = host.org("consumer").await;
    host.publish(&provider, "pii-redactor").await;
    let (status, call) = redact(&host, &consumer.api_key).await;
    assert_eq!(status, StatusCode::OK, "{call}");
    let tx = call["transaction_id"].as_str().expect("tx").to_string();
    let balance = host.balance(&consumer).await;
    assert_eq!(
        u(&balance["available_micros"]),
        STARTING_BALANCE_MICROS - u(&call["charged_micros"])
    );
    let books = host.audit().await;
    let (_, keys) = host.get("/.well-known/mercato-keys.json", None).await;
    host.stop().await;

    // A new host with an empty data directory: everything is in the database.
    let second_dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start_with(pg_config(second_dir.path(), &url)).await;
    assert_eq!(host.balance(&consumer).await, balance);
    assert_eq!(host.audit().await, books);
    let (_, same_keys) = host.get("/.well-known/mercato-keys.json", None).await;
    assert_eq!(same_keys, keys, "the marketplace key lives in the database");
    let (status, record) = host
        .get(&format!("/v1/transactions/{tx}"), Some(&consumer.api_key))
        .await;
    assert_eq!(status, StatusCode::OK, "{record}");
    assert_eq!(
        record["receipt"]["signature"]["key_id"],
        keys["keys"][0]["key_id"]
    );
    let found = discover(
        &host,
        "remove e-mail addresses and credit card numbers from a support ticket",
    )
    .await;
    assert!(
        found.iter().any(|id| id == "pii-redactor.redact"),
        "{found:?}"
    );
    // Compiled from the stored component (this host had no artifact).
    let (status, again) = redact(&host, &consumer.api_key).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    host.audit().await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_going_away_answers_503_and_the_host_recovers() {
    let Some(pg) = Postgres::start() else { return };
    let url = pg.database();
    let dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start_with(pg_config(dir.path(), &url)).await;
    let consumer = host.org("consumer").await;
    let (status, ready) = host.get("/readyz", None).await;
    assert_eq!(
        (status, ready["ready"].clone()),
        (StatusCode::OK, Value::Bool(true)),
        "{ready}"
    );

    pg.pause();
    let deposit = || async {
        host.http
            .post(format!(
                "{}/v1/accounts/{}/deposits",
                host.url, consumer.org_id
            ))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({ "amount_micros": 1_000 }))
            .timeout(Duration::from_secs(20))
            .send()
            .await
            .expect("an answer, not a hang")
    };
    // A deposit whose journal turn was committing when the database went
    // away is said to be unconfirmed (it may or may not have landed); the
    // others are refused before they change anything. Every answer is a 503
    // with Retry-After, none hangs.
    let mut unconfirmed = 0;
    for _ in 0..3 {
        let refused = deposit().await;
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(refused.headers().contains_key("retry-after"));
        let body: Value = refused.json().await.expect("json");
        let code = body["error"]["code"].as_str().unwrap_or("").to_string();
        assert!(code == "unavailable" || code == "unconfirmed", "{body}");
        unconfirmed += u64::from(code == "unconfirmed");
    }
    assert!(
        unconfirmed <= 1,
        "only an operation in flight is left unconfirmed"
    );
    let (status, ready) = host.get("/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["ready"], false);

    pg.resume();
    // Bounded: the host reconnects by itself.
    let started = Instant::now();
    let answered = loop {
        let response = deposit().await;
        if response.status() != StatusCode::SERVICE_UNAVAILABLE
            || started.elapsed() > Duration::from_secs(30)
        {
            break response.status();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        answered,
        StatusCode::CREATED,
        "the host recovered without a restart"
    );
    let balance = host.balance(&consumer).await;
    let credited = u(&balance["available_micros"]) - STARTING_BALANCE_MICROS;
    assert!(
        credited == 1_000 || credited == 1_000 * (1 + unconfirmed),
        "refused deposits were not credited, an unconfirmed one at most once: {credited}"
    );
    host.audit().await;
    host.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_migrate_moves_an_embedded_marketplace_into_postgres() {
    let Some(pg) = Postgres::start() else { return };
    let embedded_dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start(embedded_dir.path()).await;
    let provider = host.org("provider").await;
    let consumer = host.org("consumer").await;
    host.publish(&provider, "pii-redactor").await;
    for _ in 0..3 {
        let (status, call) = redact(&host, &consumer.api_key).await;
        assert_eq!(status, StatusCode::OK, "{call}");
    }
    let need = "remove e-mail addresses and credit card numbers from a support ticket";
    let found = discover(&host, need).await;
    let books = host.audit().await;
    let balances = (host.balance(&provider).await, host.balance(&consumer).await);
    let (_, keys) = host.get("/.well-known/mercato-keys.json", None).await;
    let (status, report) = host
        .get("/v1/capabilities/pii-redactor.redact/attestation", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    host.stop().await;

    let url = pg.database();
    let migrate = |url: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mercato-under-test"))
            .args(["store", "migrate", "--from"])
            .arg(embedded_dir.path())
            .args(["--to", url])
            .env("RUST_LOG", "warn")
            .output()
            .expect("mercato runs")
    };
    let moved = migrate(&url);
    let said = String::from_utf8_lossy(&moved.stdout).to_string()
        + &String::from_utf8_lossy(&moved.stderr);
    assert!(moved.status.success(), "{said}");
    assert!(said.contains("the books balance"), "{said}");
    // Into a database that already holds a marketplace: refused.
    let again = migrate(&url);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a marketplace"));

    let pg_dir = tempfile::tempdir().expect("tempdir");
    let host = Host::start_with(pg_config(pg_dir.path(), &url)).await;
    assert_eq!(host.audit().await, books);
    assert_eq!(
        (host.balance(&provider).await, host.balance(&consumer).await),
        balances
    );
    assert_eq!(discover(&host, need).await, found);
    let (_, same_keys) = host.get("/.well-known/mercato-keys.json", None).await;
    assert_eq!(same_keys, keys, "the marketplace key moved with it");
    let (_, same_report) = host
        .get("/v1/capabilities/pii-redactor.redact/attestation", None)
        .await;
    assert_eq!(same_report, report);
    let (status, call) = redact(&host, &consumer.api_key).await;
    assert_eq!(status, StatusCode::OK, "{call}");
    host.stop().await;
}
