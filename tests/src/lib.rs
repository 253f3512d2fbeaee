//! Test harness: a real Mercato host on `127.0.0.1:0` with a temporary data
//! directory, real sample-agent components, and a real HTTP client.

pub mod browser;
pub mod postgres;
pub mod replicas;
pub mod synthetic;

use mercato_host::config::Config;
use mercato_host::identity::signing;
use mercato_host::market::Upload;
use mercato_host::server::Server;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The bytes of a built sample agent, by crate name (`pii-redactor`).
pub fn component(agent: &str) -> Vec<u8> {
    let file = format!("{}.wasm", agent.replace('-', "_"));
    let path = Path::new(env!("MERCATO_AGENTS_WASM_DIR")).join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The upload manifest of a sample agent (`pii-redactor`, `hostile/misbehaver`).
pub fn manifest(agent: &str) -> String {
    let path = Path::new(env!("MERCATO_SAMPLES_DIR"))
        .join(agent)
        .join("mercato.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// A file under `sample-agents/`.
pub fn sample_file(path: &str) -> Vec<u8> {
    let path = Path::new(env!("MERCATO_SAMPLES_DIR")).join(path);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The config tests run with: a 1 s deadline so hostile calls end quickly,
/// uploads compiled in a child process.
pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config {
        data_dir: data_dir.to_path_buf(),
        listen: "127.0.0.1:0".parse().expect("valid address"),
        admin_token: Some(ADMIN_TOKEN.into()),
        ..Config::default()
    };
    config.sandbox.deadline_ms = 1_000;
    // Uploads compile in a child process, as under `mercato serve`.
    config.compiler_exe = compiler_under_test();
    config
}

/// A JSON-RPC answer sent as JSON, or as the last `data:` line of an SSE
/// stream (MCP over Streamable HTTP answers either way).
pub fn jsonrpc_answer(text: &str) -> Value {
    let json_text = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("data:"))
        .unwrap_or(text)
        .trim();
    serde_json::from_str(json_text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The `mercato-under-test` binary cargo builds beside the integration
/// tests (`target/<profile>/`), which compiles components as `mercato` does.
pub fn compiler_under_test() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("mercato-under-test");
    bin.is_file().then_some(bin)
}

/// A running host and a client for it.
pub struct Host {
    server: Server,
    /// `http://127.0.0.1:port`.
    pub url: String,
    /// The client.
    pub http: reqwest::Client,
    /// The data directory.
    pub data_dir: PathBuf,
}

/// An organisation registered through the API.
#[derive(Debug, Clone)]
pub struct Org {
    /// Its id.
    pub org_id: String,
    /// Its bearer key.
    pub api_key: String,
    /// Its registered signing key (private half, hex), when it has one.
    pub signing_key: Option<String>,
}

/// What [`Host::org`] deposits: 1,000 currency units.
pub const STARTING_BALANCE_MICROS: u64 = 1_000_000_000;

/// The admin token of [`test_config`].
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// A new private signing key, hex.
pub fn new_signing_key() -> String {
    hex_key(&signing::generate_signing_key())
}

fn hex_key(key: &ed25519_dalek::SigningKey) -> String {
    hex_digest(&key.to_bytes())
}

/// The public half of a private key, hex.
pub fn public_key(private_hex: &str) -> String {
    let key = signing::parse_signing_key(private_hex).expect("a key");
    signing::public_key_hex(&key.verifying_key())
}

/// The `signature` field of an upload, signed by `private_hex`.
pub fn upload_signature(private_hex: &str, wasm: &[u8], manifest: &str) -> String {
    use sha2::Digest;
    let key = signing::parse_signing_key(private_hex).expect("a key");
    let statement = signing::upload_statement(
        &hex_digest(&sha2::Sha256::digest(wasm)),
        &hex_digest(&sha2::Sha256::digest(manifest.as_bytes())),
    );
    serde_json::to_string(&signing::UploadSignature {
        key_id: signing::key_id(&key.verifying_key()),
        signature: signing::sign_bytes(&key, &statement),
    })
    .expect("encodes")
}

fn hex_digest(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An [`Upload`] signed by `private_hex` (for in-process markets).
pub fn signed_upload(private_hex: &str, wasm: Vec<u8>, manifest: String) -> Upload {
    let signature = upload_signature(private_hex, &wasm, &manifest);
    Upload {
        component: wasm,
        manifest,
        signature: Some(signature),
    }
}

impl Host {
    /// Starts a host on `config`.
    pub async fn start_with(config: Config) -> Host {
        let data_dir = config.data_dir.clone();
        let server = Server::start(config)
            .await
            .unwrap_or_else(|e| panic!("host does not start: {e}"));
        let url = server.url();
        Host {
            server,
            url,
            http: reqwest::Client::new(),
            data_dir,
        }
    }

    /// Starts a host on `data_dir` with [`test_config`].
    pub async fn start(data_dir: &Path) -> Host {
        Host::start_with(test_config(data_dir)).await
    }

    /// Stops it, flushing the store.
    pub async fn stop(self) {
        self.server
            .stop()
            .await
            .unwrap_or_else(|e| panic!("host does not stop cleanly: {e}"));
    }

    /// The market behind the server (for counters a client cannot see).
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// Registers an organisation, has the admin verify it, registers a
    /// signing key and deposits [`STARTING_BALANCE_MICROS`]: ready to
    /// publish and to buy.
    pub async fn org(&self, name: &str) -> Org {
        let mut org = self.org_unverified(name).await;
        let (status, body) = self
            .post(
                &format!("/v1/orgs/{}/verify", org.org_id),
                Some(ADMIN_TOKEN),
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let key = new_signing_key();
        self.add_key(&org, &public_key(&key)).await;
        org.signing_key = Some(key);
        self.deposit(&org, STARTING_BALANCE_MICROS).await;
        org
    }

    /// Credits `org` (admin deposit), asserting success.
    pub async fn deposit(&self, org: &Org, amount_micros: u64) {
        let (status, body) = self
            .post(
                &format!("/v1/accounts/{}/deposits", org.org_id),
                Some(ADMIN_TOKEN),
                json!({ "amount_micros": amount_micros }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// The books as the operator's audit reports them (`GET
    /// /v1/admin/ledger`), checked to have no problem and to balance:
    /// deposits = organisations + escrow + fees.
    pub async fn audit(&self) -> Value {
        let (status, body) = self.get("/v1/admin/ledger", Some(ADMIN_TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["problem"], Value::Null, "{body}");
        let n = |key: &str| {
            body[key]
                .as_u64()
                .unwrap_or_else(|| panic!("{key} is not a number: {body}"))
        };
        assert_eq!(
            n("organisations_micros") + n("escrow_micros") + n("fees_micros"),
            n("deposited_micros"),
            "not conserved: {body}"
        );
        body
    }

    /// `GET /v1/accounts/me` for `org`.
    pub async fn balance(&self, org: &Org) -> Value {
        let (status, body) = self.get("/v1/accounts/me", Some(&org.api_key)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Registers an organisation only (not verified, no signing key), as
    /// the operator (anonymous registration is rate-limited per address).
    pub async fn org_unverified(&self, name: &str) -> Org {
        let (status, body) = self
            .post("/v1/orgs", Some(ADMIN_TOKEN), json!({ "name": name }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        Org {
            org_id: body["org_id"].as_str().expect("org_id").into(),
            api_key: body["api_key"].as_str().expect("api_key").into(),
            signing_key: None,
        }
    }

    /// Registers a public key for `org`, asserting success; returns its id.
    pub async fn add_key(&self, org: &Org, public_key: &str) -> String {
        let (status, body) = self
            .post(
                &format!("/v1/orgs/{}/keys", org.org_id),
                Some(&org.api_key),
                json!({ "public_key": public_key }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["key_id"].as_str().expect("key_id").into()
    }

    /// GET, returning status and JSON body.
    pub async fn get(&self, path: &str, key: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.http.get(format!("{}{path}", self.url));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("request reaches the host");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// POST JSON, returning status and JSON body.
    pub async fn post(&self, path: &str, key: Option<&str>, body: Value) -> (StatusCode, Value) {
        let mut request = self.http.post(format!("{}{path}", self.url)).json(&body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("request reaches the host");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Uploads component bytes and a manifest, signed by `org`'s key.
    pub async fn upload(&self, org: &Org, wasm: Vec<u8>, manifest: String) -> (StatusCode, Value) {
        let signature = org
            .signing_key
            .as_deref()
            .map(|key| upload_signature(key, &wasm, &manifest));
        self.upload_raw(&org.api_key, wasm, manifest, signature)
            .await
    }

    /// Uploads with exactly this `signature` field (or none).
    pub async fn upload_raw(
        &self,
        api_key: &str,
        wasm: Vec<u8>,
        manifest: String,
        signature: Option<String>,
    ) -> (StatusCode, Value) {
        let mut form = reqwest::multipart::Form::new()
            .part(
                "component",
                reqwest::multipart::Part::bytes(wasm).file_name("agent.wasm"),
            )
            .text("manifest", manifest);
        if let Some(signature) = signature {
            form = form.text("signature", signature);
        }
        let response = self
            .http
            .post(format!("{}/v1/components", self.url))
            .bearer_auth(api_key)
            .multipart(form)
            .send()
            .await
            .expect("request reaches the host");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Publishes a sample agent listed without its rate limit (for load
    /// tests, which the listed 600 a minute would throttle), asserting success.
    pub async fn publish_unthrottled(&self, org: &Org, agent: &str) {
        let name = agent.rsplit('/').next().unwrap_or(agent);
        let unthrottled =
            manifest(agent).replace("rate_limit_per_minute = 600", "rate_limit_per_minute = 0");
        let (status, body) = self.upload(org, component(name), unthrottled).await;
        assert!(
            status.is_success(),
            "publishing {agent} unthrottled: {body}"
        );
    }

    /// Publishes a sample agent (`pii-redactor`, `hostile/misbehaver`), asserting success.
    pub async fn publish(&self, org: &Org, agent: &str) -> Value {
        let name = agent.rsplit('/').next().unwrap_or(agent);
        let (status, body) = self.upload(org, component(name), manifest(agent)).await;
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "publishing {agent}: {status} {body}"
        );
        body
    }

    /// Sets `org`'s budget (`PUT /v1/accounts/me/budget`): the status and body.
    pub async fn put_budget(&self, org: &Org, budget: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .put(format!("{}/v1/accounts/me/budget", self.url))
            .bearer_auth(&org.api_key)
            .json(&budget)
            .send()
            .await
            .expect("put budget");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Invokes a capability.
    pub async fn invoke(
        &self,
        key: &str,
        id: &str,
        input: Value,
        max_price_micros: Option<u64>,
    ) -> (StatusCode, Value) {
        let mut body = json!({ "input": input });
        if let Some(cap) = max_price_micros {
            body["max_price_micros"] = cap.into();
        }
        self.post(&format!("/v1/capabilities/{id}/invoke"), Some(key), body)
            .await
    }

    /// A person's session on the pages (the cookie's `name=value`), signed
    /// in with an API key or an approver's token.
    pub async fn session(&self, key: &str) -> String {
        let response = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .post(format!("{}/signin", self.url))
            .form(&[("key", key), ("next", "/account")])
            .send()
            .await
            .expect("sign in");
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        let cookie = response.headers()[reqwest::header::SET_COOKIE]
            .to_str()
            .expect("cookie");
        cookie.split(';').next().expect("name=value").to_string()
    }

    /// The `/metrics` exposition.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// A counter from `/metrics` (sum over its label sets), 0 if absent.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.metrics_text().await;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| l.split(['{', ' ']).next() == Some(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// Asserts the error shape and code of a response.
pub fn assert_error(status: StatusCode, body: &Value, expected_status: StatusCode, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// The third-party protocol clients the agent front-door tests drive (PyPI
/// `mcp` and `a2a-sdk` in a virtual environment, npm
/// `@modelcontextprotocol/sdk`), installed by `scripts/fetch-clients` into
/// `target/clients` (never into the repository).
pub mod clients {
    use serde_json::Value;
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    /// Longest a client script may run.
    const CLIENT_TIMEOUT: Duration = Duration::from_secs(180);

    /// `target/clients` of this workspace.
    pub fn dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../target/clients")
            .canonicalize()
            .unwrap_or_else(|_| {
                panic!("the protocol clients are not installed: run scripts/fetch-clients")
            })
    }

    /// A script under `tests/clients/`.
    pub fn script(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("clients")
            .join(name)
    }

    /// Node.js, with a script copied next to `target/clients/node_modules`
    /// (ES modules resolve packages from the script's own directory).
    pub fn node_script(name: &str) -> (PathBuf, PathBuf) {
        let dir = dir();
        assert!(
            dir.join("node_modules/@modelcontextprotocol/sdk").exists(),
            "no MCP TypeScript SDK in {}: run scripts/fetch-clients",
            dir.display()
        );
        let copy = dir.join(name);
        std::fs::copy(script(name), &copy)
            .unwrap_or_else(|e| panic!("cannot copy {name} to {}: {e}", copy.display()));
        (PathBuf::from("node"), copy)
    }

    /// The virtual environment's Python.
    pub fn python() -> PathBuf {
        let python = dir().join("venv/bin/python");
        assert!(
            python.exists(),
            "no {}: run scripts/fetch-clients",
            python.display()
        );
        python
    }

    /// Runs a client program to completion (bounded), asserting it succeeds,
    /// and parses the JSON document it prints last.
    pub async fn run(program: &Path, args: &[&str]) -> Value {
        let output = tokio::time::timeout(
            CLIENT_TIMEOUT,
            tokio::process::Command::new(program)
                .args(args)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap_or_else(|_| panic!("{} {args:?} did not finish", program.display()))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{} {args:?} failed ({}):\n{stderr}\n{stdout}",
            program.display(),
            output.status
        );
        let last = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("client output is not JSON ({e}):\n{stdout}\n{stderr}"))
    }
}
