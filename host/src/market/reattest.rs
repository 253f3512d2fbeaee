//! Re-attestation: after an operator changes a battery, run it again on the
//! listed versions of that category and delist those that now fail, keeping
//! their reports (a version whose latest report failed stays delisted across
//! restarts).

use super::publish::structure_checks;
use super::{Market, Result, now_ms};
use crate::attestation::{Attester, Batteries, Subject};
use crate::store::Tree;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// What a re-attestation did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Reattested {
    /// Categories with a battery after the reload.
    pub batteries: Vec<String>,
    /// Versions attested again (`agent@version`).
    pub checked: Vec<String>,
    /// Versions that failed and are no longer listed, with their failures.
    pub delisted: Vec<DelistedVersion>,
}

/// A version taken off the market by re-attestation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct DelistedVersion {
    /// `agent@version`.
    pub version: String,
    /// One line per failed check.
    pub failures: Vec<String>,
}

impl Market {
    /// Reloads the batteries and re-attests every listed version with a
    /// capability in `category` (every listed version when `None`).
    pub async fn reattest(&self, category: Option<&str>) -> Result<Reattested> {
        let batteries = Arc::new(Batteries::load(self.config.batteries_dir.as_deref())?);
        *self.batteries.write().unwrap_or_else(|p| p.into_inner()) = batteries.clone();
        let mut out = Reattested {
            batteries: batteries.categories().map(str::to_string).collect(),
            checked: Vec::new(),
            delisted: Vec::new(),
        };
        let attester = Attester {
            sandbox: &self.sandbox,
            batteries: &batteries,
            budget: std::time::Duration::from_millis(self.config.attestation_ms_max),
        };
        for listed in self.catalog.all() {
            let record = &listed.record;
            if category.is_some_and(|c| !record.capabilities.iter().any(|r| r.category == c)) {
                continue;
            }
            let subject = Subject {
                compiled: &listed.compiled,
                agent: &record.agent,
                version: &record.version,
                component_sha256: &record.component_sha256,
                manifest_sha256: &record.manifest_sha256,
                structure: structure_checks(
                    record.component_bytes,
                    self.config.component_bytes_max,
                ),
                capabilities: &record.capabilities,
                previous: None,
            };
            let report = attester.attest(&subject, now_ms(), &mut |_, _| {}).await;
            let key = format!("{}@{}", record.agent, record.version);
            self.store
                .put(Tree::Reports, &key, &self.sign_report(&report)?)?;
            out.checked.push(key.clone());
            if !report.passed() {
                self.catalog.remove(&record.agent, &listed.version);
                self.index_agent(&record.agent).await?;
                tracing::warn!(version = %key, "delisted by re-attestation");
                out.delisted.push(DelistedVersion {
                    version: key,
                    failures: report.failures(),
                });
            }
        }
        self.store.sync().await?;
        // Stored first: the other replicas read the reports they are told of.
        for delisted in &out.delisted {
            if let Some((agent, _)) = delisted.version.split_once('@') {
                self.announce_agent(agent);
            }
        }
        Ok(out)
    }
}
