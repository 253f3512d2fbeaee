//! Registry: components, agents, versions and capability listings.
//!
//! Owns: upload manifests (commercial terms), checking what `describe()`
//! says, capability ids, version order and ownership, and the in-memory
//! catalog of listed versions with their compiled components and schema
//! validators.
//!
//! Does not know about: HTTP, prices of a given call (see `pricing`), or how
//! a call runs (see `sandbox`).
//!
//! Invariants:
//! - An agent name belongs to the organisation that first published it; only
//!   it may add versions.
//! - Versions of an agent only go up (semver); a version, once published, is
//!   immutable. An unpinned capability id means the latest version.
//! - Every listed capability has terms in the manifest, valid JSON Schemas, and
//!   examples that satisfy those schemas; the manifest names no capability the
//!   component lacks.

mod catalog;
pub mod compat;
mod ids;
pub mod listing;
mod manifest;
mod records;
mod validate;

pub use catalog::{Catalog, Listed, ListedCapability};
pub use ids::{CapabilityId, is_name};
pub use manifest::{DataPolicy, LATENCY_MS_MAX, Manifest, Policy, Retention, Terms};
pub use records::{AgentRecord, CapabilityRecord, Example, VersionRecord};
pub use validate::{Violation, check_description, compile_schema, violations};

/// The registry's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an upload or a lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manifest is not valid TOML or breaks a rule.
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// `describe()` answered something the marketplace cannot list.
    #[error("invalid description: {0}")]
    InvalidDescription(String),
    /// No such capability.
    #[error("no capability `{0}`")]
    NotFound(String),
    /// The capability id is malformed.
    #[error("malformed capability id `{0}`: expected agent.capability or agent.capability@version")]
    BadId(String),
}
