//! `/mcp`: the bearer key checked, then the fast path for a stateless
//! `tools/call` ([`crate::mcp::fast`]), and rmcp's Streamable HTTP service
//! for everything else.
//!
//! Sessions (2025-11-25) belong to the organisation that opened them: a
//! request naming another organisation's session is answered as if the
//! session did not exist, and an `initialize` is refused with 503 and
//! `Retry-After` when its organisation has [`SESSIONS_PER_ORG_MAX`] sessions
//! open or the host [`SESSIONS_MAX`] (caps per replica).
//!
//! When replicas share the store, a session is shared with them before its
//! `initialize` is answered ([`Sessions`]): a request naming a session this
//! replica does not know is checked against the shared owner, and rmcp
//! continues the session here.
//!
//! Closing is ordered against the session's requests: every POST in a
//! session holds its session's gate (shared) until its answer has been
//! sent, and a close (a `DELETE` here, or one announced by another replica)
//! first marks the session closed, so later requests are answered 404,
//! then takes the gate alone, so the requests already admitted get their
//! answers, within [`Door::close_grace`], before rmcp ends the session.
//! A request thus gets either its answer or 404, never a stream that ends
//! without one.

use super::auth;
use crate::identity::Org;
use crate::market::Market;
use crate::mcp::{
    AgentScope, Bounded, Mercato, SESSIONS_MAX, SESSIONS_PER_ORG_MAX, Service, Sessions, fast,
};
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Extension, Router};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

struct Door {
    market: Arc<Market>,
    server: Mercato,
    service: Service,
    sessions: Arc<Bounded>,
    /// Sessions shared with the other replicas (a shared store only).
    shared: Option<Arc<Sessions>>,
    /// Session id → the organisation that opened it. Entries of closed
    /// sessions are pruned when their organisation reaches its cap, and all
    /// of them once the map holds twice [`SESSIONS_MAX`].
    owners: Mutex<HashMap<String, String>>,
    /// Sessions closed here or on another replica (the most recent
    /// [`CLOSED_REMEMBERED`]): never continued here again, whatever a
    /// stale read of the store says.
    closed: Mutex<Closed>,
    /// Session id → its gate: held shared by each POST in the session until
    /// its answer is sent, alone by the close. Dropped with the owner entry.
    gates: Mutex<HashMap<String, Arc<Gate>>>,
    /// (session, request id as JSON text) → the cancellation of a call the
    /// fast path runs, for the session's `notifications/cancelled`.
    calls: Mutex<HashMap<(String, String), CancellationToken>>,
    /// How long a close waits for the session's requests in flight: the
    /// sandbox deadline and a second, so an admitted call ends first.
    close_grace: Duration,
    allowed_hosts: Vec<String>,
    body_bytes_max: usize,
}

const SESSION_HEADER: &str = "mcp-session-id";

/// How often a session the fast path serves still sends a request through
/// rmcp, which closes a session idle for 5 minutes.
const RMCP_TOUCH_MS: u64 = 60_000;

/// One session's gate ([`Door::gates`]), and when rmcp last saw one of its
/// requests.
#[derive(Default)]
struct Gate {
    lock: Arc<RwLock<()>>,
    /// Milliseconds since the epoch; 0: never on this replica (so the
    /// first request restores the session in rmcp).
    rmcp_at_ms: AtomicU64,
}

/// A fast-path call's entry in [`Door::calls`], removed when it ends.
struct InFlight<'a> {
    door: &'a Door,
    key: (String, String),
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.door
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

/// Closed sessions a replica remembers.
const CLOSED_REMEMBERED: usize = 4_096;

/// The most recently closed sessions ([`CLOSED_REMEMBERED`]), looked up
/// on every request in a session.
#[derive(Default)]
struct Closed {
    ids: std::collections::HashSet<String>,
    order: std::collections::VecDeque<String>,
}

