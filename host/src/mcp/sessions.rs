//! Sessions of the 2025-11-25 revision, bounded: rmcp's in-memory session
//! manager with a cap on how many exist at once (each holds a worker task
//! and channels until it is closed or idle for its keep-alive).

use futures::Stream;
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::streamable_http_server::SessionManager;
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::session::{
    RestoreOutcome, ServerSseMessage, SessionId,
};

/// Sessions open at once; an `initialize` beyond them is refused until
/// one closes or idles out.
pub const SESSIONS_MAX: usize = 4_096;
/// Sessions one organisation may have open at once, so that one tenant
/// cannot take every session from the others.
pub const SESSIONS_PER_ORG_MAX: usize = 64;

/// Why a session operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The in-memory manager's own error.
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
    /// As many sessions as allowed are open.
    #[error(
        "{0} MCP sessions are open, the most allowed; retry later or use the stateless revision"
    )]
    TooMany(usize),
}

/// [`LocalSessionManager`] with at most `max` sessions.
pub struct Bounded {
    inner: LocalSessionManager,
    max: usize,
}

impl Bounded {
    /// A manager with rmcp's defaults (sessions idle out after 5 minutes).
    pub fn new(max: usize) -> Self {
        Bounded {
            inner: LocalSessionManager::default(),
            max,
        }
    }
}

impl Bounded {
    /// Sessions open now.
    pub async fn open(&self) -> usize {
        self.inner.sessions.read().await.len()
    }

    /// Whether session `id` is still open.
    pub async fn is_open(&self, id: &str) -> bool {
        self.inner.sessions.read().await.contains_key(id)
    }
}

impl SessionManager for Bounded {
    type Error = SessionError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        // Checked, then created: concurrent creations may pass the cap by
        // the few that race, which bounds it all the same.
        let open = self.inner.sessions.read().await.len();
        if open >= self.max {
            return Err(SessionError::TooMany(open));
        }
        Ok(self.inner.create_session().await?)
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.inner.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.inner.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        Ok(self.inner.close_session(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.create_stream(id, message).await?)
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        Ok(self.inner.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error> {
        Ok(self.inner.resume(id, last_event_id).await?)
    }

    /// A session another replica opened (or this one, before it idled out)
    /// continued here: within the cap, like a new one.
    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        let open = self.inner.sessions.read().await.len();
        if open >= self.max {
            return Err(SessionError::TooMany(open));
        }
        Ok(self.inner.restore_session(id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_beyond_the_cap_are_refused_until_one_closes() {
        let sessions = Bounded::new(2);
        let (first, _t1) = sessions.create_session().await.expect("first");
        let (_second, _t2) = sessions.create_session().await.expect("second");
        assert!(matches!(
            sessions.create_session().await,
            Err(SessionError::TooMany(2))
        ));
        sessions.close_session(&first).await.expect("close");
        assert!(!sessions.has_session(&first).await.expect("has"));
        sessions.create_session().await.expect("room again");
    }
}
