//! What the pages list: an organisation's calls (as consumer and as
//! provider) and its uploads, newest first, a page at a time.
//!
//! The listings are indexes beside the records: an organisation's calls
//! by windows of time (`call_index.rs`), its contracts as `Tree::ByOrg`
//! keys naming the organisation and the contract; `Tree::Uploads` keeps
//! each upload's outcome with its signed report (a refused version's report
//! may later be replaced by a passing one under the same `agent@version`,
//! so the upload keeps its own).

use super::call_index::Added;
use super::invoke::InvocationRecord;
use super::{Market, Result};
use crate::registry::{AgentRecord, VersionRecord};
use crate::store::Tree;
use serde::{Deserialize, Serialize};

/// Most records one page of a listing may ask for.
pub const PAGE_MAX: usize = 2_000;

/// One upload and how it ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadRecord {
    /// `up_<uuidv7>`.
    pub upload_id: String,
    /// The uploading organisation.
    pub org_id: String,
    /// Agent name and version the component described.
    pub agent: String,
    /// Version.
    pub version: String,
    /// Whether it was listed.
    pub passed: bool,
    /// When, Unix milliseconds.
    pub at_ms: u64,
    /// The organisation key that signed the upload.
    pub key_id: String,
    /// The signed attestation report.
    pub report: serde_json::Value,
}

impl Market {
    /// Lists a call under its consumer and its provider (in memory until
    /// the index drains: `call_index.rs`).
    pub(super) fn index_call(&self, record: &InvocationRecord) {
        let mut due = false;
        for (side, org_id) in [
            ("consumer", &record.consumer_org_id),
            ("provider", &record.provider_org_id),
        ] {
            match self.call_index.add(side, org_id, &record.transaction_id) {
                Added::Waiting => {}
                Added::Due => due = true,
                Added::Refused => {
                    tracing::warn!(
                        transaction = %record.transaction_id,
                        side,
                        "the calls' index is full (the store refuses its writes): call not listed"
                    );
                    due = true;
                }
            }
        }
        if due {
            unwritten(self.call_index.try_drain(&self.store));
        }
    }

    /// Writes the calls listed since the last drain; on a failure they stay
    /// listed in memory for the next one.
    pub(super) fn drain_call_index(&self) {
        unwritten(self.call_index.drain(&self.store));
    }

    /// Up to `limit` (at most [`PAGE_MAX`]) of an organisation's calls as
    /// `side` (`consumer` or `provider`), newest first, older than the
    /// transaction `before` when given.
    pub fn calls_of(
        &self,
        side: &str,
        org_id: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<InvocationRecord>> {
        let ids = self
            .call_index
            .page(&self.store, side, org_id, before, limit.min(PAGE_MAX))?;
        let mut records = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(record) = self.invocation(&id)? {
                records.push(record);
            }
        }
        Ok(records)
    }

    /// Lists a contract under both its parties.
    pub(super) fn index_contract(&self, contract: &super::Contract) -> Result<()> {
        for org_id in [&contract.consumer_org_id, &contract.provider_org_id] {
            self.store.put(
                Tree::ByOrg,
                &format!("contract/{org_id}/{}", contract.contract_id),
                &(),
            )?;
        }
        Ok(())
    }

    /// Up to `limit` signed contracts an organisation is a party to, newest
    /// first.
    pub fn contracts_of(&self, org_id: &str, limit: usize) -> Result<Vec<serde_json::Value>> {
        let prefix = format!("contract/{org_id}/");
        let keys = self
            .store
            .page_before::<()>(Tree::ByOrg, &prefix, None, limit.min(PAGE_MAX))?;
        let mut contracts = Vec::with_capacity(keys.len());
        for (key, ()) in keys {
            if let Some(c) = self
                .store
                .get::<serde_json::Value>(Tree::Contracts, &key[prefix.len()..])?
            {
                contracts.push(c);
            }
        }
        Ok(contracts)
    }

    /// Keeps an upload's outcome under its organisation, and under
    /// `refused/` for the operator when it was refused.
    pub(super) fn record_upload(&self, upload: &UploadRecord) -> Result<()> {
        self.store.put(
            Tree::Uploads,
            &format!("{}/{}", upload.org_id, upload.upload_id),
            upload,
        )?;
        if !upload.passed {
            self.store.put(
                Tree::Uploads,
                &format!("refused/{}", upload.upload_id),
                upload,
            )?;
        }
        Ok(())
    }

    /// An organisation's uploads, newest first.
    pub fn uploads_of(&self, org_id: &str, limit: usize) -> Result<Vec<UploadRecord>> {
        self.uploads_under(&format!("{org_id}/"), limit)
    }

    /// Refused uploads of every organisation, newest first.
    pub fn refused_uploads(&self, limit: usize) -> Result<Vec<UploadRecord>> {
        self.uploads_under("refused/", limit)
    }

    /// An agent's record (owner, versions) and each of its published
    /// versions, oldest first.
    pub fn agent_versions(&self, agent: &str) -> Result<Vec<VersionRecord>> {
        let Some(record) = self.store.get::<AgentRecord>(Tree::Agents, agent)? else {
            return Ok(Vec::new());
        };
        let mut versions = Vec::with_capacity(record.versions.len());
        for version in &record.versions {
            if let Some(v) = self
                .store
                .get::<VersionRecord>(Tree::Versions, &format!("{agent}@{version}"))?
            {
                versions.push(v);
            }
        }
        Ok(versions)
    }

    /// The agents an organisation owns, by name.
    pub fn agents_of(&self, org_id: &str) -> Result<Vec<AgentRecord>> {
        Ok(self
            .store
            .scan::<AgentRecord>(Tree::Agents)?
            .into_iter()
            .map(|(_, agent)| agent)
            .filter(|agent| agent.owner_org_id == org_id)
            .collect())
    }

    /// Whether a version is listed now (passed, not delisted).
    pub fn is_listed(&self, agent: &str, version: &str) -> bool {
        self.catalog
            .versions_of(agent)
            .iter()
            .any(|l| l.record.version == version)
    }

    fn uploads_under(&self, prefix: &str, limit: usize) -> Result<Vec<UploadRecord>> {
        Ok(self
            .store
            .page_before::<UploadRecord>(Tree::Uploads, prefix, None, limit.min(PAGE_MAX))?
            .into_iter()
            .map(|(_, upload)| upload)
            .collect())
    }
}

/// A new upload id, ordered by time.
pub(super) fn new_upload_id() -> String {
    format!("up_{}", uuid::Uuid::now_v7().simple())
}

/// Logs a drain of the calls' index that failed (its ids wait for the next).
fn unwritten(drained: crate::store::Result<()>) {
    if let Err(error) = drained {
        tracing::warn!(%error, "the calls' index was not written; retried at the next drain");
    }
}
