//! The fast path for the hot request: a `tools/call` without a progress
//! token, answered as one JSON response by the same handler
//! ([`Mercato::call`]) without rmcp's per-request machinery (a service and
//! a task per request, channels between them, and the generic message
//! enum's deserialisation: +150 µs a call, docs/BENCHMARKS.md §8). It takes
//! a stateless (2026-07-28) call ([`answer`]), and a call in a 2025-11-25
//! session ([`session_call`], [`answer_call`]) once the door has checked
//! the session (`api/mcp.rs`).
//!
//! The fast path takes a request only when it is sure of it: the headers
//! and `_meta` the revision requires are present and agree with the body.
//! Anything else, including every malformed request, goes to rmcp, which
//! answers it the spec's way.

use super::Mercato;
use crate::identity::Org;
use http::HeaderMap;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ErrorData, ServerResult,
};
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The stateless revision.
const VERSION: &str = "2026-07-28";
/// The session revision whose calls the fast path takes.
const SESSION_VERSION: &str = "2025-11-25";
const VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";
const CAPABILITIES_META: &str = "io.modelcontextprotocol/clientCapabilities";

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether the headers announce a request the fast path may take (cheap:
/// decides whether the body is read here).
pub fn applies(headers: &HeaderMap) -> bool {
    let accept = header(headers, "accept").unwrap_or("");
    header(headers, "mcp-protocol-version") == Some(VERSION)
        && header(headers, "mcp-method") == Some("tools/call")
        && header(headers, "content-type").is_some_and(|t| t.starts_with("application/json"))
        && accept.contains("application/json")
        && accept.contains("text/event-stream")
}

/// Whether the `Host` header names an allowed host (`allowed` as the
/// config spells it: names or `name:port`, `*` for any).
pub fn host_allowed(allowed: &[String], headers: &HeaderMap) -> bool {
    if allowed.iter().any(|h| h == "*") {
        return true;
    }
    let Some(host) = header(headers, "host").map(str::to_ascii_lowercase) else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host
            .rsplit_once(':')
            .map_or(host.as_str(), |(name, _)| name),
    };
    allowed
        .iter()
        .any(|a| a.eq_ignore_ascii_case(&host) || a.eq_ignore_ascii_case(name))
}

/// A parsed `tools/call` the fast path takes.
#[derive(Deserialize)]
pub struct Call {
    jsonrpc: String,
    id: Value,
    method: String,
    params: CallToolRequestParams,
}

/// Answers the request if the fast path takes it (the JSON-RPC response to
/// send with 200), or hands the body back for rmcp.
pub async fn answer(
    server: &Mercato,
    headers: &HeaderMap,
    body: &[u8],
    org: Org,
    scope: Option<&super::AgentScope>,
) -> Option<Vec<u8>> {
    let call: Call = serde_json::from_slice(body).ok()?;
    let id_ok = call.id.is_string() || call.id.is_i64() || call.id.is_u64();
    if call.jsonrpc != "2.0" || call.method != "tools/call" || !id_ok {
        return None;
    }
    let meta = call.params.meta.as_ref()?;
    let sure = meta.get(VERSION_META).and_then(Value::as_str) == Some(VERSION)
        && meta.get(CAPABILITIES_META).is_some_and(Value::is_object)
        && meta.get_progress_token().is_none()
        && !meta.contains_key("progressToken")
        && header(headers, "mcp-name") == Some(call.params.name.as_ref());
    if !sure {
        return None;
    }
    Some(
        answer_call(
            server,
            call,
            org,
            CancellationToken::new(),
            scope,
            Revision::Stateless,
        )
        .await,
    )
}

/// The `tools/call` a POST in a 2025-11-25 session carries, if the fast
/// path may take it: the session revision's header, both answer types
/// accepted, no progress token (progress needs the session's stream), and
/// any `Mcp-Method` / `Mcp-Name` headers agreeing with the body.
pub fn session_call(headers: &HeaderMap, body: &[u8]) -> Option<Call> {
    let accept = header(headers, "accept").unwrap_or("");
    let sure_headers = header(headers, "mcp-protocol-version") == Some(SESSION_VERSION)
        && header(headers, "content-type").is_some_and(|t| t.starts_with("application/json"))
        && accept.contains("application/json")
        && accept.contains("text/event-stream")
        && header(headers, "mcp-method").is_none_or(|m| m == "tools/call");
    if !sure_headers {
        return None;
    }
    let call: Call = serde_json::from_slice(body).ok()?;
    let id_ok = call.id.is_string() || call.id.is_i64() || call.id.is_u64();
    let no_progress = call.params.meta.as_ref().is_none_or(|meta| {
        meta.get_progress_token().is_none() && !meta.contains_key("progressToken")
    });
    let named = header(headers, "mcp-name").is_none_or(|n| n == call.params.name.as_ref());
    (call.jsonrpc == "2.0" && call.method == "tools/call" && id_ok && no_progress && named)
        .then_some(call)
}