impl Closed {
    fn insert(&mut self, session: &str) {
        if self.ids.contains(session) {
            return;
        }
        if self.order.len() >= CLOSED_REMEMBERED
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.ids.insert(session.to_string());
        self.order.push_back(session.to_string());
    }
}

impl Door {
    /// The organisation that opened `session`: known here, or shared by the
    /// replica that opened it (then remembered here); `None` once closed.
    fn owner(&self, session: &str) -> Option<String> {
        if self.is_closed(session) {
            return None;
        }
        let known = self
            .owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(session)
            .cloned();
        if known.is_some() {
            return known;
        }
        let owner = self.shared.as_ref()?.owner(session)?;
        self.owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(session.to_string(), owner.clone());
        Some(owner)
    }

    fn is_closed(&self, session: &str) -> bool {
        self.closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ids
            .contains(session)
    }

    /// `session`'s gate ([`Door::gates`]).
    fn gate(&self, session: &str) -> Arc<Gate> {
        self.gates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(session.to_string())
            .or_default()
            .clone()
    }

    /// Marks `session` closed, so no request is admitted to it any more,
    /// then waits (within [`Door::close_grace`]) for the admitted ones to
    /// be answered. rmcp's session is ended by the caller afterwards.
    async fn begin_close(&self, session: &str) {
        self.closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(session);
        let gate = self.gate(session);
        if tokio::time::timeout(self.close_grace, gate.lock.write())
            .await
            .is_err()
        {
            tracing::warn!(
                session,
                "MCP session closed with a request still unanswered after the grace period"
            );
        }
    }

    /// Registers a fast-path call of `session` for cancellation.
    fn in_flight(&self, session: &str, id: String, cancel: CancellationToken) -> InFlight<'_> {
        let key = (session.to_string(), id);
        self.calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone(), cancel);
        InFlight { door: self, key }
    }

    /// Cancels the fast-path call `id` of `session`, if one runs.
    fn cancel_call(&self, session: &str, id: String) {
        let key = (session.to_string(), id);
        if let Some(cancel) = self
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            cancel.cancel();
        }
    }

    /// Drops what this door knows of `session` (owner and gate).
    fn forget(&self, session: &str) {
        self.owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(session);
        self.gates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(session);
    }

    /// Closes this replica's copy of a session another replica closed.
    async fn closed_elsewhere(&self, session: &str) {
        use rmcp::transport::streamable_http_server::SessionManager;
        self.begin_close(session).await;
        let _ = self.sessions.close_session(&session.into()).await;
        self.forget(session);
    }

    /// Whether `org` may open one more session (closed ones pruned first).
    async fn room_for(&self, org: &Org) -> bool {
        if self.sessions.open().await >= SESSIONS_MAX {
            return false;
        }
        // Sessions that idled out leave their entries behind: past twice
        // the open sessions' cap, every closed one is dropped.
        let known: Vec<String> = {
            let owners = self.owners.lock().unwrap_or_else(|p| p.into_inner());
            if owners.len() < 2 * SESSIONS_MAX {
                Vec::new()
            } else {
                owners.keys().cloned().collect()
            }
        };
        for id in known {
            if !self.sessions.is_open(&id).await {
                self.forget(&id);
            }
        }
        let mine: Vec<String> = self
            .owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, owner)| **owner == org.org_id)
            .map(|(id, _)| id.clone())
            .collect();
        if mine.len() < SESSIONS_PER_ORG_MAX {
            return true;
        }
        let mut open = 0;
        for id in mine {
            if self.sessions.is_open(&id).await {
                open += 1;
            } else {
                self.forget(&id);
            }
        }
        open < SESSIONS_PER_ORG_MAX
    }
}

/// Whether a JSON-RPC body is an `initialize` request.
fn is_initialize(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Method<'a> {
        #[serde(borrow)]
        method: Option<&'a str>,
    }
    serde_json::from_slice::<Method>(body).is_ok_and(|m| m.method == Some("initialize"))
}

