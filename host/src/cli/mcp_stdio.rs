//! `mercato mcp-stdio`: an MCP stdio server for desktop clients that relays
//! every message to a host's `/mcp` over Streamable HTTP, with the API key.
//!
//! A relay, not a second server: each JSON-RPC line from stdin becomes one
//! POST; a JSON answer becomes one line on stdout, an SSE answer one line per
//! event (progress notifications, then the result). The session id of the
//! 2025-11-25 revision and the negotiated protocol version travel as the
//! HTTP transport wants them; the 2026-07-28 revision carries its version in
//! each request's `_meta`, which is copied into the header. Requests run
//! concurrently (a `notifications/cancelled` can overtake a long call).

use anyhow::{Context, Result};
use futures::StreamExt;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

/// The longest line read from stdin (one JSON-RPC message).
const LINE_BYTES_MAX: usize = 8 << 20;
/// Messages relayed at once; more wait for a slot.
const IN_FLIGHT_MAX: usize = 64;
const SESSION_HEADER: &str = "mcp-session-id";
const VERSION_HEADER: &str = "mcp-protocol-version";
const VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";
const METHOD_HEADER: &str = "mcp-method";
const NAME_HEADER: &str = "mcp-name";

/// Whether a value can be sent as a header as is (printable ASCII, no
/// surrounding blanks); others are left to the body.
fn is_header_safe(value: &str) -> bool {
    !value.is_empty()
        && value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !value.starts_with(' ')
        && !value.ends_with(' ')
}

#[derive(Default)]
struct Session {
    id: Option<String>,
    version: Option<String>,
}

struct Relay {
    http: reqwest::Client,
    url: String,
    api_key: String,
    session: Mutex<Session>,
    out: mpsc::UnboundedSender<String>,
}