impl Call {
    /// The request id as JSON text (the key a `notifications/cancelled`
    /// names it by).
    pub fn id_text(&self) -> String {
        self.id.to_string()
    }
}

/// The id a `notifications/cancelled` names, as JSON text.
pub fn cancelled_request(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Params {
        #[serde(rename = "requestId")]
        request_id: Value,
    }
    #[derive(Deserialize)]
    struct Notification {
        method: String,
        params: Params,
    }
    let n: Notification = serde_json::from_slice(body).ok()?;
    (n.method == "notifications/cancelled").then(|| n.params.request_id.to_string())
}

/// Which revision's wire shape an answer takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revision {
    /// 2026-07-28: `resultType` and any structured content.
    Stateless,
    /// 2025-11-25: no `resultType`, structured content an object (rmcp's
    /// own rules for a peer of that revision).
    Session,
}

/// Runs `call` for `org` and serialises its JSON-RPC answer in
/// `revision`'s shape; `cancel` ends the call as cancelled.
pub async fn answer_call(
    server: &Mercato,
    call: Call,
    org: Org,
    cancel: CancellationToken,
    scope: Option<&super::AgentScope>,
    revision: Revision,
) -> Vec<u8> {
    server.market.metrics().mcp_fast_calls.inc();
    let mut answer = server.call(call.params, org, None, cancel, scope).await;
    if revision == Revision::Session
        && let Ok(CallToolResponse::Complete(result)) = &mut answer
    {
        let taken = std::mem::replace(result, CallToolResult::success(Vec::new()));
        let mut shaped = ServerResult::CallToolResult(taken);
        shaped.strip_result_type_for_legacy_peer();
        shaped.strip_non_object_output_for_legacy_peer();
        if let ServerResult::CallToolResult(shaped) = shaped {
            *result = shaped;
        }
    }
    // Serialised straight from the result (no intermediate JSON tree).
    let bytes = match &answer {
        Ok(CallToolResponse::Complete(result)) => serde_json::to_vec(&Reply {
            jsonrpc: "2.0",
            id: &call.id,
            result: Some(result),
            error: None,
        }),
        Ok(_) => serde_json::to_vec(&Reply {
            jsonrpc: "2.0",
            id: &call.id,
            result: None,
            error: Some(&ErrorData::internal_error("unexpected tool response", None)),
        }),
        Err(error) => serde_json::to_vec(&Reply {
            jsonrpc: "2.0",
            id: &call.id,
            result: None,
            error: Some(error),
        }),
    };
    bytes.unwrap_or_default()
}

/// A JSON-RPC response, borrowed.
#[derive(serde::Serialize)]
struct Reply<'a> {
    jsonrpc: &'static str,
    id: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a CallToolResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a ErrorData>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_host(host: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("host", host.parse().expect("header"));
        headers
    }

    #[test]
    fn hosts_match_by_name_or_name_and_port() {
        let allowed = vec![
            "market.example".to_string(),
            "localhost:8080".to_string(),
            "::1".to_string(),
        ];
        assert!(host_allowed(&allowed, &with_host("market.example")));
        assert!(host_allowed(&allowed, &with_host("Market.Example:443")));
        assert!(host_allowed(&allowed, &with_host("localhost:8080")));
        assert!(host_allowed(&allowed, &with_host("[::1]:9000")));
        assert!(!host_allowed(&allowed, &with_host("evil.example")));
        assert!(!host_allowed(
            &allowed,
            &with_host("market.example.evil.example")
        ));
        assert!(!host_allowed(&allowed, &HeaderMap::new()));
        assert!(host_allowed(&["*".to_string()], &with_host("anything")));
    }

    #[test]
    fn only_a_stateless_tools_call_applies() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("content-type", "application/json"),
            ("accept", "application/json, text/event-stream"),
        ] {
            headers.insert(name, value.parse().expect("header"));
        }
        assert!(applies(&headers));
        headers.insert("mcp-method", "tools/list".parse().expect("header"));
        assert!(!applies(&headers));
        headers.insert("mcp-method", "tools/call".parse().expect("header"));
        headers.insert(
            "mcp-protocol-version",
            "2025-11-25".parse().expect("header"),
        );
        assert!(!applies(&headers));
    }
}
