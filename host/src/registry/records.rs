//! What the registry stores: agents and their versions.

use super::manifest::Terms;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An agent: a name owned by one organisation, with its versions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AgentRecord {
    /// Agent name.
    pub name: String,
    /// The organisation that owns the name.
    pub owner_org_id: String,
    /// Published versions, oldest first.
    pub versions: Vec<String>,
    /// First publication, Unix milliseconds.
    pub created_at_ms: u64,
}

/// One published version of an agent (immutable).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VersionRecord {
    /// Agent name.
    pub agent: String,
    /// Semantic version.
    pub version: String,
    /// Publisher.
    pub owner_org_id: String,
    /// Hex SHA-256 of the component.
    pub component_sha256: String,
    /// Component size.
    pub component_bytes: u64,
    /// Publication time, Unix milliseconds.
    pub published_at_ms: u64,
    /// The capabilities with their terms.
    pub capabilities: Vec<CapabilityRecord>,
    /// Whether it passed attestation when published (versions published
    /// before attestation existed did not run it).
    #[serde(default)]
    pub attested: bool,
    /// SHA-256 of the manifest text, hex.
    #[serde(default)]
    pub manifest_sha256: String,
    /// The organisation key that signed the upload (versions published
    /// before it was kept have none).
    #[serde(default)]
    pub signed_by_key_id: Option<String>,
}

/// One worked example.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct Example {
    /// Input.
    pub input: serde_json::Value,
    /// The output the capability gives for it.
    pub output: serde_json::Value,
}

/// One capability of a version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CapabilityRecord {
    /// Name within the agent.
    pub name: String,
    /// Plain-language description.
    pub description: String,
    /// Category.
    pub category: String,
    /// Keywords.
    pub tags: Vec<String>,
    /// Input JSON Schema.
    pub input_schema: serde_json::Value,
    /// Output JSON Schema.
    pub output_schema: serde_json::Value,
    /// Worked examples.
    pub examples: Vec<Example>,
    /// Commercial terms from the manifest.
    pub terms: Terms,
    /// Whether the same input always gives the same output (as declared).
    #[serde(default = "deterministic_by_default")]
    pub deterministic: bool,
    /// Median fuel over the attestation cases.
    #[serde(default)]
    pub attested_fuel_p50: Option<u64>,
}

fn deterministic_by_default() -> bool {
    true
}
