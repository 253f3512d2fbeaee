//! Sessions across replicas (a shared store): a session's organisation and
//! `initialize` parameters are kept in the store, so a request naming it on
//! a replica that did not open it (or that restarted) continues it there:
//! rmcp restores the session and replays the handshake
//! ([`SessionStore`]). Closing a session (`DELETE`) drops the shared copy
//! and tells the other replicas, which close theirs. The embedded store has
//! no other replica: nothing is shared.

use crate::market::{Market, Shared, now_ms};
use rmcp::transport::streamable_http_server::session::{
    SessionState, SessionStore, SessionStoreError,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a shared session lives without being continued on another
/// replica; each continuation renews it.
pub const SESSION_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// What starts the subject a replica announces when a session was closed.
pub const CLOSED: &str = "mcp-closed:";

/// The subject a replica announces when `session` was closed.
pub fn closed_subject(session: &str) -> String {
    format!("{CLOSED}{session}")
}

/// The store rmcp keeps sessions in: parameters of a fresh handshake wait
/// here until the door, which knows the organisation, shares the session
/// ([`Sessions::share`]).
pub struct Sessions {
    market: Arc<Market>,
    fresh: Mutex<HashMap<String, SessionState>>,
}

/// Handshakes waiting to be shared at once; beyond it the oldest are not
/// shared (their sessions then live on their replica only).
const FRESH_MAX: usize = 1_024;

impl Sessions {
    /// Sessions kept in `market`'s store, or `None` when the store is not
    /// shared.
    pub fn over(market: &Arc<Market>) -> Option<Arc<Sessions>> {
        market.is_replicated().then(|| {
            Arc::new(Sessions {
                market: market.clone(),
                fresh: Mutex::default(),
            })
        })
    }

    /// Shares session `id`, opened by `org`, with the other replicas before
    /// its first answer goes out. A failure (the database went away) leaves
    /// the session on this replica only.
    pub async fn share(&self, id: &str, org: &str) {
        let state = self
            .fresh
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        let Some(state) = state else { return };
        let record = json!({
            "org": org,
            "state": state,
            "expires_at_ms": now_ms() + SESSION_TTL.as_millis() as u64,
        });
        if let Err(error) = self.market.share_now(Shared::McpSession, id, &record).await {
            tracing::warn!(%error, "MCP session not shared with the other replicas");
        }
    }

    /// The organisation that opened session `id`, as shared.
    pub fn owner(&self, id: &str) -> Option<String> {
        let record = self.market.shared(Shared::McpSession, id).ok()??;
        record["org"].as_str().map(str::to_string)
    }
}

#[async_trait::async_trait]
impl SessionStore for Sessions {
    async fn load(&self, id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let Some(mut record) = self.market.shared(Shared::McpSession, id)? else {
            return Ok(None);
        };
        let state: SessionState = serde_json::from_value(record["state"].take())?;
        // Continued: renewed, so a session in use does not expire.
        record["state"] = serde_json::to_value(&state)?;
        record["expires_at_ms"] = Value::from(now_ms() + SESSION_TTL.as_millis() as u64);
        self.market.share(Shared::McpSession, id, &record)?;
        Ok(Some(state))
    }

    async fn store(&self, id: &str, state: &SessionState) -> Result<(), SessionStoreError> {
        let mut fresh = self.fresh.lock().unwrap_or_else(|p| p.into_inner());
        if fresh.len() >= FRESH_MAX {
            fresh.clear();
        }
        fresh.insert(id.to_string(), state.clone());
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<(), SessionStoreError> {
        // Gone from the store before the others hear of it, so none of
        // them finds it again there.
        self.market.unshare(Shared::McpSession, id).await?;
        self.market.announce(&closed_subject(id))?;
        Ok(())
    }
}