fn no_session() -> Response {
    (StatusCode::NOT_FOUND, "session not found").into_response()
}

fn sessions_full() -> Response {
    let mut response = super::Problem::new(
        "overloaded",
        "too many MCP sessions are open; retry later, or use the stateless revision (2026-07-28)",
    )
    .into_response();
    response.headers_mut().insert(
        header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("5"),
    );
    response
}

/// The `/mcp` route, over `market`; `stopping` ends open streams.
pub fn routes(market: Arc<Market>, stopping: CancellationToken) -> Router<Arc<Market>> {
    let config = market.config();
    let sessions = Arc::new(Bounded::new(SESSIONS_MAX));
    let shared = Sessions::over(&market);
    let door = Arc::new(Door {
        market: market.clone(),
        server: Mercato::new(market.clone()),
        service: crate::mcp::service(
            market.clone(),
            sessions.clone(),
            shared.clone(),
            stopping.clone(),
        ),
        sessions,
        shared,
        owners: Mutex::default(),
        closed: Mutex::default(),
        gates: Mutex::default(),
        calls: Mutex::default(),
        close_grace: Duration::from_millis(config.sandbox.deadline_ms) + Duration::from_secs(1),
        allowed_hosts: config.allowed_hosts.clone(),
        body_bytes_max: config.body_bytes_max as usize,
    });
    if door.shared.is_some() {
        follow_closes(&door, stopping);
    }
    Router::new()
        .route("/mcp", any(entry))
        .route("/mcp/agents/{agent}", any(agent_entry))
        .route_layer(axum::middleware::from_fn_with_state(
            market,
            auth::bearer_only,
        ))
        .with_state(door)
}

/// `/mcp/agents/{agent}`: the same door, showing and calling only that
/// agent's capabilities (the endpoint its registry listing names).
async fn agent_entry(
    State(door): State<Arc<Door>>,
    Path(agent): Path<String>,
    Extension(org): Extension<Org>,
    mut request: Request,
) -> Response {
    if door.market.registry_versions(&agent).is_empty() {
        return super::Problem::new(
            "not_found",
            format!("no agent `{}` is listed", crate::market::echoed(&agent)),
        )
        .into_response();
    }
    request.extensions_mut().insert(AgentScope(agent));
    entry(State(door), Extension(org), request).await
}

async fn entry(
    State(door): State<Arc<Door>>,
    Extension(org): Extension<Org>,
    request: Request,
) -> Response {
    let session = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(session) = &session {
        return in_session(&door, &org, session, request).await;
    }
    if request.method() != Method::POST {
        return forward(&door, request).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, door.body_bytes_max).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    if fast::applies(&parts.headers)
        && fast::host_allowed(&door.allowed_hosts, &parts.headers)
        && let Some(answer) = fast::answer(
            &door.server,
            &parts.headers,
            &bytes,
            org.clone(),
            parts.extensions.get::<AgentScope>(),
        )
        .await
    {
        return ([(header::CONTENT_TYPE, "application/json")], answer).into_response();
    }
    let initialize = is_initialize(&bytes);
    if initialize && !door.room_for(&org).await {
        return sessions_full();
    }
    let response = forward(&door, Request::from_parts(parts, Body::from(bytes))).await;
    if initialize
        && let Some(id) = response
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
    {
        door.owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_string(), org.org_id.clone());
        if let Some(shared) = &door.shared {
            shared.share(id, &org.org_id).await;
        }
    }
    response
}

