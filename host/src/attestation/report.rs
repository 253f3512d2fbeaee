//! The attestation report: per capability and per case, what ran, what it
//! used, and every check with its verdict. Signed by the marketplace key when
//! a host produces it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Format tag of reports this module writes.
pub const FORMAT: &str = "mercato-attestation/1";

/// One check's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct CheckResult {
    /// What was checked (`output_schema`, `equals example`, `contains /text`, ...).
    pub check: String,
    /// Whether it held.
    pub passed: bool,
    /// Why it failed, or what it measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl CheckResult {
    /// A check that held.
    pub fn pass(check: impl Into<String>) -> Self {
        CheckResult {
            check: check.into(),
            passed: true,
            detail: None,
        }
    }

    /// A check that failed, with the reason.
    pub fn fail(check: impl Into<String>, detail: impl Into<String>) -> Self {
        CheckResult {
            check: check.into(),
            passed: false,
            detail: Some(detail.into()),
        }
    }

    /// Pass or fail from a result.
    pub fn from_result(check: impl Into<String>, result: Result<(), String>) -> Self {
        match result {
            Ok(()) => CheckResult::pass(check),
            Err(why) => CheckResult::fail(check, why),
        }
    }
}

/// One case: an input run in the sandbox (twice when checking determinism).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct CaseReport {
    /// `example`, `battery` (of the capability's category), or `upgrade`
    /// (the previous version's examples and battery).
    pub suite: String,
    /// Case name.
    pub name: String,
    /// Whether every check held.
    pub passed: bool,
    /// Fuel of the first run.
    pub fuel_used: u64,
    /// Wall time of the first run, microseconds.
    pub duration_us: u64,
    /// Every check.
    pub checks: Vec<CheckResult>,
}

/// One capability's attestation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct CapabilityReport {
    /// Capability name.
    pub capability: String,
    /// Its category.
    pub category: String,
    /// Whether it declared itself deterministic.
    pub deterministic: bool,
    /// SHA-256 of the category battery that ran, if the category has one.
    pub battery_sha256: Option<String>,
    /// Whether everything held.
    pub passed: bool,
    /// Problems that are not a case (no applicable battery case, ...).
    pub problems: Vec<String>,
    /// The cases.
    pub cases: Vec<CaseReport>,
    /// Median fuel over the cases that succeeded.
    pub fuel_p50: Option<u64>,
    /// Base price plus the median fuel at the listed rate, in micros.
    pub expected_cost_micros: u64,
}

/// The whole report of one upload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct Report {
    /// [`FORMAT`].
    pub format: String,
    /// Agent name.
    pub agent: String,
    /// Agent version.
    pub version: String,
    /// SHA-256 of the component, hex.
    pub component_sha256: String,
    /// SHA-256 of the manifest text, hex.
    pub manifest_sha256: String,
    /// When the battery ran, Unix milliseconds.
    pub attested_at_ms: u64,
    /// `pass` or `fail`.
    pub verdict: String,
    /// Component-level checks (valid component, world, imports, size, description).
    pub structure: Vec<CheckResult>,
    /// The version this one upgrades (same major), when there is one.
    pub upgrades: Option<String>,
    /// Compatibility with that version (schemas, capabilities kept).
    pub compatibility: Vec<CheckResult>,
    /// Per capability.
    pub capabilities: Vec<CapabilityReport>,
}

impl Report {
    /// Whether the upload passed.
    pub fn passed(&self) -> bool {
        self.verdict == "pass"
    }

    /// Sets the verdict from the parts.
    pub fn conclude(&mut self) {
        let passed = self.structure.iter().all(|c| c.passed)
            && self.compatibility.iter().all(|c| c.passed)
            && self.capabilities.iter().all(|c| c.passed);
        self.verdict = if passed { "pass" } else { "fail" }.into();
    }

    /// Every failure, one line each: `capability / case: check: why`.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let line = |scope: &str, c: &CheckResult| {
            format!(
                "{scope}: {}: {}",
                c.check,
                c.detail.as_deref().unwrap_or("failed")
            )
        };
        for c in self.structure.iter().filter(|c| !c.passed) {
            out.push(line("structure", c));
        }
        for c in self.compatibility.iter().filter(|c| !c.passed) {
            out.push(line("compatibility", c));
        }
        for capability in &self.capabilities {
            for problem in &capability.problems {
                out.push(format!("{}: {problem}", capability.capability));
            }
            for case in capability.cases.iter().filter(|c| !c.passed) {
                let scope = format!("{} / {} `{}`", capability.capability, case.suite, case.name);
                for c in case.checks.iter().filter(|c| !c.passed) {
                    out.push(line(&scope, c));
                }
            }
        }
        out
    }
}
