//! Trust operations: organisation verification, signing keys, the
//! marketplace's public keys, and attestation reports.

use super::{Error, Market, Result, now_ms};
use crate::identity::{self, KeySet, Org, OrgKey};
use crate::registry::CapabilityId;
use crate::store::Tree;

impl Market {
    /// Marks an organisation verified (admin).
    pub async fn verify_org(&self, org_id: &str) -> Result<Org> {
        Ok(identity::verify_org(&self.store, org_id, now_ms()).await?)
    }

    /// Registers a public signing key for `org`.
    pub async fn add_key(&self, org: &Org, public_key: &str) -> Result<OrgKey> {
        Ok(identity::keys::add(&self.store, &org.org_id, public_key, now_ms()).await?)
    }

    /// `org`'s signing keys.
    pub fn keys(&self, org: &Org) -> Result<Vec<OrgKey>> {
        Ok(identity::keys::list(&self.store, &org.org_id)?)
    }

    /// Revokes one of `org`'s signing keys.
    pub async fn revoke_key(&self, org: &Org, key_id: &str) -> Result<OrgKey> {
        identity::keys::revoke(&self.store, &org.org_id, key_id, now_ms())
            .await
            .map_err(|e| match e {
                identity::Error::UnknownKey(k) => {
                    Error::NotFound(format!("key `{}`", super::echoed(&k)))
                }
                other => other.into(),
            })
    }

    /// The marketplace's published keys.
    pub fn key_set(&self) -> KeySet {
        self.market_key.key_set()
    }

    /// The signed attestation report of the version an id names. A pinned id
    /// also finds the report of a refused or delisted version.
    pub fn attestation(&self, id: &str) -> Result<serde_json::Value> {
        let parsed = CapabilityId::parse(id)?;
        let version = match &parsed.version {
            Some(v) => v.to_string(),
            None => self
                .catalog
                .resolve(&parsed)
                .ok_or_else(|| Error::capability_not_found(id))?
                .record
                .version
                .clone(),
        };
        let report = self
            .store
            .get::<serde_json::Value>(Tree::Reports, &format!("{}@{version}", parsed.agent))?
            .filter(|r| {
                r["capabilities"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|c| c["capability"] == parsed.capability))
            })
            .ok_or_else(|| {
                Error::NotFound(format!("attestation report of `{}`", super::echoed(id)))
            })?;
        Ok(report)
    }
}
