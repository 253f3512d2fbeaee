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

impl AgentEntry {
    fn lowest_major(&self) -> Option<u64> {
        self.versions.keys().next().map(|v| v.major)
    }

    fn latest_in(&self, major: u64) -> Option<&Arc<Listed>> {
        self.versions
            .iter()
            .rev()
            .find(|(v, _)| v.major == major)
            .map(|(_, l)| l)
    }

    fn lines(&self) -> Vec<Arc<Listed>> {
        let mut lines: Vec<Arc<Listed>> = Vec::new();
        for listed in self.versions.values() {
            match lines.last_mut() {
                Some(last) if last.version.major == listed.version.major => *last = listed.clone(),
                _ => lines.push(listed.clone()),
            }
        }
        lines
    }
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

    /// Removes a listed version (delisting); true if it was listed.
    pub fn remove(&self, agent: &str, version: &semver::Version) -> bool {
        let mut agents = self.agents.write().unwrap_or_else(|p| p.into_inner());
        let Some(entry) = agents.get_mut(agent) else {
            return false;
        };
        let removed = entry.versions.remove(version).is_some();
        if entry.versions.is_empty() {
            agents.remove(agent);
        }
        removed
    }

    /// The version an id names: the pinned one, the latest of a pinned major,
    /// or the latest of the lowest listed major.
    pub fn resolve(&self, id: &CapabilityId) -> Option<Arc<Listed>> {
        let agents = self.agents.read().unwrap_or_else(|p| p.into_inner());
        let entry = agents.get(&id.agent)?;
        let listed = match (&id.version, id.major) {
            (Some(v), _) => entry.versions.get(v)?,
            (None, Some(major)) => entry.latest_in(major)?,
            (None, None) => entry.latest_in(entry.lowest_major()?)?,
        };
        listed.capability(&id.capability)?;
        Some(listed.clone())
    }

    /// The latest version of each major line of every agent.
    pub fn latest(&self) -> Vec<Arc<Listed>> {
        let agents = self.agents.read().unwrap_or_else(|p| p.into_inner());
        agents.values().flat_map(AgentEntry::lines).collect()
    }

    /// The latest version of each major line of one agent.
    pub fn lines_of(&self, agent: &str) -> Vec<Arc<Listed>> {
        let agents = self.agents.read().unwrap_or_else(|p| p.into_inner());
        agents.get(agent).map(AgentEntry::lines).unwrap_or_default()
    }

    /// Every listed version of one agent, oldest first.
    pub fn versions_of(&self, agent: &str) -> Vec<Arc<Listed>> {
        let agents = self.agents.read().unwrap_or_else(|p| p.into_inner());
        agents
            .get(agent)
            .map(|e| e.versions.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every listed version.
    pub fn all(&self) -> Vec<Arc<Listed>> {
        let agents = self.agents.read().unwrap_or_else(|p| p.into_inner());
        agents
            .values()
            .flat_map(|e| e.versions.values().cloned())
            .collect()
    }

    /// The id consumers use for a capability of a listed version: bare for
    /// the agent's lowest listed major, `@MAJOR` for later majors.
    pub fn line_id(&self, listed: &Listed, capability: &str) -> String {
        let agents = self.agents.read().unwrap_or_else(|p| p.into_inner());
        let lowest = agents
            .get(&listed.record.agent)
            .and_then(AgentEntry::lowest_major);
        let major = listed.version.major;
        if lowest.is_none_or(|lowest| lowest == major) {
            CapabilityId::unpinned(&listed.record.agent, capability)
        } else {
            CapabilityId::line(&listed.record.agent, capability, major)
        }
    }

    /// Capabilities of the latest version of each line (what is on offer).
    pub fn capability_count(&self) -> usize {
        let agents = self.agents.read().unwrap_or_else(|p| p.into_inner());
        agents
            .values()
            .flat_map(AgentEntry::lines)
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
