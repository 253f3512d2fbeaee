//! What the fuzz targets share: one real host (a `Market` on a temporary
//! store, the REST router in front of it) built once per process, driven
//! in-process through `tower` without sockets, and a verified, funded
//! organisation to call it as.
//!
//! Every target's invariant is the same: no input panics the host, and none
//! is answered 500 (an internal error is a bug: every bad input has its own
//! code).

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use mercato_host::config::{Config, Signup};
use mercato_host::identity::signing;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::OnceLock;
use tower::ServiceExt;

/// The admin token of the fuzzed host.
pub const ADMIN: &str = "fuzz-admin";

/// The host under fuzzing.
pub struct Fuzzed {
    /// Runs the host's futures.
    pub runtime: tokio::runtime::Runtime,
    /// The REST router (MCP and A2A mounted).
    pub app: Router,
    /// A verified, funded organisation's API key.
    pub api_key: String,
    /// Its signing key, hex (registered).
    pub signing_key: String,
    /// Keeps the data directory for the life of the process.
    _dir: tempfile::TempDir,
}

/// The host, built on first use.
pub fn host() -> &'static Fuzzed {
    static HOST: OnceLock<Fuzzed> = OnceLock::new();
    HOST.get_or_init(build)
}

fn build() -> Fuzzed {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        admin_token: Some(ADMIN.into()),
        signup: Signup::Open,
        unproven_creations_per_minute: 0,
        ..Config::default()
    };
    config.sandbox.concurrent_calls_max = 4;
    config.sandbox.deadline_ms = 1_000;
    config.compile_ms_max = 5_000;
    let (app, api_key, signing_key) = runtime.block_on(async {
        let (market, _) = mercato_host::market::Market::open(config)
            .await
            .expect("market");
        let app = mercato_host::api::app(market);
        let (_, org) = call(
            &app,
            "POST",
            "/v1/orgs",
            Some(ADMIN),
            json!({"name": "fuzz"}),
        )
        .await;
        let org_id = org["org_id"].as_str().expect("org id").to_string();
        let api_key = org["api_key"].as_str().expect("api key").to_string();
        call(
            &app,
            "POST",
            &format!("/v1/orgs/{org_id}/verify"),
            Some(ADMIN),
            json!({}),
        )
        .await;
        call(
            &app,
            "POST",
            &format!("/v1/accounts/{org_id}/deposits"),
            Some(ADMIN),
            json!({"amount_micros": 1_000_000_000u64}),
        )
        .await;
        let signing_key = hex(signing::generate_signing_key().to_bytes());
        let public = signing::public_key_hex(
            &signing::parse_signing_key(&signing_key)
                .expect("key")
                .verifying_key(),
        );
        call(
            &app,
            "POST",
            &format!("/v1/orgs/{org_id}/keys"),
            Some(&api_key),
            json!({"public_key": public}),
        )
        .await;
        (app, api_key, signing_key)
    });
    Fuzzed {
        runtime,
        app,
        api_key,
        signing_key,
        _dir: dir,
    }
}

fn hex(bytes: [u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Sends one request with a JSON body; the status and the JSON answer.
async fn call(
    app: &Router,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut request = http_request(
        method,
        path,
        key,
        "application/json",
        body.to_string().into_bytes(),
    );
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 1))));
    let response = app.clone().oneshot(request).await.expect("infallible");
    let status = response.status().as_u16();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn http_request(
    method: &str,
    path: &str,
    key: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> axum::http::Request<Body> {
    let mut builder = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", content_type);
    if let Some(key) = key {
        builder = builder.header("authorization", format!("Bearer {key}"));
    }
    builder.body(Body::from(body)).expect("request")
}

impl Fuzzed {
    /// Sends `body` to `path` as the fuzzing organisation with these extra
    /// headers, reads the whole answer (a stream for at most 2 s) and
    /// checks the invariant: never a 500.
    pub fn send(&self, path: &str, content_type: &str, headers: &[(&str, &str)], body: Vec<u8>) {
        self.runtime.block_on(async {
            let mut request = http_request("POST", path, Some(&self.api_key), content_type, body);
            for (name, value) in headers {
                request.headers_mut().insert(
                    axum::http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
                    axum::http::HeaderValue::from_str(value).expect("header value"),
                );
            }
            request
                .extensions_mut()
                .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 1))));
            let response = self.app.clone().oneshot(request).await.expect("infallible");
            let status = response.status().as_u16();
            let body = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                response.into_body().collect(),
            )
            .await;
            let text = match body {
                Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes.to_bytes()).into_owned(),
                _ => String::new(),
            };
            assert_ne!(status, 500, "an internal error: {text}");
            // A JSON-RPC answer (A2A, MCP) may say it in its body instead.
            if let Ok(answer) = serde_json::from_str::<Value>(&text) {
                let code = &answer["error"]["code"];
                assert!(
                    code != "internal" && code != -32603,
                    "an internal error in the answer: {text}"
                );
            }
        });
    }
}
