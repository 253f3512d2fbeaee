//! People's sign-in sessions: a random token in an HttpOnly, SameSite=Strict
//! cookie names a session held here (in memory: a restart signs everyone
//! out), with who signed in and the CSRF token every form of theirs
//! carries. The key someone signed in with is never kept, only whose it was.
//! Bounded in number and in time.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;

/// Sessions held at once; the oldest goes first beyond it.
pub const SESSIONS_MAX: usize = 10_000;
/// How long a session lasts.
pub const SESSION_TTL_MS: u64 = 8 * 3_600_000;
/// The cookie's name.
pub const COOKIE: &str = "mercato_session";

/// Who a session belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// A member of an organisation (signed in with its API key).
    Member { org_id: String },
    /// An approver of an organisation's spending (an approver token).
    Approver { org_id: String },
    /// The marketplace's operator (the admin token).
    Operator,
}

#[derive(Debug, Clone)]
struct Session {
    who: Who,
    csrf: String,
    expires_at_ms: u64,
}

/// The sessions, by SHA-256 of their cookie value.
#[derive(Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<String, Session>>,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    hex::encode(bytes)
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares without stopping at the first difference.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

impl Sessions {
    /// Opens a session; returns the cookie value.
    pub fn open(&self, who: Who, now_ms: u64) -> String {
        let token = random_hex();
        let mut sessions = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        if sessions.len() >= SESSIONS_MAX {
            sessions.retain(|_, s| s.expires_at_ms > now_ms);
        }
        if sessions.len() >= SESSIONS_MAX
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires_at_ms)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            hash(&token),
            Session {
                who,
                csrf: random_hex(),
                expires_at_ms: now_ms + SESSION_TTL_MS,
            },
        );
        token
    }

    /// Who a cookie value belongs to and their CSRF token, while it lasts.
    pub fn find(&self, token: &str, now_ms: u64) -> Option<(Who, String)> {
        let key = hash(token);
        let mut sessions = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        match sessions.get(&key) {
            Some(s) if s.expires_at_ms > now_ms => Some((s.who.clone(), s.csrf.clone())),
            Some(_) => {
                sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends a session.
    pub fn close(&self, token: &str) {
        self.by_hash
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&hash(token));
    }

    /// Sessions held now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_hash.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_finds_its_owner_until_it_expires_or_closes() {
        let sessions = Sessions::default();
        let token = sessions.open(Who::Operator, 1_000);
        let (who, csrf) = sessions.find(&token, 2_000).expect("open");
        assert_eq!(who, Who::Operator);
        assert_eq!(csrf.len(), 64);
        assert!(sessions.find("not-a-session", 2_000).is_none());
        assert!(sessions.find(&token, 1_000 + SESSION_TTL_MS).is_none());
        assert_eq!(sessions.len(), 0, "an expired session is dropped when seen");
        let token = sessions.open(Who::Operator, 1_000);
        sessions.close(&token);
        assert!(sessions.find(&token, 2_000).is_none());
    }

    #[test]
    fn sessions_are_bounded() {
        let sessions = Sessions::default();
        for i in 0..(SESSIONS_MAX as u64 + 5) {
            sessions.open(Who::Operator, i);
        }
        assert_eq!(sessions.len(), SESSIONS_MAX);
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "ab"));
    }
}
