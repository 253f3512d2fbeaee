//! Publishing: check, compile, describe, validate, store, list.

use super::views::{CapabilityView, Published};
use super::{Error, Market, Result, now_ms};
use crate::identity::Org;
use crate::registry::{AgentRecord, Listed, Manifest, VersionRecord, check_description};
use crate::store::Tree;
use sha2::{Digest, Sha256};
use std::sync::Arc;

impl Market {
    /// Publishes a component with its manifest on behalf of `org`. Everything
    /// is on disk before this returns.
    pub async fn publish(&self, org: &Org, wasm: Vec<u8>, manifest: &str) -> Result<Published> {
        let bytes = wasm.len() as u64;
        if bytes > self.config.component_bytes_max {
            return Err(Error::ComponentTooLarge {
                bytes,
                bytes_max: self.config.component_bytes_max,
            });
        }
        let manifest = Manifest::parse(manifest)?;
        let component_sha256 = hex::encode(Sha256::digest(&wasm));

        // Compile (or load from the cache) before anything is stored: a
        // refused component leaves no trace.
        let known = self.store.contains(Tree::Components, &component_sha256)?;
        let (compiled, artifact) = self.compiled(&component_sha256, Some(wasm.clone())).await?;
        let description = self.sandbox.describe(&compiled).await?;
        let (version, capabilities) = check_description(&description, &manifest)?;
        let version_text = version.to_string();
        let version_key = format!("{}@{version_text}", description.name);

        let existing = self
            .store
            .get::<AgentRecord>(Tree::Agents, &description.name)?;
        if let Some(agent) = &existing {
            if agent.owner_org_id != org.org_id {
                return Err(Error::NotOwner {
                    agent: agent.name.clone(),
                });
            }
            if let Some(same) = self
                .store
                .get::<VersionRecord>(Tree::Versions, &version_key)?
            {
                if same.component_sha256 == component_sha256 && same.capabilities == capabilities {
                    return Ok(self.published(&same, false));
                }
                return Err(Error::VersionExists {
                    agent: agent.name.clone(),
                    version: version_text,
                });
            }
            let latest = agent
                .versions
                .iter()
                .filter_map(|v| semver::Version::parse(v).ok())
                .max();
            if let Some(latest) = latest.filter(|latest| *latest >= version) {
                return Err(Error::VersionNotNewer {
                    agent: agent.name.clone(),
                    version: version_text,
                    latest: latest.to_string(),
                });
            }
        }

        let now = now_ms();
        let record = VersionRecord {
            agent: description.name.clone(),
            version: version_text.clone(),
            owner_org_id: org.org_id.clone(),
            component_sha256: component_sha256.clone(),
            component_bytes: bytes,
            published_at_ms: now,
            capabilities,
        };
        let mut agent = existing.clone().unwrap_or_else(|| AgentRecord {
            name: description.name.clone(),
            owner_org_id: org.org_id.clone(),
            versions: Vec::new(),
            created_at_ms: now,
        });
        agent.versions.push(version_text.clone());

        if !known {
            self.store
                .put_bytes(Tree::Components, &component_sha256, &wasm)?;
        }
        if let Some(artifact) = &artifact {
            self.cache_artifact(&component_sha256, artifact)?;
        }
        let written = self.store.put_agent_version(
            &description.name,
            existing.as_ref(),
            &agent,
            &version_key,
            &record,
        )?;
        if !written {
            // Another upload of this agent won the race; nothing of ours was
            // written but the (content-addressed, shareable) component bytes.
            return Err(Error::VersionExists {
                agent: description.name,
                version: version_text,
            });
        }
        self.store.sync().await?;

        let listed = Listed::new(record.clone(), compiled).map_err(Error::Internal)?;
        self.catalog.insert(Arc::new(listed));
        self.index_agent(&record.agent);
        tracing::info!(agent = %record.agent, version = %record.version, org = %org.org_id, "published");
        Ok(self.published(&record, true))
    }

    fn published(&self, record: &VersionRecord, created: bool) -> Published {
        let capabilities: Vec<CapabilityView> = record
            .capabilities
            .iter()
            .filter_map(|c| {
                self.capability(&format!("{}.{}@{}", record.agent, c.name, record.version))
                    .ok()
            })
            .collect();
        Published {
            agent: record.agent.clone(),
            version: record.version.clone(),
            component_sha256: record.component_sha256.clone(),
            created,
            capabilities,
        }
    }
}
