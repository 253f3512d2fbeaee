//! Feeding discovery: the entry of a listed capability, its facts, and the
//! `discover` call.

use super::views::{CapabilityView, Quote};
use super::{Error, Market, Result};
use crate::discovery::{Entry, Explanation, Facts, Mode, Query, check_need};
use crate::registry::{CapabilityId, CapabilityRecord};
use crate::store::Tree;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// When a need refused a turn at the model is told to retry: a turn lasts
/// tens of milliseconds.
const MODEL_RETRY_MS: u64 = 1_000;
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
    agent: &str,
    record: &CapabilityRecord,
    expected_cost_micros: u64,
    rating: Option<f64>,
) -> Entry {
    let terms = &record.terms;
    Entry {
        key: key.to_string(),
        agent: agent.to_string(),
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
    /// every capability of `agent`, and drops its entries that no longer
    /// name anything. Vectors come from the store when this embedder made
    /// them before; new ones are computed off the async workers when the
    /// embedder is slow, and kept.
    pub(super) async fn index_agent(&self, agent: &str) -> Result<()> {
        let entries = self.entries_of(agent);
        let vectors = self.vectors_for(&entries).await?;
        let live: std::collections::HashSet<&str> =
            entries.iter().map(|e| e.key.as_str()).collect();
        for key in self.discovery.keys_with_prefix(&format!("{agent}.")) {
            if !live.contains(key.as_str()) {
                self.discovery.remove(&key);
            }
        }
        for (entry, vector) in entries.into_iter().zip(vectors) {
            self.discovery.upsert(entry, vector);
        }
        Ok(())
    }

    /// The discovery entries of an agent's listed capabilities (the latest
    /// version of each major line).
    fn entries_of(&self, agent: &str) -> Vec<Entry> {
        let mut entries = Vec::new();
        for listed in self.catalog.lines_of(agent) {
            for c in &listed.capabilities {
                if let Some(entry) = self.latest_entry(&self.view(&listed, c)) {
                    entries.push(entry);
                }
            }
        }
        entries
    }

    /// At start: the index of every listed capability, reloaded from its
    /// dump in `data_dir/index` and reconciled with the catalog, or rebuilt.
    pub(super) async fn restore_index(&self) -> Result<()> {
        let agents: std::collections::BTreeSet<String> = self
            .catalog
            .latest()
            .iter()
            .map(|l| l.record.agent.clone())
            .collect();
        let entries: Vec<Entry> = agents.iter().flat_map(|a| self.entries_of(a)).collect();
        let vectors = self.vectors_for(&entries).await?;
        let started = std::time::Instant::now();
        let restored = self.discovery.restore(
            &self.index_dir(),
            entries.into_iter().zip(vectors).collect(),
        );
        tracing::info!(
            ?restored,
            capabilities = self.discovery.len(),
            ms = started.elapsed().as_millis() as u64,
            "discovery index ready"
        );
        let _ = self.index_restored.set(restored);
        Ok(())
    }

    /// Where the index is dumped.
    pub(super) fn index_dir(&self) -> std::path::PathBuf {
        self.config.data_dir.join("index")
    }

    async fn vectors_for(&self, entries: &[Entry]) -> Result<Vec<Vec<f32>>> {
        let embedder = self.discovery.embedder();
        let dimension = embedder.dimension();
        let texts: Vec<String> = entries.iter().map(Entry::text).collect();
        let keys: Vec<String> = texts
            .iter()
            .map(|t| {
                format!(
                    "{}:{}",
                    embedder.name(),
                    hex::encode(Sha256::digest(t.as_bytes()))
                )
            })
            .collect();
        let mut vectors: Vec<Option<Vec<f32>>> = self
            .store
            .get_many_bytes(Tree::Vectors, &keys)?
            .into_iter()
            .map(|stored| stored.and_then(|b| decode_vector(&b, dimension)))
            .collect();
        let missing: Vec<usize> = (0..vectors.len())
            .filter(|i| vectors[*i].is_none())
            .collect();
        if !missing.is_empty() {
            let todo: Vec<String> = missing.iter().map(|i| texts[*i].clone()).collect();
            let embed = move || {
                let refs: Vec<&str> = todo.iter().map(String::as_str).collect();
                embedder.embed_many(&refs)
            };
            let computed = if self.discovery.embedder().is_slow() {
                tokio::task::spawn_blocking(embed)
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?
            } else {
                embed()
            };
            for (i, vector) in missing.into_iter().zip(computed) {
                // Kept for the next start (flushed in the background; a lost
                // one is computed again).
                self.store
                    .put_bytes(Tree::Vectors, &keys[i], &encode_vector(&vector))?;
                vectors[i] = Some(vector);
            }
        }
        Ok(vectors.into_iter().map(Option::unwrap_or_default).collect())
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
            &id.agent,
            &c.record,
            expected,
            view.reputation.rating,
        ))
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

    /// Ranks capabilities for a need within its constraints. `asker` is who
    /// waits for the model if the need must be embedded by it: `org:ID`, or
    /// `ip:ADDRESS` for a caller without a key (see `needs`).
    pub async fn discover(&self, query: &Query, asker: &str) -> Result<Vec<DiscoveredCapability>> {
        check_need(query).map_err(|e| Error::InvalidQuery(e.0))?;
        let embedder = self.discovery.embedder();
        let vectors: Arc<[f32]> = if !embedder.is_slow() {
            crate::discovery::embed_need(embedder.as_ref(), &query.need).into()
        } else if let Some(kept) = self.need_vectors.get(&query.need) {
            self.metrics.need_vectors_kept.inc();
            kept
        } else {
            let _turn = self
                .model_turns
                .enter(asker)
                .map_err(|refused| Error::ModelBusy {
                    mine: refused == super::needs::Refused::Asker,
                    retry_after_ms: MODEL_RETRY_MS,
                })?;
            let need = query.need.clone();
            let vectors: Arc<[f32]> = tokio::task::spawn_blocking(move || {
                crate::discovery::embed_need(embedder.as_ref(), &need)
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))?
            .into();
            self.metrics.needs_embedded.inc();
            self.need_vectors.put(&query.need, vectors.clone());
            vectors
        };
        let hits = self
            .discovery
            .search_embedded(query, &vectors, Mode::Fused)
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
    /// Where the marketplace's records are (a data directory or a database
    /// URL without its password).
    pub fn store_shown(&self) -> &str {
        self.store.place()
    }

    /// The store's engine: `sled` or `postgres`.
    pub fn store_engine(&self) -> &'static str {
        self.store.engine()
    }

    /// Whether the store answers now (blocks for at most a connection
    /// attempt): why not, when it does not.
    pub fn store_reachable(&self) -> std::result::Result<(), String> {
        self.store.ping().map_err(|e| e.to_string())?;
        self.feed_caught_up()
    }

    /// The discovery embedder's name.
    pub fn embedder_name(&self) -> &str {
        self.discovery.embedder_name()
    }

    /// Why discovery runs on the built-in embedder instead of a sentence
    /// model, when it does.
    pub fn embedder_fallback(&self) -> Option<&str> {
        self.embedder_fallback.as_deref()
    }

    /// How the index came to be at start: `reloaded` from its dump or
    /// `rebuilt`, with the figures or the reason.
    pub fn index_origin(&self) -> String {
        match self.index_restored.get() {
            Some(crate::discovery::Restored::Reloaded {
                kept,
                dropped,
                inserted,
            }) => format!("reloaded: {kept} kept, {dropped} dropped, {inserted} inserted"),
            Some(crate::discovery::Restored::Rebuilt(reason)) => format!("rebuilt: {reason}"),
            None => "starting".into(),
        }
    }
}

/// A vector as stored: little-endian `f32`s.
fn encode_vector(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn decode_vector(bytes: &[u8], dimension: usize) -> Option<Vec<f32>> {
    (bytes.len() == dimension * 4).then(|| {
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    })
}
