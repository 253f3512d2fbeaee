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
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
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
    /// Sessions closed on another replica (the most recent
    /// [`CLOSED_REMEMBERED`]): never continued here again, whatever a
    /// stale read of the store says.
    closed: Mutex<std::collections::VecDeque<String>>,
    allowed_hosts: Vec<String>,
    body_bytes_max: usize,
}

const SESSION_HEADER: &str = "mcp-session-id";

/// Sessions closed elsewhere a replica remembers.
const CLOSED_REMEMBERED: usize = 4_096;

impl Door {
    /// The organisation that opened `session`: known here, or shared by the
    /// replica that opened it (then remembered here).
    fn owner(&self, session: &str) -> Option<String> {
        let known = self
            .owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(session)
            .cloned();
        if known.is_some() {
            return known;
        }
        let shared = self.shared.as_ref()?;
        if self
            .closed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|c| c == session)
        {
            return None;
        }
        let owner = shared.owner(session)?;
        self.owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(session.to_string(), owner.clone());
        Some(owner)
    }

    /// Closes this replica's copy of a session another replica closed.
    async fn closed_elsewhere(&self, session: &str) {
        use rmcp::transport::streamable_http_server::SessionManager;
        {
            let mut closed = self.closed.lock().unwrap_or_else(|p| p.into_inner());
            if closed.len() >= CLOSED_REMEMBERED {
                closed.pop_front();
            }
            closed.push_back(session.to_string());
        }
        self.owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(session);
        let _ = self.sessions.close_session(&session.into()).await;
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
                self.owners
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
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
                self.owners
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&id);
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
                    door.closed_elsewhere(session).await;
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// A request in a session: only its own organisation's.
async fn in_session(door: &Door, org: &Org, session: &str, request: Request) -> Response {
    match door.owner(session) {
        Some(owner) if owner == org.org_id => {}
        // Another organisation's, or one this door never opened.
        _ => return no_session(),
    }
    let closing = request.method() == Method::DELETE;
    let response = forward(door, request).await;
    if closing {
        door.owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(session);
    }
    response
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
}
