//! Following the other replicas (a shared store): the catalog and the
//! discovery index learn what was published or delisted elsewhere from the
//! store's change feed, woken by its notifications and read at least every
//! second anyway.

use super::{Market, Result};
use crate::registry::{Listed, VersionRecord};
use crate::store::Tree;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often the feed is read without a notification.
const FEED_POLL: Duration = Duration::from_secs(1);

/// Not ready when the feed was last read longer ago than this.
const FEED_STALE: Duration = Duration::from_secs(5);

/// What a front door shares with the other replicas through the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shared {
    /// An A2A task's document, so `GetTask` answers on any replica.
    A2aTask,
    /// An MCP session (its organisation and `initialize` parameters), so
    /// any replica continues it.
    McpSession,
}

impl Shared {
    fn tree(self) -> Tree {
        match self {
            Shared::A2aTask => Tree::A2aTasks,
            Shared::McpSession => Tree::McpSessions,
        }
    }
}

impl Market {
    /// Follows the change feed from change `after` (the head read before
    /// the catalog was loaded), on a shared store.
    pub(super) fn start_feed(self: &Arc<Self>, after: u64) {
        let Some(signal) = self.store.change_signal() else {
            return;
        };
        let weak: Weak<Market> = Arc::downgrade(self);
        let task = tokio::spawn(async move {
            let mut last = after;
            loop {
                let _ = tokio::time::timeout(FEED_POLL, signal.notified()).await;
                let Some(market) = weak.upgrade() else { return };
                match market.follow(last).await {
                    Ok(read) => {
                        last = read;
                        market
                            .feed_read_at
                            .store(super::now_ms(), std::sync::atomic::Ordering::Release);
                    }
                    Err(error) => tracing::warn!(%error, "following the change feed"),
                }
                match market.store.beat() {
                    Ok(replicas) => market.rates.share_among(replicas),
                    Err(error) => tracing::debug!(%error, "replica heartbeat"),
                }
            }
        });
        *self.feed.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }

    /// Applies the changes after `after`; the last one read.
    async fn follow(&self, after: u64) -> Result<u64> {
        let mut last = after;
        loop {
            let (subjects, read) = self.store.changes_after(last)?;
            for subject in subjects {
                match subject.strip_prefix("agent:") {
                    Some(agent) => self.reload_agent(agent).await?,
                    // A front door's own change (an A2A cancellation).
                    None => {
                        let _ = self.door_changes.send(subject);
                    }
                }
            }
            if read == last {
                return Ok(last);
            }
            last = read;
            self.feed_position
                .store(last, std::sync::atomic::Ordering::Release);
        }
    }

    /// Brings an agent's listed versions in line with the store: versions
    /// published elsewhere listed (compiled from the stored component when
    /// this replica has no artifact), versions delisted elsewhere removed;
    /// then its discovery entries.
    pub(super) async fn reload_agent(&self, agent: &str) -> Result<()> {
        let listed: std::collections::HashSet<String> = self
            .catalog
            .versions_of(agent)
            .iter()
            .map(|l| l.version.to_string())
            .collect();
        let prefix = format!("{agent}@");
        for (key, record) in self
            .store
            .scan_prefix::<VersionRecord>(Tree::Versions, &prefix)?
        {
            if record.agent != agent {
                continue;
            }
            let delisted = self.delisted(&key)?;
            let present = listed.contains(&record.version);
            if delisted && present {
                if let Ok(version) = semver::Version::parse(&record.version) {
                    self.catalog.remove(agent, &version);
                }
            } else if !delisted && !present {
                let (compiled, artifact) = self.compiled(&record.component_sha256, None).await?;
                if let Some(artifact) = artifact {
                    self.cache_artifact(&record.component_sha256, &artifact)?;
                }
                let version = Listed::new(record, compiled).map_err(super::Error::Internal)?;
                self.catalog.insert(Arc::new(version));
            }
        }
        self.index_agent(agent).await?;
        tracing::info!(agent, "catalog follows a change from another replica");
        Ok(())
    }

