//! Feeding discovery: the entry of a listed capability, its facts, and the
//! `discover` call.

use super::views::{CapabilityView, Quote};
use super::{Error, Market, Result};
use crate::discovery::{Entry, Explanation, Facts, Query};
use crate::registry::{CapabilityId, CapabilityRecord};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One discovery result: the capability, its score and why.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct DiscoveredCapability {
    /// The capability with its terms.
    pub capability: CapabilityView,
    /// Fused score (higher is better; comparable within one answer).
    pub score: f32,
    /// Matched terms, score parts, filters passed.
    pub explanation: Explanation,
}

/// Names and descriptions of an input schema's fields (top level and one
/// level down), for the lexical index.
pub fn schema_fields(schema: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut visit = |properties: &serde_json::Map<String, serde_json::Value>| {
        for (name, property) in properties {
            out.push(name.clone());
            if let Some(d) = property.get("description").and_then(|d| d.as_str()) {
                out.push(d.chars().take(200).collect());
            }
        }
    };
    if let Some(properties) = schema.get("properties").and_then(|p| p.as_object()) {
        visit(properties);
    }
    if let Some(defs) = schema.get("$defs").and_then(|d| d.as_object()) {
        for def in defs.values() {
            if let Some(properties) = def.get("properties").and_then(|p| p.as_object()) {
                visit(properties);
            }
        }
    }
    out.truncate(128);
    out
}

/// The discovery entry of a capability: the same path for published
/// capabilities and for benchmark catalogs.
pub fn entry_for(
    key: &str,
    record: &CapabilityRecord,
    expected_cost_micros: u64,
    rating: Option<f64>,
) -> Entry {
    let terms = &record.terms;
    Entry {
        key: key.to_string(),
        name: record.name.clone(),
        description: record.description.clone(),
        category: record.category.clone(),
        tags: record.tags.clone(),
        fields: schema_fields(&record.input_schema),
        facts: Facts {
            expected_cost_micros,
            latency_ms_max: terms.latency_ms_max,
            uptime: terms.uptime,
            retention: terms.data_policy.retention,
            encryption: terms.data_policy.encryption,
            jurisdictions: terms.data_policy.jurisdictions.clone(),
            rating,
        },
    }
}

impl Market {
    /// Indexes (or re-indexes) the latest version of each major line of
    /// every capability of `agent`.
    pub(super) fn index_agent(&self, agent: &str) {
        for listed in self.catalog.lines_of(agent) {
            for c in &listed.capabilities {
                let view = self.view(&listed, c);
                self.index_view(&view);
            }
        }
    }

    /// Removes every entry of `agent` from the index (before the catalog
    /// changes what its ids name; [`Market::index_agent`] adds them back).
    pub(super) fn unindex_agent(&self, agent: &str) {
        for listed in self.catalog.lines_of(agent) {
            for c in &listed.capabilities {
                self.discovery
                    .remove(&self.catalog.line_id(&listed, &c.record.name));
            }
        }
    }

    /// The discovery entry of `view` when it is the latest of its line.
    fn latest_entry(&self, view: &CapabilityView) -> Option<Entry> {
        let id = CapabilityId::parse(&view.id).ok()?;
        let listed = self.catalog.resolve(&id)?;
        if listed.record.version != view.version {
            return None;
        }
        let c = listed.capability(&view.name)?;
        let fuel_cap = self.sandbox.limits().fuel_per_call_max;
        let expected =
            Quote::new(view, fuel_cap, self.settlement.rules().fee_bps).expected_cost_micros;
        Some(entry_for(
            &view.id,
            &c.record,
            expected,
            view.reputation.rating,
        ))
    }

    fn index_view(&self, view: &CapabilityView) {
        if let Some(entry) = self.latest_entry(view) {
            let vector = self.discovery.embed(&entry);
            self.discovery.upsert(entry, vector);
        }
    }

    /// Refreshes the expected cost a capability is filtered by.
    pub(super) fn refresh_facts(&self, pinned_id: &str) {
        let entry = self
            .capability(pinned_id)
            .ok()
            .and_then(|view| self.latest_entry(&view));
        if let Some(entry) = entry {
            self.discovery.update_facts(&entry.key, entry.facts);
        }
    }

    /// Ranks capabilities for a need within its constraints.
    pub fn discover(&self, query: &Query) -> Result<Vec<DiscoveredCapability>> {
        let hits = self
            .discovery
            .search(query)
            .map_err(|e| Error::InvalidQuery(e.0))?;
        Ok(hits
            .into_iter()
            .filter_map(|hit| {
                let capability = self.capability(&hit.key).ok()?;
                Some(DiscoveredCapability {
                    capability,
                    score: hit.score,
                    explanation: hit.explanation,
                })
            })
            .collect())
    }

    /// The embedder discovery uses.
    pub fn embedder_name(&self) -> &str {
        self.discovery.embedder_name()
    }
}
