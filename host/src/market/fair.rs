//! Fair shares of the call slots: each organisation may have at most
//! `calls_per_org_max` calls in the sandbox (or waiting for it) at once, so
//! that a flood from one tenant queues behind its own calls and leaves the
//! rest of the slots to everyone else. A call over its organisation's share
//! waits (first come, first served within the organisation) at most
//! `queue_wait_ms`, then is refused as `overloaded`.
//!
//! Invariant: an organisation's entry exists only while one of its calls
//! holds or waits for a share, so the map is bounded by the calls in flight.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

type Shares = Arc<Mutex<HashMap<String, Arc<Semaphore>>>>;

/// The per-organisation shares.
pub struct FairShares {
    per_org: usize,
    wait: Duration,
    shares: Shares,
}

/// One call's place in its organisation's share; dropping it frees it.
pub struct Share {
    permit: Option<OwnedSemaphorePermit>,
    org_id: String,
    shares: Shares,
}

impl FairShares {
    /// `per_org` calls at once per organisation, waiting at most `wait`.
    pub fn new(per_org: usize, wait: Duration) -> Self {
        FairShares {
            per_org: per_org.max(1),
            wait,
            shares: Shares::default(),
        }
    }

    /// Calls one organisation may have at once.
    pub fn per_org(&self) -> usize {
        self.per_org
    }

    /// A place for one call of `org_id`, or `None` when its share stayed full
    /// for the whole wait.
    pub async fn acquire(&self, org_id: &str) -> Option<Share> {
        let semaphore = self
            .shares
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(org_id.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_org)))
            .clone();
        // From here a dropped share (a cancelled wait included) cleans up.
        let mut share = Share {
            permit: None,
            org_id: org_id.to_string(),
            shares: self.shares.clone(),
        };
        let acquired = tokio::time::timeout(self.wait, semaphore.clone().acquire_owned()).await;
        // Before the share: a refused share must see itself the last user.
        drop(semaphore);
        match acquired {
            Ok(Ok(permit)) => {
                share.permit = Some(permit);
                Some(share)
            }
            _ => None,
        }
    }

    /// Calls `org_id` has in flight (holding a share).
    pub fn in_flight(&self, org_id: &str) -> usize {
        self.shares
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(org_id)
            .map_or(0, |s| self.per_org.saturating_sub(s.available_permits()))
    }

    /// Organisations with calls in flight or waiting.
    #[cfg(test)]
    fn tenants(&self) -> usize {
        self.shares.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut shares = self.shares.lock().unwrap_or_else(|p| p.into_inner());
        drop(self.permit.take());
        // The last user of an organisation's entry removes it: only the map
        // holds the semaphore, and nothing is taken from it.
        if let Some(semaphore) = shares.get(&self.org_id)
            && Arc::strong_count(semaphore) == 1
        {
            shares.remove(&self.org_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_share_refuses_only_its_own_organisation() {
        let fair = FairShares::new(2, Duration::from_millis(20));
        let a1 = fair.acquire("org_a").await.expect("first");
        let _a2 = fair.acquire("org_a").await.expect("second");
        assert!(
            fair.acquire("org_a").await.is_none(),
            "a third waits, then is refused"
        );
        let b = fair.acquire("org_b").await.expect("another organisation");
        drop(a1);
        let _a3 = fair.acquire("org_a").await.expect("a freed place");
        assert_eq!(fair.tenants(), 2);
        drop(b);
        assert_eq!(fair.tenants(), 1, "an idle organisation leaves no entry");
    }

    #[tokio::test]
    async fn a_waiting_call_gets_the_next_free_place() {
        let fair = Arc::new(FairShares::new(1, Duration::from_secs(60)));
        let first = fair.acquire("org_a").await.expect("first");
        let waiting = {
            let fair = fair.clone();
            tokio::spawn(async move { fair.acquire("org_a").await.is_some() })
        };
        tokio::task::yield_now().await;
        drop(first);
        assert!(waiting.await.expect("task"));
        assert_eq!(fair.tenants(), 0);
    }
}
