//! Batteries: per-category test cases, as data (`host/batteries/<category>.toml`
//! built in, plus an operator's directory that adds or replaces categories).

use super::check::Check;
use crate::registry::{is_name, violations};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Cases a battery may hold.
pub const CASES_MAX: usize = 64;
/// Checks a case may hold.
pub const CHECKS_MAX: usize = 16;
/// Largest battery file.
pub const BATTERY_BYTES_MAX: usize = 256 * 1024;

/// The batteries shipped with Mercato, compiled in.
const BUILT_IN: &[(&str, &str)] = &[
    (
        "compliance",
        include_str!("../../batteries/compliance.toml"),
    ),
    ("privacy", include_str!("../../batteries/privacy.toml")),
    ("text", include_str!("../../batteries/text.toml")),
    ("utilities", include_str!("../../batteries/utilities.toml")),
];

/// A battery that cannot be used, with the file and the reason.
#[derive(Debug, thiserror::Error)]
#[error("battery `{category}`: {reason}")]
pub struct BatteryError {
    /// The category (file stem).
    pub category: String,
    /// What is wrong.
    pub reason: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatteryFile {
    #[serde(default)]
    description: String,
    cases: Vec<CaseFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    name: String,
    #[serde(default)]
    tags: Vec<String>,
    input: serde_json::Value,
    checks: Vec<serde_json::Value>,
}

/// One case: an input and what its output must satisfy.
#[derive(Debug)]
pub struct Case {
    /// Name, unique in the battery.
    pub name: String,
    /// Applies to capabilities with any of these tags (all when empty).
    pub tags: Vec<String>,
    /// The input.
    pub input: serde_json::Value,
    /// The checks on the output.
    pub checks: Vec<Check>,
}

/// The battery of one category.
#[derive(Debug)]
pub struct Battery {
    /// The category it tests.
    pub category: String,
    /// What the category is.
    pub description: String,
    /// Hex SHA-256 of the file, so a report names the exact battery it ran.
    pub sha256: String,
    /// The cases.
    pub cases: Vec<Case>,
}

impl Case {
    /// Whether the case applies to a capability with these tags and this
    /// compiled input schema.
    pub fn applies_to(&self, tags: &[String], input_schema: &jsonschema::Validator) -> bool {
        let tagged = self.tags.is_empty()
            || self
                .tags
                .iter()
                .any(|t| tags.iter().any(|c| c.eq_ignore_ascii_case(t)));
        tagged && violations(input_schema, &self.input).is_empty()
    }
}

impl Battery {
    /// Parses and checks a battery file.
    pub fn parse(category: &str, text: &str) -> Result<Battery, BatteryError> {
        let fail = |reason: String| BatteryError {
            category: category.chars().take(64).collect(),
            reason,
        };
        if !is_name(category) {
            return Err(fail(
                "the file name must be a category name (lower-case kebab-case)".into(),
            ));
        }
        if text.len() > BATTERY_BYTES_MAX {
            return Err(fail(format!("larger than {BATTERY_BYTES_MAX} bytes")));
        }
        let file: BatteryFile = toml::from_str(text).map_err(|e| fail(e.message().to_string()))?;
        if file.cases.is_empty() || file.cases.len() > CASES_MAX {
            return Err(fail(format!("a battery holds 1 to {CASES_MAX} cases")));
        }
        let mut cases = Vec::with_capacity(file.cases.len());
        for case in file.cases {
            let at = |m: String| fail(format!("case `{}`: {m}", case.name));
            if case.name.trim().is_empty() || cases.iter().any(|c: &Case| c.name == case.name) {
                return Err(at("names must be non-empty and unique".into()));
            }
            if case.checks.is_empty() || case.checks.len() > CHECKS_MAX {
                return Err(at(format!("a case holds 1 to {CHECKS_MAX} checks")));
            }
            let checks = case
                .checks
                .iter()
                .map(Check::parse)
                .collect::<Result<Vec<_>, _>>()
                .map_err(at)?;
            cases.push(Case {
                name: case.name,
                tags: case.tags,
                input: case.input,
                checks,
            });
        }
        Ok(Battery {
            category: category.into(),
            description: file.description,
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
            cases,
        })
    }
}

/// Every battery in force, by category.
#[derive(Debug, Default)]
pub struct Batteries {
    by_category: BTreeMap<String, Battery>,
}

impl Batteries {
    /// The built-in batteries, then every `<category>.toml` in `dir` (which
    /// replaces a built-in battery of the same category). A broken file is an
    /// error: an operator would rather hear it than run without the battery.
    pub fn load(dir: Option<&Path>) -> Result<Batteries, BatteryError> {
        let mut by_category = BTreeMap::new();
        for (category, text) in BUILT_IN {
            by_category.insert(category.to_string(), Battery::parse(category, text)?);
        }
        if let Some(dir) = dir {
            let io = |e: std::io::Error| BatteryError {
                category: dir.display().to_string(),
                reason: e.to_string(),
            };
            let mut files: Vec<_> = std::fs::read_dir(dir)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            for path in files {
                let category = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .to_string();
                let text = std::fs::read_to_string(&path).map_err(io)?;
                by_category.insert(category.clone(), Battery::parse(&category, &text)?);
            }
        }
        Ok(Batteries { by_category })
    }

    /// The battery of `category`, if there is one.
    pub fn get(&self, category: &str) -> Option<&Battery> {
        self.by_category.get(category)
    }

    /// The categories with a battery.
    pub fn categories(&self) -> impl Iterator<Item = &str> {
        self.by_category.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_batteries_parse() {
        let batteries = Batteries::load(None).unwrap_or_else(|e| panic!("{e}"));
        let categories: Vec<&str> = batteries.categories().collect();
        assert_eq!(categories, ["compliance", "privacy", "text", "utilities"]);
    }

    #[test]
    fn broken_batteries_are_refused_with_the_reason() {
        for (text, why) in [
            ("cases = []", "1 to"),
            (
                "[[cases]]\nname = \"a\"\ninput = {}\nchecks = [{ contains = 1 }]",
                "contains",
            ),
            (
                "[[cases]]\nname = \"a\"\ninput = {}\nchecks = [{ regex = \"(\" }]",
                "regex",
            ),
            (
                "[[cases]]\nname = \"a\"\ninput = {}\nchecks = [{ equals = 1, contains = \"x\" }]",
                "exactly one",
            ),
            (
                "[[cases]]\nname = \"a\"\ninput = {}\nchecks = [{ path = \"x\", equals = 1 }]",
                "pointer",
            ),
            (
                "[[cases]]\nname = \"a\"\ninput = {}\nchecks = [{ equals = 1 }]\nbogus = 1",
                "bogus",
            ),
        ] {
            let error = Battery::parse("x", text)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(error.contains(why), "{text}: {error}");
        }
        assert!(Battery::parse("Bad Name", "").is_err());
    }
}