/// Closes the sessions other replicas announce closed, until `stopping`.
fn follow_closes(door: &Arc<Door>, stopping: CancellationToken) {
    let mut changes = door.market.door_changes();
    let door = Arc::downgrade(door);
    tokio::spawn(async move {
        loop {
            let subject = tokio::select! {
                _ = stopping.cancelled() => return,
                subject = changes.recv() => subject,
            };
            match subject {
                Ok(subject) => {
                    let Some(session) = subject.strip_prefix(crate::mcp::CLOSED) else {
                        continue;
                    };
                    let Some(door) = door.upgrade() else { return };
                    // Each close waits for its own session's calls only.
                    let session = session.to_string();
                    tokio::spawn(async move { door.closed_elsewhere(&session).await });
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// A request in a session: only its own organisation's, and only while the
/// session is open ([`Door::gates`]).
async fn in_session(door: &Door, org: &Org, session: &str, request: Request) -> Response {
    if request.method() == Method::DELETE {
        if door.owner(session).is_none_or(|owner| owner != org.org_id) {
            return no_session();
        }
        door.begin_close(session).await;
        let response = forward(door, request).await;
        door.forget(session);
        return response;
    }
    match door.owner(session) {
        Some(owner) if owner == org.org_id => {}
        // Another organisation's, closed, or one this door never opened.
        _ => return no_session(),
    }
    if request.method() != Method::POST {
        // A GET's stream of server messages lasts as long as the client
        // likes: it does not hold a close back, and ends with the session.
        return forward(door, request).await;
    }
    // Admitted under the gate (known sessions only, so strangers' ids add
    // no entries): a close waits for this answer, or this request finds
    // the session closed.
    let gate = door.gate(session);
    let admitted = gate.lock.clone().read_owned().await;
    if door.is_closed(session) {
        return no_session();
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, door.body_bytes_max).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response();
    };
    let now = crate::market::now_ms();
    let rmcp_fresh = now.saturating_sub(gate.rmcp_at_ms.load(Ordering::Relaxed)) < RMCP_TOUCH_MS;
    if rmcp_fresh
        && fast::host_allowed(&door.allowed_hosts, &parts.headers)
        && let Some(call) = fast::session_call(&parts.headers, &bytes)
    {
        let cancel = CancellationToken::new();
        let _in_flight = door.in_flight(session, call.id_text(), cancel.clone());
        let scope = parts.extensions.get::<AgentScope>();
        let answer = fast::answer_call(
            &door.server,
            call,
            org.clone(),
            cancel,
            scope,
            fast::Revision::Session,
        )
        .await;
        return ([(header::CONTENT_TYPE, "application/json")], answer).into_response();
    }
    if let Some(id) = fast::cancelled_request(&bytes) {
        door.cancel_call(session, id);
    }
    gate.rmcp_at_ms.store(now, Ordering::Relaxed);
    let request = Request::from_parts(parts, Body::from(bytes));
    let response = forward(door, request).await;
    if response.status() == StatusCode::NOT_FOUND {
        return response;
    }
    // The gate is let go when the answer's body has been sent (or dropped).
    response.map(|body| {
        Body::from_stream(body.into_data_stream().map(move |chunk| {
            let _held = &admitted;
            chunk
        }))
    })
}

async fn forward(door: &Door, request: Request) -> Response {
    match door.service.clone().oneshot(request).await {
        Ok(response) => response.map(Body::new),
        Err(never) => match never {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_initialize_opens_a_session() {
        assert!(is_initialize(
            br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#
        ));
        assert!(!is_initialize(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#
        ));
        assert!(!is_initialize(b"[not json"));
        assert!(!is_initialize(br#"[{"method":"initialize"}]"#));
    }

    #[test]
    fn closed_sessions_are_remembered_up_to_the_cap_oldest_forgotten_first() {
        let mut closed = Closed::default();
        for n in 0..=CLOSED_REMEMBERED {
            closed.insert(&format!("s{n}"));
            closed.insert(&format!("s{n}"));
        }
        assert_eq!(closed.ids.len(), CLOSED_REMEMBERED);
        assert_eq!(closed.order.len(), CLOSED_REMEMBERED);
        assert!(!closed.ids.contains("s0"));
        assert!(closed.ids.contains("s1"));
        assert!(closed.ids.contains(&format!("s{CLOSED_REMEMBERED}")));
    }
}