/// Runs the bridge until stdin closes. A host that cannot be reached at
/// start is an error (exit status 1), not a bridge that answers every
/// request with one.
pub async fn run(server: &str, api_key: &str, ca_cert: Option<&std::path::Path>) -> Result<()> {
    let http = super::http::client(ca_cert)?;
    // The host and the key are checked once, before any client talks.
    let me = format!("{}/v1/accounts/me", server.trim_end_matches('/'));
    let answer = http
        .get(&me)
        .bearer_auth(api_key)
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| super::error::unreachable(server, &e))?;
    if answer.status() == reqwest::StatusCode::UNAUTHORIZED {
        return Err(super::error::advise(
            format!("the host at {server} does not know this API key"),
            "check --api-key (or MERCATO_API_KEY); `mercato org create` prints a key once",
        ));
    }
    let (out, mut lines_out) = mpsc::unbounded_channel::<String>();
    let relay = Arc::new(Relay {
        http,
        url: format!("{}/mcp", server.trim_end_matches('/')),
        api_key: api_key.to_string(),
        session: Mutex::new(Session::default()),
        out,
    });
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(mut line) = lines_out.recv().await {
            line.push('\n');
            if stdout.write_all(line.as_bytes()).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT_MAX));
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        line.clear();
        let read = (&mut stdin)
            .take(LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut line)
            .await
            .context("reading stdin")?;
        if read == 0 {
            break;
        }
        if line.len() > LINE_BYTES_MAX {
            relay.reply_error(&Value::Null, -32600, "message too large");
            // Skip the rest of the oversized line.
            let mut rest = Vec::new();
            stdin.read_until(b'\n', &mut rest).await.ok();
            continue;
        }
        let text = String::from_utf8_lossy(&line).trim().to_string();
        if text.is_empty() {
            continue;
        }
        let message: Value = match serde_json::from_str(&text) {
            Ok(message) => message,
            Err(_) => {
                relay.reply_error(&Value::Null, -32700, "parse error");
                continue;
            }
        };
        let permit = slots.clone().acquire_owned().await.context("slots")?;
        let relay = relay.clone();
        tasks.spawn(async move {
            relay.forward(message).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    relay.close().await;
    drop(relay);
    let _ = writer.await;
    Ok(())
}

impl Relay {
    fn reply_error(&self, id: &Value, code: i64, message: &str) {
        let error =
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
        let _ = self.out.send(error.to_string());
    }

    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .request(method, &self.url)
            .bearer_auth(&self.api_key)
            .header("accept", "application/json, text/event-stream");
        let session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(id) = &session.id {
            request = request.header(SESSION_HEADER, id);
        }
        if let Some(version) = &session.version {
            request = request.header(VERSION_HEADER, version);
        }
        request
    }

    /// Relays one message and writes what comes back.
    async fn forward(&self, message: Value) {
        let id = message.get("id").cloned();
        let is_initialize = message["method"] == "initialize";
        let mut request = self.request(reqwest::Method::POST);
        if let Some(version) = message["params"]["_meta"][VERSION_META].as_str() {
            request = request.header(VERSION_HEADER, version);
        }
        // The 2026-07-28 revision routes on the method and its target, as
        // headers that must agree with the body.
        if let Some(method) = message["method"].as_str().filter(|m| is_header_safe(m)) {
            request = request.header(METHOD_HEADER, method);
            let target = match method {
                "tools/call" | "prompts/get" => message["params"]["name"].as_str(),
                "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
                    message["params"]["uri"].as_str()
                }
                _ => None,
            };
            if let Some(target) = target.filter(|t| is_header_safe(t)) {
                request = request.header(NAME_HEADER, target);
            }
        }
        let response = match request.json(&message).send().await {
            Ok(response) => response,
            Err(e) => {
                if let Some(id) = &id {
                    self.reply_error(id, -32603, &format!("cannot reach the host: {e}"));
                }
                return;
            }
        };
        if let Some(session) = response.headers().get(SESSION_HEADER)
            && let Ok(session) = session.to_str()
        {
            self.session.lock().unwrap_or_else(|e| e.into_inner()).id = Some(session.into());
        }
        let status = response.status();
        let is_stream = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if status == reqwest::StatusCode::ACCEPTED {
            return;
        }
        if is_stream {
            self.relay_events(response, is_initialize).await;
            return;
        }
        match response.json::<Value>().await {
            Ok(body) if body.get("jsonrpc").is_some() => self.emit(body, is_initialize),
            Ok(body) => {
                if let Some(id) = &id {
                    let message = body["error"]["message"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("HTTP {status}"));
                    self.reply_error(id, -32603, &format!("host refused: {message}"));
                }
            }
            Err(e) => {
                if let Some(id) = &id {
                    self.reply_error(id, -32603, &format!("HTTP {status}: {e}"));
                }
            }
        }
    }

    /// Writes a message from the host, learning the negotiated version from
    /// an `initialize` result.
    fn emit(&self, message: Value, is_initialize: bool) {
        if is_initialize && let Some(version) = message["result"]["protocolVersion"].as_str() {
            self.session
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .version = Some(version.to_string());
        }
        let _ = self.out.send(message.to_string());
    }

    async fn relay_events(&self, response: reqwest::Response, is_initialize: bool) {
        let mut body = response.bytes_stream();
        let mut buffer = String::new();
        while let Some(Ok(bytes)) = body.next().await {
            buffer.push_str(&String::from_utf8_lossy(&bytes).replace('\r', ""));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                if data.is_empty() {
                    continue;
                }
                if let Ok(message) = serde_json::from_str::<Value>(&data.join("\n")) {
                    self.emit(message, is_initialize);
                }
            }
            if buffer.len() > LINE_BYTES_MAX {
                break;
            }
        }
    }

    /// Ends a 2025-11-25 session.
    async fn close(&self) {
        if self
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .id
            .is_some()
        {
            let _ = self.request(reqwest::Method::DELETE).send().await;
        }
    }
}
