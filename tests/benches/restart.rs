//! A replica of a marketplace with 10,000 listings, from start to ready.
//!
//! One real agent is published through a host on a PostgreSQL database of
//! the bench's own; the catalog is then grown to `RESTART_LISTINGS`
//! (default 10,000) agents by copying its records through the store under
//! new names, each capability with a description of its own (verb ×
//! object × domain × qualifier, `mercato_tests::synthetic`), as if published. Every copy names the
//! same component, so one compilation serves them all; what a start costs
//! per distinct component is measured apart (the artifact load).
//!
//! Then a replica starts on an empty data directory (cold: it compiles the
//! component, embeds every capability and builds its index), stops (its
//! index dump saved), and starts again on the same directory (warm) a few
//! times; each start is timed until `/readyz` answers 200, and every
//! listing is checked to be served.
//!
//! Run: `cargo bench -p mercato-tests --bench restart`

use mercato_host::store::{Database, Store, Tree};
use mercato_tests::postgres::Postgres;
use mercato_tests::synthetic::description;
use mercato_tests::{Host, test_config};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Copies agent `template`'s records `n` times as `synth-NNNNN`.
async fn grow(url: &str, template: &str, n: usize) {
    let cache = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let database = Database::parse(url, None).expect("database url");
    let store = Store::connect(&database, cache.path(), Duration::from_millis(5)).expect("store");
    let agent: Value = store
        .get(Tree::Agents, template)
        .expect("read")
        .expect("the template agent");
    let (key, version): (String, Value) = store
        .scan_prefix(Tree::Versions, &format!("{template}@"))
        .expect("read")
        .into_iter()
        .next()
        .expect("the template version");
    let report: Value = store
        .get(Tree::Reports, &key)
        .expect("read")
        .expect("the template report");
    let at = key.find('@').expect("agent@version");
    for i in 0..n {
        let name = format!("synth-{i:05}");
        let mut agent = agent.clone();
        agent["name"] = json!(name);
        let mut version = version.clone();
        version["agent"] = json!(name);
        if let Some(capabilities) = version["capabilities"].as_array_mut() {
            for capability in capabilities {
                capability["description"] = json!(description(i));
            }
        }
        let key = format!("{name}{}", &key[at..]);
        let written = store
            .put_agent_version(&name, None::<&Value>, &agent, &key, &version)
            .expect("write");
        assert!(written, "{name} is new");
        store.put(Tree::Reports, &key, &report).expect("write");
    }
    store.close().await.expect("flushed");
}

/// Starts a replica on `dir` and waits until it is ready.
async fn start(dir: &std::path::Path, url: &str) -> (Host, Duration) {
    let started = Instant::now();
    let mut config = test_config(dir);
    config.database_url = Some(mercato_host::config::DatabaseUrl(url.to_string()));
    let host = Host::start_with(config).await;
    loop {
        if host.get("/readyz", None).await.0 == StatusCode::OK {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(600), "never ready");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (host, started.elapsed())
}

/// Every listing served: the last synthetic one is listed and discovered.
async fn check(host: &Host, n: usize) {
    let last = format!("synth-{:05}", n - 1);
    let (_, found) = host
        .post(
            "/v1/discover",
            None,
            json!({ "need": description(n - 1), "limit": 10 }),
        )
        .await;
    let hits = found["results"].as_array().expect("results");
    assert!(
        hits.iter().any(|h| h["capability"]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with(&last))),
        "{found}"
    );
    let (_, health) = host.get("/healthz", None).await;
    println!("    /healthz: {health}");
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n: usize = std::env::var("RESTART_LISTINGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let Some(cluster) = Postgres::start_in(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")))
    else {
        println!("no PostgreSQL server binaries: nothing to measure");
        return;
    };
    let url = cluster.database();
    let seed_dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let mut config = test_config(seed_dir.path());
    config.database_url = Some(mercato_host::config::DatabaseUrl(url.clone()));
    let seed = Host::start_with(config).await;
    let provider = seed.org("provider").await;
    seed.publish(&provider, "unit-converter").await;
    seed.stop().await;
    let grown = Instant::now();
    grow(&url, "unit-converter", n).await;
    println!("catalog grown to {} agents in {:?}", n + 1, grown.elapsed());

    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let (host, cold) = start(dir.path(), &url).await;
    println!("cold start (empty data directory) to ready: {cold:?}");
    check(&host, n).await;
    host.stop().await;
    let mut warm = Vec::new();
    for _ in 0..3 {
        let (host, took) = start(dir.path(), &url).await;
        println!("warm restart (index dump, artifact cache) to ready: {took:?}");
        check(&host, n).await;
        host.stop().await;
        warm.push(took);
    }
    warm.sort();
    println!(
        "{} listings: cold {cold:?}, warm median {:?}",
        n + 1,
        warm[warm.len() / 2]
    );
}
