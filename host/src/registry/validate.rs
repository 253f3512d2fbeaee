//! Checking what `describe()` said against the manifest and the rules, and
//! validating JSON against declared schemas.

use super::Error;
use super::ids::is_name;
use super::manifest::Manifest;
use super::records::{CapabilityRecord, Example};
use crate::sandbox::AgentDescription;
use serde::Serialize;
use std::collections::BTreeSet;
use utoipa::ToSchema;

const CAPABILITIES_MAX: usize = 64;
const DESCRIPTION_CHARS_MAX: usize = 4_096;
const TAGS_MAX: usize = 32;
const TAG_CHARS_MAX: usize = 64;
const SCHEMA_BYTES_MAX: usize = 256 * 1024;
const EXAMPLES_MAX: usize = 16;
const EXAMPLE_BYTES_MAX: usize = 64 * 1024;
/// Violations reported for one document; the rest are counted, not listed.
const VIOLATIONS_MAX: usize = 32;

/// One way a JSON document breaks its schema.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
pub struct Violation {
    /// JSON Pointer to the offending value (`""` is the whole document).
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

/// Compiles a JSON Schema. Remote `$ref`s are not fetched: they fail.
pub fn compile_schema(schema: &serde_json::Value) -> Result<jsonschema::Validator, String> {
    jsonschema::validator_for(schema).map_err(|e| e.to_string())
}

/// Every way `instance` breaks `validator`'s schema (at most 32).
pub fn violations(
    validator: &jsonschema::Validator,
    instance: &serde_json::Value,
) -> Vec<Violation> {
    validator
        .iter_errors(instance)
        .take(VIOLATIONS_MAX)
        .map(|e| Violation {
            path: e.instance_path().to_string(),
            message: e.to_string(),
        })
        .collect()
}

fn parse_json(what: &str, text: &str, bytes_max: usize) -> Result<serde_json::Value, Error> {
    if text.len() > bytes_max {
        return Err(Error::InvalidDescription(format!(
            "{what} is over {bytes_max} bytes"
        )));
    }
    serde_json::from_str(text)
        .map_err(|e| Error::InvalidDescription(format!("{what} is not JSON: {e}")))
}

/// Checks a description against the rules and the manifest, returning the
/// version and the capability records to store.
pub fn check_description(
    description: &AgentDescription,
    manifest: &Manifest,
) -> Result<(semver::Version, Vec<CapabilityRecord>), Error> {
    let invalid = |m: String| Error::InvalidDescription(m);
    if !is_name(&description.name) {
        return Err(invalid(format!(
            "agent name `{}` is not lower-case kebab-case (1-64)",
            description.name
        )));
    }
    let version = semver::Version::parse(&description.version).map_err(|e| {
        invalid(format!(
            "version `{}` is not semver: {e}",
            description.version
        ))
    })?;
    let count = description.capabilities.len();
    if count == 0 || count > CAPABILITIES_MAX {
        return Err(invalid(format!(
            "an agent offers 1 to {CAPABILITIES_MAX} capabilities, not {count}"
        )));
    }
    let mut seen = BTreeSet::new();
    let mut records = Vec::with_capacity(count);
    for c in &description.capabilities {
        let at = |m: String| invalid(format!("capability `{}`: {m}", c.name));
        if !is_name(&c.name) {
            return Err(at("name is not lower-case kebab-case (1-64)".into()));
        }
        if !seen.insert(c.name.as_str()) {
            return Err(at("declared twice".into()));
        }
        if c.description.trim().is_empty() || c.description.chars().count() > DESCRIPTION_CHARS_MAX
        {
            return Err(at(format!(
                "description must be 1 to {DESCRIPTION_CHARS_MAX} characters"
            )));
        }
        if !is_name(&c.category) {
            return Err(at(format!(
                "category `{}` is not lower-case kebab-case",
                c.category
            )));
        }
        if c.tags.len() > TAGS_MAX
            || c.tags
                .iter()
                .any(|t| t.is_empty() || t.chars().count() > TAG_CHARS_MAX)
        {
            return Err(at(format!(
                "at most {TAGS_MAX} tags of 1 to {TAG_CHARS_MAX} characters"
            )));
        }
        let input_schema = parse_json("input schema", &c.input_schema, SCHEMA_BYTES_MAX)
            .map_err(|e| at(e.to_string()))?;
        let output_schema = parse_json("output schema", &c.output_schema, SCHEMA_BYTES_MAX)
            .map_err(|e| at(e.to_string()))?;
        let input_validator =
            compile_schema(&input_schema).map_err(|e| at(format!("input schema: {e}")))?;
        let output_validator =
            compile_schema(&output_schema).map_err(|e| at(format!("output schema: {e}")))?;
        if c.examples.len() > EXAMPLES_MAX {
            return Err(at(format!("at most {EXAMPLES_MAX} examples")));
        }
        let mut examples = Vec::with_capacity(c.examples.len());
        for (i, e) in c.examples.iter().enumerate() {
            let input = parse_json("example input", &e.input, EXAMPLE_BYTES_MAX)
                .map_err(|e| at(e.to_string()))?;
            let output = parse_json("example output", &e.output, EXAMPLE_BYTES_MAX)
                .map_err(|e| at(e.to_string()))?;
            if let Some(v) = violations(&input_validator, &input).first() {
                return Err(at(format!(
                    "example {i} input breaks the input schema at `{}`: {}",
                    v.path, v.message
                )));
            }
            if let Some(v) = violations(&output_validator, &output).first() {
                return Err(at(format!(
                    "example {i} output breaks the output schema at `{}`: {}",
                    v.path, v.message
                )));
            }
            examples.push(Example { input, output });
        }
        let terms = manifest
            .capabilities
            .get(&c.name)
            .ok_or_else(|| Error::InvalidManifest(format!("no terms for capability `{}`", c.name)))?
            .clone();
        records.push(CapabilityRecord {
            name: c.name.clone(),
            description: c.description.clone(),
            category: c.category.clone(),
            tags: c.tags.clone(),
            input_schema,
            output_schema,
            examples,
            terms,
            deterministic: c.deterministic,
            attested_fuel_p50: None,
        });
    }
    let extra: Vec<&str> = manifest
        .capabilities
        .keys()
        .map(String::as_str)
        .filter(|name| !seen.contains(name))
        .collect();
    if !extra.is_empty() {
        return Err(Error::InvalidManifest(format!(
            "terms for capabilities the component lacks: {}",
            extra.join(", ")
        )));
    }
    Ok((version, records))
}
