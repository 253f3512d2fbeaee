//! Crash safety: a real `mercato serve` process is killed with SIGKILL in the
//! middle of a load of paid invocations, then restarted on the same data
//! directory. No hold is left pending, the books balance, and every call the
//! client saw succeed is recorded with the charge it reported.

use mercato_host::identity::signing;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const ADMIN: &str = "crash-test-admin";
const DEPOSIT: u64 = 1_000_000_000;

/// The sample agents, built by the same command as `tests/build.rs` (a
/// no-op when they are already built).
fn redactor() -> (Vec<u8>, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = root.join("target/sample-agents");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(root.join("sample-agents/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(status.success(), "the sample agents build");
    let wasm = std::fs::read(target.join("wasm32-wasip2/release/pii_redactor.wasm"))
        .expect("pii_redactor.wasm");
    let manifest = std::fs::read_to_string(root.join("sample-agents/pii-redactor/mercato.toml"))
        .expect("manifest");
    (wasm, manifest)
}

/// Starts `mercato serve` and waits for its address on stderr.
fn serve(data_dir: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mercato"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("MERCATO_ADMIN_TOKEN", ADMIN)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("mercato starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let url = loop {
        let line = lines
            .next()
            .expect("the host says where it listens")
            .expect("stderr line");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.split_whitespace().next().expect("url").to_string();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }

    async fn post(&self, path: &str, key: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, key, Some(body))
            .await
    }

    async fn get(&self, path: &str, key: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, key, None).await
    }

    async fn org(&self, name: &str) -> (String, String) {
        let (status, body) = self.post("/v1/orgs", "", json!({ "name": name })).await;
        assert_eq!(status, 201, "{body}");
        let id = body["org_id"].as_str().expect("id").to_string();
        let key = body["api_key"].as_str().expect("key").to_string();
        let (status, body) = self
            .post(
                &format!("/v1/accounts/{id}/deposits"),
                ADMIN,
                json!({ "amount_micros": DEPOSIT }),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (id, key)
    }
}

fn hex_sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sigkill_during_paid_load_loses_no_money_and_no_acknowledged_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data_dir: PathBuf = dir.path().join("data");
    let (wasm, manifest) = redactor();
    let (mut child, url) = serve(&data_dir);
    let client = Arc::new(Client {
        http: reqwest::Client::new(),
        url,
    });

    // A verified provider publishes, signed; a consumer is funded.
    let (provider_id, provider_key) = client.org("provider").await;
    let (status, _) = client
        .post(&format!("/v1/orgs/{provider_id}/verify"), ADMIN, json!({}))
        .await;
    assert_eq!(status, 200);
    let key = signing::generate_signing_key();
    let (status, _) = client
        .post(
            &format!("/v1/orgs/{provider_id}/keys"),
            &provider_key,
            json!({ "public_key": signing::public_key_hex(&key.verifying_key()) }),
        )
        .await;
    assert_eq!(status, 201);
    let signature = serde_json::to_string(&signing::UploadSignature {
        key_id: signing::key_id(&key.verifying_key()),
        signature: signing::sign_bytes(
            &key,
            &signing::upload_statement(&hex_sha(&wasm), &hex_sha(manifest.as_bytes())),
        ),
    })
    .expect("json");
    let form = reqwest::multipart::Form::new()
        .part(
            "component",
            reqwest::multipart::Part::bytes(wasm).file_name("a.wasm"),
        )
        .text("manifest", manifest)
        .text("signature", signature);
    let response = client
        .http
        .post(format!("{}/v1/components", client.url))
        .bearer_auth(&provider_key)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status().as_u16(), 201);
    let (consumer_id, consumer_key) = client.org("consumer").await;

    // Load: bounded workers and calls; kill the host once enough succeeded.
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, u64)>::new()));
    let successes = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (client, acknowledged, successes, killed) = (
            client.clone(),
            acknowledged.clone(),
            successes.clone(),
            killed.clone(),
        );
        let key = consumer_key.clone();
        workers.push(tokio::spawn(async move {
            for i in 0..200 {
                if killed.load(Ordering::SeqCst) {
                    break;
                }
                let (status, body) = client
                    .post(
                        "/v1/capabilities/pii-redactor.redact/invoke",
                        &key,
                        json!({ "input": { "text": format!("{w}/{i}: mail a{i}@b.io") }, "max_price_micros": 50_000 }),
                    )
                    .await;
                if status == 200 {
                    let tx = body["transaction_id"].as_str().expect("tx").to_string();
                    let charged = body["charged_micros"].as_u64().expect("charged");
                    acknowledged.lock().expect("lock").push((tx, charged));
                    successes.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    for _ in 0..6_000 {
        if successes.load(Ordering::SeqCst) >= 150 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    child.kill().expect("SIGKILL");
    killed.store(true, Ordering::SeqCst);
    child.wait().expect("reaped");
    for w in workers {
        w.await.expect("worker");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() >= 150,
        "load ran: {}",
        acknowledged.len()
    );

    // Restart on the same data directory.
    let (mut child, url) = serve(&data_dir);
    let client = Client {
        http: reqwest::Client::new(),
        url,
    };
    let (status, audit) = client.get("/v1/admin/ledger", ADMIN).await;
    assert_eq!(status, 200, "{audit}");
    assert_eq!(audit["problem"], Value::Null, "{audit}");
    assert_eq!(audit["pending_micros"], 0, "no hold survives: {audit}");
    let total = |k: &str| audit[k].as_u64().expect(k);
    assert_eq!(total("deposited_micros"), 2 * DEPOSIT);
    assert_eq!(
        total("organisations_micros") + total("escrow_micros") + total("fees_micros"),
        total("deposited_micros")
    );
    // Every acknowledged call is recorded with the charge the client saw.
    let mut acknowledged_sum = 0;
    for (tx, charged) in &acknowledged {
        let (status, record) = client
            .get(&format!("/v1/transactions/{tx}"), &consumer_key)
            .await;
        assert_eq!(status, 200, "{tx} was acknowledged but is not recorded");
        assert_eq!(record["charged_micros"].as_u64(), Some(*charged));
        assert_eq!(record["settlement"], "escrowed");
        acknowledged_sum += charged;
    }
    // The consumer paid for at least those (a call captured just before the
    // kill may have lost only its response), and exactly what escrow holds.
    let (_, balance) = client.get("/v1/accounts/me", &consumer_key).await;
    let out = balance["escrowed_out_micros"].as_u64().expect("escrowed");
    assert!(out >= acknowledged_sum, "{out} < {acknowledged_sum}");
    assert_eq!(balance["available_micros"].as_u64(), Some(DEPOSIT - out));
    assert_eq!(balance["pending_micros"], 0);
    assert_eq!(total("escrow_micros"), out);
    let _ = consumer_id;
    child.kill().expect("stop");
    child.wait().expect("reaped");
}
