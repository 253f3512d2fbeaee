//! Idempotency keys: the first response to a request, kept so that a retry
//! with the same key and body gets it again instead of acting twice.

use super::{Market, Result, now_ms};
use crate::store::Tree;
use serde::{Deserialize, Serialize};

/// How long a key is kept (at least 24 hours are promised).
pub const KEEP_MS: u64 = 48 * 3_600_000;
/// Longest key accepted.
pub const KEY_CHARS_MAX: usize = 200;

/// The first response to a request with an `Idempotency-Key`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Remembered {
    /// SHA-256 of the request body (its JSON form), hex.
    pub body_sha256: String,
    /// The status a door answered a success with (200, 201); `None` for an
    /// error, whose status follows from the code in its body. (Records
    /// written before carry an error's HTTP status here too.)
    #[serde(default)]
    pub status: Option<u16>,
    /// Its JSON body.
    pub body: serde_json::Value,
    /// When, Unix milliseconds.
    pub at_ms: u64,
}

impl Remembered {
    /// The first answer's error code, when it was an error.
    pub fn error_code(&self) -> Option<&str> {
        if self.status.is_some_and(|status| status < 400) {
            return None;
        }
        self.body.get("error")?.get("code")?.as_str()
    }
}

/// Keys being handled right now (shared with their [`Claimed`] guards).
pub(super) type InFlight = std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>;

/// A key this request holds while it is handled. Dropped without
/// [`Market::remember`] (a panic, a task aborted at shutdown), it releases
/// the key, so a key is never "in progress" longer than its request.
pub struct Claimed {
    key: String,
    in_flight: InFlight,
}

impl Drop for Claimed {
    fn drop(&mut self) {
        self.in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
    }
}

/// What to do with a request that carries a key.
pub enum Claim {
    /// First time: go ahead, then [`Market::remember`].
    Fresh(Claimed),
    /// Seen with this body: answer this again.
    Replay(Remembered),
    /// Seen with another body.
    Conflict,
    /// The same key is being handled right now.
    InProgress,
}

impl Market {
    /// Claims `key` (scoped by the caller and the route) for a request whose
    /// body hashes to `body_sha256`.
    pub fn claim(&self, key: &str, body_sha256: &str) -> Result<Claim> {
        if let Some(seen) = self.store.get::<Remembered>(Tree::Idempotency, key)? {
            return Ok(if seen.body_sha256 == body_sha256 {
                Claim::Replay(seen)
            } else {
                Claim::Conflict
            });
        }
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if !in_flight.insert(key.to_string()) {
            return Ok(Claim::InProgress);
        }
        drop(in_flight);
        // Answered between the read above and the claim: replay it.
        if let Some(seen) = self.store.get::<Remembered>(Tree::Idempotency, key)? {
            self.in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(key);
            return Ok(if seen.body_sha256 == body_sha256 {
                Claim::Replay(seen)
            } else {
                Claim::Conflict
            });
        }
        Ok(Claim::Fresh(Claimed {
            key: key.to_string(),
            in_flight: self.in_flight.clone(),
        }))
    }

    /// Stores the first response to a claimed key (durable before it
    /// returns) and releases the claim. `None` releases it without storing
    /// (a transient failure the client should retry for real).
    pub async fn remember(&self, claimed: Claimed, response: Option<Remembered>) -> Result<()> {
        let stored = match response {
            Some(r) => {
                self.store.put(Tree::Idempotency, &claimed.key, &r)?;
                self.store.sync().await
            }
            None => Ok(()),
        };
        drop(claimed);
        Ok(stored?)
    }

    /// Forgets keys older than [`KEEP_MS`].
    pub(super) fn purge_idempotency(&self) -> Result<usize> {
        let cutoff = now_ms().saturating_sub(KEEP_MS);
        let mut purged = 0;
        for (key, seen) in self.store.scan::<Remembered>(Tree::Idempotency)? {
            if seen.at_ms < cutoff {
                self.store.remove(Tree::Idempotency, &key)?;
                purged += 1;
            }
        }
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use super::Remembered;
    use serde_json::json;

    fn read(record: serde_json::Value) -> Remembered {
        serde_json::from_value(record).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_error_is_told_by_its_code_in_old_and_new_records() {
        let error = json!({"error": {"code": "insufficient_funds", "message": "m"}});
        // Written before: the error's HTTP status was kept.
        let old = read(json!({"body_sha256": "x", "status": 402, "body": error, "at_ms": 1}));
        assert_eq!(old.error_code(), Some("insufficient_funds"));
        // Written now: no status for an error.
        let new = read(json!({"body_sha256": "x", "body": error, "at_ms": 1}));
        assert_eq!(new.status, None);
        assert_eq!(new.error_code(), Some("insufficient_funds"));
        // A success keeps its status, and a body that happens to carry an
        // `error` field is still a success.
        let created = read(json!({
            "body_sha256": "x", "status": 201, "body": {"error": {"code": "x"}}, "at_ms": 1
        }));
        assert_eq!((created.status, created.error_code()), (Some(201), None));
    }
}
