//! The MCP front door (`/mcp`): every listed capability is a tool, beside
//! the marketplace's own tools (`discover`, `quote`, `negotiate`), served
//! over Streamable HTTP by rmcp in the two protocol revisions clients speak:
//! 2025-11-25 (`initialize`, `Mcp-Session-Id`) and 2026-07-28 (stateless).
//!
//! Owns: the tool list and its pages, tool
//! arguments → market calls, call results → `CallToolResult`, emitted chunks
//! → progress notifications.
//!
//! Does not know about: HTTP. The REST module mounts [`service`] and
//! authenticates the caller first: the calling [`Org`] rides in the request
//! parts' extensions, which rmcp hands to every request.

mod call;
pub mod fast;
mod sessions;
mod shared;

pub use crate::doors::{capability_id, tool_name};
pub use sessions::{Bounded, SESSIONS_MAX, SESSIONS_PER_ORG_MAX, SessionError};
pub use shared::{CLOSED, SESSION_TTL, Sessions, closed_subject};

use crate::doors;
use crate::identity::Org;
use crate::market::{CapabilityView, Market};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, InitializeResult, JsonObject,
    ListToolsResult, MetaObject, PaginatedRequestParams, ProgressToken, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::Peer;
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::SessionStore;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Tools on one `tools/list` page.
pub const PAGE_TOOLS: usize = 100;

/// `_meta` keys a `tools/call` may carry (in the request's `_meta`, or in
/// the arguments' `_meta` member, which is removed before validation).
pub const META_MAX_PRICE: &str = "mercato/max_price_micros";
/// See [`META_MAX_PRICE`]: the contract the call runs under.
pub const META_CONTRACT: &str = "mercato/contract_id";
/// See [`META_MAX_PRICE`]: an approval for a call above the threshold.
pub const META_APPROVAL: &str = "mercato/approval_id";
/// See [`META_MAX_PRICE`]: the call's idempotency key. A retry with the same
/// key and arguments gets the first answer (marked with
/// [`META_REPLAY`]) and is never charged twice; the key space is REST's
/// `Idempotency-Key` for the same capability.
pub const META_IDEMPOTENCY_KEY: &str = "mercato/idempotency_key";
/// The `_meta` flag of an answer replayed for an idempotency key.
pub const META_REPLAY: &str = "mercato/idempotent_replay";

/// The `_meta` key of a tool error's REST error body (`{"error": {code, …}}`).
pub const META_ERROR: &str = "mercato/error";
/// The `_meta` key of a successful call's settlement (transaction id,
/// fuel, cost, fee, charge, signed receipt).
pub const META_SETTLEMENT: &str = "mercato/settlement";

/// Set on a request to `/mcp/agents/{agent}`: the door shows and calls
/// only that agent's capabilities (no marketplace tools).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentScope(pub String);

impl AgentScope {
    /// Whether the tool named `name` is one this scope offers.
    fn offers(scope: Option<&AgentScope>, name: &str) -> bool {
        match scope {
            None => true,
            Some(AgentScope(agent)) => {
                capability_id(name).is_some_and(|id| id.split('.').next() == Some(agent.as_str()))
            }
        }
    }
}

/// The Streamable HTTP service `/mcp` mounts.
pub type Service = StreamableHttpService<Mercato, Bounded>;

/// The service for `/mcp` over `sessions`, kept in `shared` too when
/// replicas share the store. `stopping` ends open streams when the host
/// stops.
pub fn service(
    market: Arc<Market>,
    sessions: Arc<Bounded>,
    shared: Option<Arc<Sessions>>,
    stopping: CancellationToken,
) -> Service {
    let config = market.config();
    let mut http = StreamableHttpServerConfig::default()
        .with_sse_keep_alive(Some(Duration::from_secs(15)))
        .with_json_response(true)
        .with_max_request_body_bytes(config.body_bytes_max as usize)
        .with_cancellation_token(stopping);
    http = if config.allowed_hosts.iter().any(|h| h == "*") {
        http.disable_allowed_hosts()
    } else {
        http.with_allowed_hosts(config.allowed_hosts.clone())
    };
    http.session_store = shared.map(|s| s as Arc<dyn SessionStore>);
    StreamableHttpService::new(
        move || {
            Ok(Mercato {
                market: market.clone(),
            })
        },
        sessions,
        http,
    )
}

/// The MCP server: one per session (2025-11-25) or per request (2026-07-28).
#[derive(Clone)]
pub struct Mercato {
    market: Arc<Market>,
}

fn object(value: Value) -> Arc<JsonObject> {
    Arc::new(match value {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    })
}

/// Whether a schema describes an object (MCP wants object schemas; other
/// inputs and outputs are wrapped in `{"input": …}` / `{"output": …}`).
fn is_object_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("object")
}

fn wrapped(key: &str, schema: &Value) -> Value {
    json!({"type": "object", "properties": {key: schema}, "required": [key]})
}

