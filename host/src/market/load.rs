//! Start-up: rebuild the catalog and statistics from the store, loading
//! compiled artifacts from the cache instead of recompiling.

use super::invoke::InvocationRecord;
use super::{Error, Market, Result};
use crate::registry::{CapabilityId, Listed, VersionRecord};
use crate::sandbox::Compiled;
use crate::store::Tree;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// How long an upload waits for a compilation slot.
const COMPILE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Compilations at once (each takes a core while it runs).
pub(super) const COMPILES_AT_ONCE: usize = 2;
/// How long a refused component's digest is remembered.
const REFUSAL_TTL: std::time::Duration = std::time::Duration::from_secs(600);
/// Refused digests remembered at most (the oldest are forgotten first).
const REFUSALS_MAX: usize = 1_024;

/// Digests of components the compiler refused lately, with the refusal.
#[derive(Default)]
pub(super) struct CompileRefusals {
    refused: std::sync::Mutex<
        std::collections::HashMap<String, (std::time::Instant, crate::sandbox::Error)>,
    >,
}

impl CompileRefusals {
    fn recall(&self, sha256: &str) -> Option<crate::sandbox::Error> {
        let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        refused
            .get(sha256)
            .filter(|(at, _)| at.elapsed() < REFUSAL_TTL)
            .map(|(_, error)| error.clone())
    }

    /// Remembers a refusal that the same bytes would meet again (not a
    /// host fault, which a retry may not meet).
    fn remember(&self, sha256: &str, error: &crate::sandbox::Error) {
        use crate::sandbox::Error as E;
        if !matches!(
            error,
            E::InvalidComponent(_)
                | E::ForbiddenImports(_)
                | E::WrongWorld(_)
                | E::CompileBudget { .. }
        ) {
            return;
        }
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if refused.len() >= REFUSALS_MAX {
            refused.retain(|_, (at, _)| at.elapsed() < REFUSAL_TTL);
            if refused.len() >= REFUSALS_MAX
                && let Some(oldest) = refused
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone())
            {
                refused.remove(&oldest);
            }
        }
        refused.insert(
            sha256.to_string(),
            (std::time::Instant::now(), error.clone()),
        );
    }
}

impl Market {
    fn artifact_key(&self, component_sha256: &str) -> String {
        format!("{component_sha256}:{}", self.sandbox.fingerprint())
    }