    /// Whether other replicas share this store: what a front door keeps
    /// for them goes in it ([`Market::share`]).
    pub fn is_replicated(&self) -> bool {
        self.store.is_shared()
    }

    /// Keeps a front door's document (an A2A task, an MCP session: a JSON
    /// object with its `expires_at_ms`) where the other replicas read it.
    pub fn share(&self, kind: Shared, key: &str, record: &serde_json::Value) -> Result<()> {
        Ok(self.store.put(kind.tree(), key, record)?)
    }

    /// [`Market::share`], then waits until the other replicas can read it.
    pub async fn share_now(
        &self,
        kind: Shared,
        key: &str,
        record: &serde_json::Value,
    ) -> Result<()> {
        self.share(kind, key, record)?;
        Ok(self.store.sync().await?)
    }

    /// A document a replica shared, unless it expired.
    pub fn shared(&self, kind: Shared, key: &str) -> Result<Option<serde_json::Value>> {
        let record = self.store.get::<serde_json::Value>(kind.tree(), key)?;
        Ok(record.filter(|r| r["expires_at_ms"].as_u64().unwrap_or(0) > super::now_ms()))
    }

    /// The shared documents whose keys start with `prefix`, unexpired.
    pub fn shared_under(&self, kind: Shared, prefix: &str) -> Result<Vec<serde_json::Value>> {
        let now = super::now_ms();
        Ok(self
            .store
            .scan_prefix::<serde_json::Value>(kind.tree(), prefix)?
            .into_iter()
            .map(|(_, record)| record)
            .filter(|r| r["expires_at_ms"].as_u64().unwrap_or(0) > now)
            .collect())
    }

    /// Drops a shared document before it expires, and waits until the
    /// other replicas no longer read it.
    pub async fn unshare(&self, kind: Shared, key: &str) -> Result<()> {
        self.store.remove(kind.tree(), key)?;
        Ok(self.store.sync().await?)
    }

    /// Drops the shared documents that expired.
    pub(super) fn purge_shared(&self) -> Result<usize> {
        if !self.store.is_shared() {
            return Ok(0);
        }
        let now = super::now_ms();
        let mut purged = 0;
        for kind in [Shared::A2aTask, Shared::McpSession] {
            for (key, record) in self.store.scan::<serde_json::Value>(kind.tree())? {
                if record["expires_at_ms"].as_u64().unwrap_or(0) <= now {
                    self.store.remove(kind.tree(), &key)?;
                    purged += 1;
                }
            }
        }
        Ok(purged)
    }

    /// Tells the other replicas a front door's change (such as
    /// `a2a-cancel:TASK`); they hear it through [`Market::door_changes`].
    pub fn announce(&self, subject: &str) -> Result<()> {
        Ok(self.store.announce(subject)?)
    }

    /// The front doors' changes other replicas announced.
    pub fn door_changes(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.door_changes.subscribe()
    }

    /// Hosts sharing the store, this one included (1 on the embedded one).
    pub fn replicas(&self) -> u32 {
        self.rates.replicas()
    }

    /// Whether this replica follows the others: on a shared store, the
    /// change feed was read in the last [`FEED_STALE`].
    pub fn feed_caught_up(&self) -> std::result::Result<(), String> {
        if !self.store.is_shared() {
            return Ok(());
        }
        let read_at = self.feed_read_at.load(std::sync::atomic::Ordering::Acquire);
        let behind = super::now_ms().saturating_sub(read_at);
        if behind > FEED_STALE.as_millis() as u64 {
            return Err(format!(
                "the catalog has not followed the other replicas for {} ms",
                behind
            ));
        }
        Ok(())
    }

    /// Tells the other replicas (a shared store) that an agent's listed
    /// versions changed. The change is already stored, so a failure here
    /// (the database went away just now) is logged: the others then list it
    /// at their next start, or at the agent's next change.
    pub(super) fn announce_agent(&self, agent: &str) {
        if let Err(error) = self.store.announce(&format!("agent:{agent}")) {
            tracing::warn!(%error, agent, "change not announced to the other replicas");
        }
    }
}