fn marketplace_tools() -> Vec<Tool> {
    let tool = |name: &'static str, description: &'static str, schema: Value| {
        Tool::new(name, description, object(schema))
    };
    vec![
        tool(
            "discover",
            "Find capabilities for a need described in plain language, within price, latency, uptime, data-policy and rating limits. Each result names the tool that calls it.",
            doors::schemas::discover(),
        ),
        tool(
            "negotiate",
            "Negotiate terms (price cap, latency SLA, retention, encryption, jurisdiction, rate limit) for a capability. Accepted terms come as a signed contract: pass its id as `_meta` `mercato/contract_id` when calling.",
            doors::schemas::negotiate(),
        ),
        tool(
            "quote",
            "The expected cost of one call to a capability, from observed fuel, and a suggested price cap.",
            doors::schemas::quote(),
        ),
    ]
}

/// The formats JSON Schema (2020-12) defines; clients warn on others.
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Drops `format`s JSON Schema does not define (schemars writes `uint`,
/// `uint32`, `double`, …, which portable clients warn about on every call;
/// the bounds that matter are in `minimum`/`maximum`). The host still checks
/// arguments and outputs against the published schemas as they are.
fn portable(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| !STANDARD_FORMATS.contains(&f))
                && map.get("type").is_some()
            {
                map.remove("format");
            }
            map.values_mut().for_each(portable);
        }
        Value::Array(items) => items.iter_mut().for_each(portable),
        _ => {}
    }
}

fn capability_tool(view: &CapabilityView) -> Option<Tool> {
    let name = tool_name(&view.id)?;
    let terms = &view.terms;
    let description = format!(
        "{} — price {} micros per call + {} micros per million fuel (plus the marketplace fee); latency ≤ {} ms; capability `{}`.",
        view.description, terms.price_micros, terms.micros_per_mfuel, terms.latency_ms_max, view.id
    );
    let mut input = if is_object_schema(&view.input_schema) {
        view.input_schema.clone()
    } else {
        wrapped("input", &view.input_schema)
    };
    let mut output = if is_object_schema(&view.output_schema) {
        view.output_schema.clone()
    } else {
        wrapped("output", &view.output_schema)
    };
    portable(&mut input);
    portable(&mut output);
    let mut meta = MetaObject::new();
    meta.0
        .insert("mercato/capability_id".into(), json!(view.id));
    meta.0
        .insert("mercato/pinned_id".into(), json!(view.pinned_id));
    meta.0.insert("mercato/terms".into(), json!(terms));
    let mut tool = Tool::new(name, description, object(input))
        .with_title(format!("{} · {}", view.agent, view.name))
        .with_raw_output_schema(object(output));
    tool.meta = Some(meta);
    Some(tool)
}

/// One page of the tool list: the marketplace's tools first, then the
/// capabilities' in name order after `cursor` (the last name of the page
/// before), so a page is stable while capabilities come and go. The next
/// cursor is `None` on the last page.
fn page(
    mut capabilities: Vec<Tool>,
    cursor: Option<&str>,
    size: usize,
    with_marketplace: bool,
) -> Result<(Vec<Tool>, Option<String>), ErrorData> {
    if let Some(cursor) = cursor
        && capability_id(cursor).is_none()
    {
        return Err(ErrorData::invalid_params("invalid cursor", None));
    }
    capabilities.retain(|tool| cursor.is_none_or(|c| *tool.name > *c));
    capabilities.sort_by(|a, b| a.name.cmp(&b.name));
    let mut page = if cursor.is_none() && with_marketplace {
        marketplace_tools()
    } else {
        Vec::new()
    };
    let room = size.saturating_sub(page.len()).max(1);
    let more = capabilities.len() > room;
    capabilities.truncate(room);
    let next = if more {
        capabilities.last().map(|t| t.name.to_string())
    } else {
        None
    };
    page.extend(capabilities);
    Ok((page, next))
}

/// The agent a request to `/mcp/agents/{agent}` is scoped to.
fn scope(context: &RequestContext<RoleServer>) -> Option<AgentScope> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<AgentScope>())
        .cloned()
}

fn caller(context: &RequestContext<RoleServer>) -> Result<Org, ErrorData> {
    context
        .extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Org>())
        .cloned()
        .ok_or_else(|| ErrorData::internal_error("the caller was not authenticated", None))
}

impl ServerHandler for Mercato {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("mercato", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Mercato is a marketplace of agent capabilities. Use `discover` to find one for a need, \
                 `quote` for its expected cost, optionally `negotiate` terms, then call its tool. \
                 Calls are metered and charged to your account; cap a call's price with `_meta` \
                 `mercato/max_price_micros`.",
            )
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let cursor = request.and_then(|r| r.cursor);
        let scope = scope(&context);
        let tools = self
            .market
            .capabilities()
            .iter()
            .filter(|view| scope.as_ref().is_none_or(|AgentScope(a)| view.agent == *a))
            .filter_map(capability_tool)
            .collect();
        let (tools, next) = page(tools, cursor.as_deref(), PAGE_TOOLS, scope.is_none())?;
        let mut result = ListToolsResult::with_all_items(tools);
        result.next_cursor = next;
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let org = caller(&context)?;
        let mut request = request;
        // On the session path rmcp moves the request's `_meta` into the
        // context: read the caps from there as the stateless path reads them
        // from the request.
        let moved = context.meta.0.0.clone();
        if !moved.is_empty() {
            let meta = request.meta.get_or_insert_with(Default::default);
            for (key, value) in moved {
                meta.0.0.entry(key).or_insert(value);
            }
        }
        let progress = context
            .meta
            .get_progress_token()
            .map(|token| (token, context.peer.clone()));
        let scope = scope(&context);
        self.call(request, org, progress, context.ct.clone(), scope.as_ref())
            .await
    }
}