    /// The compiled component: from the artifact cache when a valid artifact
    /// for this engine exists, else compiled now. A fresh compilation comes
    /// with its artifact for [`Market::cache_artifact`]; the caller decides
    /// whether it is worth keeping.
    pub(super) async fn compiled(
        &self,
        component_sha256: &str,
        wasm: Option<Vec<u8>>,
    ) -> Result<(Compiled, Option<Vec<u8>>)> {
        let key = self.artifact_key(component_sha256);
        let cached = if self.config.recompile {
            None
        } else {
            self.store.get_bytes(Tree::Artifacts, &key)?
        };
        if let Some(stored) = cached {
            let sandbox = self.sandbox.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                let (hash, artifact) = stored.split_at_checked(32)?;
                (Sha256::digest(artifact).as_slice() == hash).then(|| sandbox.load(artifact))
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
            match loaded {
                Some(Ok(compiled)) => {
                    self.metrics.artifact_loads.inc();
                    return Ok((compiled, None));
                }
                Some(Err(e)) => {
                    tracing::warn!(%key, error = %e, "cached artifact rejected; recompiling")
                }
                None => tracing::warn!(%key, "cached artifact fails its checksum; recompiling"),
            }
        }
        let wasm = match wasm {
            Some(wasm) => wasm,
            None => self
                .store
                .get_bytes(Tree::Components, component_sha256)?
                .ok_or_else(|| {
                    Error::Internal(format!(
                        "component {component_sha256} missing from the store"
                    ))
                })?,
        };
        // The same bytes refused a moment ago are refused again without
        // compiling (a refusal is a property of the bytes and this engine).
        if let Some(refusal) = self.compile_refusals.recall(component_sha256) {
            return Err(refusal.into());
        }
        // At most a few compilations at once, each on a blocking thread; more
        // wait a while, then are refused as `overloaded`.
        let _turn = tokio::time::timeout(COMPILE_WAIT, self.compile_slots.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or(Error::CompilerBusy)?;
        let budget = Duration::from_millis(self.config.compile_ms_max);
        let compiled = match &self.config.compiler_exe {
            // In a child process: stopped at the budget, or when this
            // future is dropped (the upload gave up).
            Some(exe) => match self.sandbox.compile_isolated(exe, &wasm, budget).await {
                Ok(artifact) => {
                    let sandbox = self.sandbox.clone();
                    tokio::task::spawn_blocking(move || {
                        sandbox.load(&artifact).map(|compiled| (compiled, artifact))
                    })
                    .await
                    .map_err(|e| Error::Internal(e.to_string()))?
                }
                Err(refusal) => Err(refusal),
            },
            // In this process (a host embedded without its binary): the
            // upload stops waiting at the budget; the thread finishes, still
            // holding its compile turn.
            None => {
                let sandbox = self.sandbox.clone();
                let compiling = tokio::task::spawn_blocking(move || {
                    let _turn = _turn;
                    sandbox.compile(&wasm)
                });
                match tokio::time::timeout(budget, compiling).await {
                    Ok(compiled) => compiled.map_err(|e| Error::Internal(e.to_string()))?,
                    Err(_) => Err(crate::sandbox::Error::CompileBudget {
                        ms: self.config.compile_ms_max,
                    }),
                }
            }
        };
        // Every compilation counts, refused or not.
        self.metrics.compilations.inc();
        match compiled {
            Ok((compiled, artifact)) => Ok((compiled, Some(artifact))),
            Err(refusal) => {
                self.compile_refusals.remember(component_sha256, &refusal);
                Err(refusal.into())
            }
        }
    }

    /// Keeps a compiled artifact, prefixed by its own SHA-256, under the
    /// component's hash and this engine's fingerprint (durable at next sync).
    pub(super) fn cache_artifact(&self, component_sha256: &str, artifact: &[u8]) -> Result<()> {
        let mut stored = Sha256::digest(artifact).to_vec();
        stored.extend_from_slice(artifact);
        self.store.put_bytes(
            Tree::Artifacts,
            &self.artifact_key(component_sha256),
            &stored,
        )?;
        Ok(())
    }

    pub(super) async fn load_catalog(&self) -> Result<()> {
        let versions = self.store.scan::<VersionRecord>(Tree::Versions)?;
        // Every version's latest report in one read (delisted ones fail).
        let keys: Vec<String> = versions.iter().map(|(key, _)| key.clone()).collect();
        let reports = self.store.get_many_bytes(Tree::Reports, &keys)?;
        // A component listed under several versions or agents is loaded once.
        let mut loaded: std::collections::HashMap<String, Compiled> = Default::default();
        for ((key, record), report) in versions.into_iter().zip(reports) {
            if report.is_some_and(|r| failed(&r)) {
                continue;
            }
            let compiled = match loaded.get(&record.component_sha256) {
                Some(compiled) => compiled.clone(),
                None => {
                    let (compiled, artifact) =
                        self.compiled(&record.component_sha256, None).await?;
                    if let Some(artifact) = artifact {
                        self.cache_artifact(&record.component_sha256, &artifact)?;
                    }
                    loaded.insert(record.component_sha256.clone(), compiled.clone());
                    compiled
                }
            };
            let listed = Listed::new(record, compiled)
                .map_err(|e| Error::Internal(format!("stored version {key} does not load: {e}")))?;
            self.catalog.insert(Arc::new(listed));
        }
        // Artifacts compiled during the load are worth keeping.
        self.store.sync().await?;
        tracing::info!(versions = self.catalog.len(), "catalog loaded");
        Ok(())
    }

    /// Whether a stored version was delisted: its latest report (after a
    /// re-attestation) failed.
    pub(super) fn delisted(&self, version_key: &str) -> Result<bool> {
        let report = self.store.get_bytes(Tree::Reports, version_key)?;
        Ok(report.is_some_and(|r| failed(&r)))
    }

    pub(super) fn load_stats(&self) -> Result<()> {
        for (_, record) in self.store.scan::<InvocationRecord>(Tree::Invocations)? {
            let latency_ms_max = CapabilityId::parse(&record.capability_id)
                .ok()
                .and_then(|id| {
                    let listed = self.catalog.resolve(&id)?;
                    Some(
                        listed
                            .capability(&id.capability)?
                            .record
                            .terms
                            .latency_ms_max,
                    )
                })
                .unwrap_or(u64::MAX);
            self.stats.record(
                &record.capability_id,
                record.outcome == "ok",
                record.fuel_used,
                // Records from before `duration_us` was kept: their ms.
                record
                    .duration_us
                    .max(record.duration_ms.saturating_mul(1_000)),
                record.duration_ms <= latency_ms_max && !record.sla_missed,
            );
            if record.dispute.is_some() {
                self.stats.dispute(&record.capability_id);
            }
        }
        Ok(())
    }
}

/// Whether a stored report (JSON) says the version failed.
fn failed(report: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Verdict {
        verdict: Option<String>,
    }
    serde_json::from_slice::<Verdict>(report).is_ok_and(|r| r.verdict.as_deref() == Some("fail"))
}
