//! `mercato attest`: the host's attestation, run locally for a provider's CI.
//! The same library calls as an upload: compile, describe, check the
//! description against the manifest, then the [`Attester`] with the same
//! batteries. Only signing is left out (the marketplace key signs reports).

use crate::attestation::{Attester, Batteries, CheckResult, FORMAT, Report, Subject, junit};
use crate::config::Config;
use crate::market::now_ms;
use crate::registry::{Manifest, check_description};
use crate::sandbox::Sandbox;
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where `mercato attest` writes.
pub struct AttestOutputs {
    /// JUnit XML.
    pub junit: Option<PathBuf>,
    /// JSON report.
    pub report: Option<PathBuf>,
}

fn structure_failure(component: &Path, sha: &str, manifest_sha: &str, why: String) -> Report {
    let mut report = Report {
        format: FORMAT.into(),
        agent: component
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        version: String::new(),
        component_sha256: sha.into(),
        manifest_sha256: manifest_sha.into(),
        attested_at_ms: now_ms(),
        verdict: String::new(),
        structure: vec![CheckResult::fail("structure", why)],
        upgrades: None,
        compatibility: Vec::new(),
        capabilities: Vec::new(),
    };
    report.conclude();
    report
}

/// Attests a component; returns the report (the caller sets the exit status).
pub async fn attest_file(
    component: &Path,
    manifest: &Path,
    batteries_dir: Option<&Path>,
    show_progress: bool,
) -> Result<Report> {
    let wasm =
        std::fs::read(component).with_context(|| format!("cannot read {}", component.display()))?;
    let manifest_text = std::fs::read_to_string(manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let batteries = Batteries::load(batteries_dir)?;
    let config = Config::default();
    let component_sha256 = hex::encode(Sha256::digest(&wasm));
    let manifest_sha256 = hex::encode(Sha256::digest(manifest_text.as_bytes()));
    let fail = |why: String| structure_failure(component, &component_sha256, &manifest_sha256, why);
    if wasm.len() as u64 > config.component_bytes_max {
        return Ok(fail(format!(
            "the component is {} bytes; the limit is {}",
            wasm.len(),
            config.component_bytes_max
        )));
    }
    let sandbox = Arc::new(Sandbox::new(config.sandbox.limits())?);
    let compiling = sandbox.clone();
    let compiled = match tokio::task::spawn_blocking(move || compiling.compile(&wasm)).await? {
        Ok((compiled, _artifact)) => compiled,
        Err(e) => return Ok(fail(e.to_string())),
    };
    let description = match sandbox.describe(&compiled).await {
        Ok(d) => d,
        Err(e) => return Ok(fail(e.to_string())),
    };
    let checked = Manifest::parse(&manifest_text)
        .and_then(|manifest| check_description(&description, &manifest));
    let (version, capabilities) = match checked {
        Ok(checked) => checked,
        Err(e) => return Ok(fail(e.to_string())),
    };
    let version = version.to_string();
    let attester = Attester {
        sandbox: &sandbox,
        batteries: &batteries,
        budget: std::time::Duration::from_millis(config.attestation_ms_max),
    };
    let subject = Subject {
        compiled: &compiled,
        agent: &description.name,
        version: &version,
        component_sha256: &component_sha256,
        manifest_sha256: &manifest_sha256,
        structure: crate::market::structure_checks(
            component.metadata().map(|m| m.len()).unwrap_or(0),
            config.component_bytes_max,
        ),
        capabilities: &capabilities,
        previous: None,
    };
    let bar = if show_progress {
        ProgressBar::new(attester.case_count(&subject) as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = attester
        .attest(&subject, now_ms(), &mut |capability, case| {
            bar.set_message(format!("{capability}: {}", case.name));
            bar.inc(1);
        })
        .await;
    bar.finish_and_clear();
    Ok(report)
}

/// `mercato attest`: prints a summary, writes the outputs, and returns
/// whether the component passed.
pub async fn run_attest(
    component: &Path,
    manifest: &Path,
    batteries_dir: Option<&Path>,
    outputs: &AttestOutputs,
    json: bool,
) -> Result<bool> {
    let report = attest_file(component, manifest, batteries_dir, !json).await?;
    if let Some(path) = &outputs.junit {
        std::fs::write(path, junit::render(&report)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let text = serde_json::to_string_pretty(&report)?;
    if let Some(path) = &outputs.report {
        std::fs::write(path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if json {
        println!("{text}");
        return Ok(report.passed());
    }
    let cases: usize = report.capabilities.iter().map(|c| c.cases.len()).sum();
    println!(
        "{} {}: {} ({} capabilities, {cases} cases)",
        report.agent,
        report.version,
        report.verdict,
        report.capabilities.len()
    );
    for c in &report.capabilities {
        let passed = c.cases.iter().filter(|k| k.passed).count();
        println!(
            "  {:<24} {:<5} {passed}/{} cases  fuel p50 {}  expected cost {} micros",
            c.capability,
            if c.passed { "pass" } else { "FAIL" },
            c.cases.len(),
            c.fuel_p50
                .map(|f| f.to_string())
                .unwrap_or_else(|| "-".into()),
            c.expected_cost_micros
        );
    }
    let failures = report.failures();
    if !failures.is_empty() {
        println!("\nfailures:");
        for line in failures {
            println!("  - {line}");
        }
    }
    Ok(report.passed())
}