impl Mercato {
    /// A server over `market` (for the fast path; rmcp makes its own).
    pub fn new(market: Arc<Market>) -> Self {
        Mercato { market }
    }

    /// `tools/call` for `org`, on rmcp's path or the fast one; within
    /// `scope`, only that agent's tools exist.
    pub(crate) async fn call(
        &self,
        request: CallToolRequestParams,
        org: Org,
        progress: Option<(ProgressToken, Peer<RoleServer>)>,
        cancel: CancellationToken,
        scope: Option<&AgentScope>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !AgentScope::offers(scope, &request.name) {
            return Err(ErrorData::invalid_params(
                format!("unknown tool `{}` on this agent's endpoint", request.name),
                None,
            ));
        }
        match request.name.as_ref() {
            name @ ("discover" | "quote" | "negotiate") => {
                let mut arguments = request.arguments.clone().unwrap_or_default();
                arguments.remove("_meta");
                self.marketplace(name, &org, Value::Object(arguments)).await
            }
            name => match capability_id(name) {
                Some(id) => {
                    self.call_capability(id, request, progress, cancel, org)
                        .await
                }
                None => Err(ErrorData::invalid_params(
                    format!("unknown tool `{name}`"),
                    None,
                )),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_standard_formats_reach_a_tool_schema() {
        let mut schema = json!({
            "type": "object",
            "properties": {
                "count": {"type": "integer", "format": "uint32", "minimum": 0},
                "ratio": {"type": "number", "format": "double"},
                "when": {"type": "string", "format": "date-time"},
                "format": {"type": "string", "format": "email"},
                "list": {"type": "array", "items": {"type": "integer", "format": "int64"}}
            }
        });
        portable(&mut schema);
        let p = &schema["properties"];
        assert_eq!(p["count"], json!({"type": "integer", "minimum": 0}));
        assert_eq!(p["ratio"], json!({"type": "number"}));
        assert_eq!(p["when"]["format"], "date-time");
        assert_eq!(
            p["format"]["format"], "email",
            "a field named `format` is a field"
        );
        assert_eq!(p["list"]["items"], json!({"type": "integer"}));
    }

    fn tool(name: &str) -> Tool {
        Tool::new(name.to_string(), "t", object(json!({"type": "object"})))
    }

    fn names(tools: &[Tool]) -> Vec<String> {
        tools.iter().map(|t| t.name.to_string()).collect()
    }

    #[test]
    fn pages_walk_every_tool_once_in_name_order() {
        let capabilities: Vec<Tool> = (0..12)
            .rev()
            .map(|i| tool(&format!("a{i:02}__c")))
            .collect();
        let (first, cursor) = page(capabilities.clone(), None, 5, true).expect("first page");
        assert_eq!(
            names(&first),
            ["discover", "negotiate", "quote", "a00__c", "a01__c"]
        );
        let mut seen = names(&first)[3..].to_vec();
        let mut cursor = cursor;
        let mut pages = 1;
        while let Some(after) = cursor {
            let (next, more) = page(capabilities.clone(), Some(&after), 5, true).expect("page");
            assert!(next.len() <= 5);
            seen.extend(names(&next));
            cursor = more;
            pages += 1;
        }
        assert_eq!(pages, 3);
        let expected: Vec<String> = (0..12).map(|i| format!("a{i:02}__c")).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn a_page_survives_the_cursor_tool_being_delisted() {
        let capabilities = vec![tool("a__x"), tool("c__x")];
        let (next, more) = page(capabilities, Some("b__x"), 5, true).expect("page");
        assert_eq!(names(&next), ["c__x"]);
        assert_eq!(more, None);
    }

    #[test]
    fn a_cursor_that_names_no_tool_is_refused() {
        let error = page(vec![], Some("'; drop"), 5, true).expect_err("invalid");
        assert_eq!(error.code, rmcp::model::ErrorCode::INVALID_PARAMS);
    }

    #[test]
    fn other_shapes_are_wrapped_as_objects() {
        assert!(is_object_schema(&json!({"type": "object"})));
        assert!(!is_object_schema(&json!({"type": "string"})));
        let schema = wrapped("input", &json!({"type": "string"}));
        assert_eq!(schema["required"], json!(["input"]));
        assert_eq!(schema["properties"]["input"]["type"], "string");
    }
}
