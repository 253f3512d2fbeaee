//! The in-memory catalog of listed versions: what invocations and listings
//! read, rebuilt from the store at start-up.

use super::ids::CapabilityId;
use super::records::{CapabilityRecord, VersionRecord};
use super::validate::compile_schema;
use crate::sandbox::Compiled;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// One capability of a listed version, with its compiled validators.
pub struct ListedCapability {
    /// The stored record.
    pub record: CapabilityRecord,
    /// `agent.capability@version`.
    pub pinned_id: String,
    /// `agent.capability`.
    pub unpinned_id: String,
    /// Validates inputs.
    pub input_validator: jsonschema::Validator,
    /// Validates outputs.
    pub output_validator: jsonschema::Validator,
}

/// A listed version: its record, its compiled component, its capabilities.
pub struct Listed {
    /// The stored record.
    pub record: VersionRecord,
    /// Parsed version.
    pub version: semver::Version,
    /// Ready to instantiate.
    pub compiled: Compiled,
    /// In `describe()` order.
    pub capabilities: Vec<ListedCapability>,
}

impl Listed {
    /// Builds a listing from a stored record and its compiled component.
    pub fn new(record: VersionRecord, compiled: Compiled) -> Result<Self, String> {
        let version = semver::Version::parse(&record.version).map_err(|e| e.to_string())?;
        let capabilities = record
            .capabilities
            .iter()
            .map(|c| {
                Ok(ListedCapability {
                    pinned_id: CapabilityId::pinned(&record.agent, &c.name, &version),
                    unpinned_id: CapabilityId::unpinned(&record.agent, &c.name),
                    input_validator: compile_schema(&c.input_schema)?,
                    output_validator: compile_schema(&c.output_schema)?,
                    record: c.clone(),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Listed {
            record,
            version,
            compiled,
            capabilities,
        })
    }

    /// The capability named `name`.
    pub fn capability(&self, name: &str) -> Option<&ListedCapability> {
        self.capabilities.iter().find(|c| c.record.name == name)
    }
}

#[derive(Default)]
struct AgentEntry {
    versions: BTreeMap<semver::Version, Arc<Listed>>,
}

/// Every listed version, by agent.
#[derive(Default)]
pub struct Catalog {
    agents: RwLock<BTreeMap<String, AgentEntry>>,
}

impl Catalog {
    /// Adds (or replaces) a listed version.
    pub fn insert(&self, listed: Arc<Listed>) {
        let mut agents = self.agents.write().unwrap_or_else(|p| p.into_inner());
        let entry = agents.entry(listed.record.agent.clone()).or_default();
        entry.versions.insert(listed.version.clone(), listed);
    }

    /// The version an id names: the pinned one, or the latest.
    pub fn resolve(&self, id: &CapabilityId) -> Option<Arc<Listed>> {
        let agents = self.agents.read().unwrap_or_else(|p| p.into_inner());
        let entry = agents.get(&id.agent)?;
        let listed = match &id.version {
            Some(v) => entry.versions.get(v)?,
            None => entry.versions.values().next_back()?,
        };
        listed.capability(&id.capability)?;
        Some(listed.clone())
    }

    /// The latest version of every agent, by agent name.
    pub fn latest(&self) -> Vec<Arc<Listed>> {
        let agents = self.agents.read().unwrap_or_else(|p| p.into_inner());
        agents
            .values()
            .filter_map(|e| e.versions.values().next_back().cloned())
            .collect()
    }

    /// The latest version of one agent.
    pub fn latest_of(&self, agent: &str) -> Option<Arc<Listed>> {
        let agents = self.agents.read().unwrap_or_else(|p| p.into_inner());
        agents.get(agent)?.versions.values().next_back().cloned()
    }

    /// Capabilities of the latest versions (what is on offer).
    pub fn capability_count(&self) -> usize {
        let agents = self.agents.read().unwrap_or_else(|p| p.into_inner());
        agents
            .values()
            .filter_map(|e| e.versions.values().next_back())
            .map(|l| l.capabilities.len())
            .sum()
    }

    /// Number of listed versions.
    pub fn len(&self) -> usize {
        let agents = self.agents.read().unwrap_or_else(|p| p.into_inner());
        agents.values().map(|e| e.versions.len()).sum()
    }

    /// Whether nothing is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
