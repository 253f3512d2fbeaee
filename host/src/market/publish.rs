//! Publishing: verify the publisher and its signature, compile, describe,
//! validate, attest, then store and list — or refuse with the report.

use super::history::UploadRecord;
use super::views::{CapabilityView, Published};
use super::{Error, Market, Result, now_ms};
use crate::attestation::{Attester, CaseReport, CheckResult, Report, Subject};
use crate::identity::{self, Org, signing::UploadSignature};
use crate::registry::{AgentRecord, Listed, Manifest, VersionRecord, check_description};
use crate::store::Tree;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// An upload as a front door hands it over.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The component bytes.
    pub component: Vec<u8>,
    /// The manifest text (TOML).
    pub manifest: String,
    /// The `signature` field as sent: JSON `{"key_id", "signature"}`.
    pub signature: Option<String>,
}

/// What an upload is checked as, before any attestation case runs.
struct Checked {
    component_sha256: String,
    manifest_sha256: String,
    bytes: u64,
    manifest: Manifest,
    key_id: String,
}

fn version_key(agent: &str, version: &str) -> String {
    format!("{agent}@{version}")
}

impl Market {
    /// Checks who publishes and what they signed; nothing is stored.
    fn check_upload(&self, org: &Org, upload: &Upload) -> Result<Checked> {
        if org.verified_at_ms.is_none() {
            return Err(Error::OrgNotVerified(org.org_id.clone()));
        }
        let signature_text = upload
            .signature
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .ok_or(Error::SignatureMissing)?;
        let signature: UploadSignature = serde_json::from_str(signature_text).map_err(|e| {
            identity::Error::BadSignature(format!(
                "expected JSON {{\"key_id\": ..., \"signature\": ...}}: {e}"
            ))
        })?;
        let bytes = upload.component.len() as u64;
        if bytes > self.config.component_bytes_max {
            return Err(Error::ComponentTooLarge {
                bytes,
                bytes_max: self.config.component_bytes_max,
            });
        }
        let component_sha256 = hex::encode(Sha256::digest(&upload.component));
        let manifest_sha256 = hex::encode(Sha256::digest(upload.manifest.as_bytes()));
        identity::keys::check_upload(
            &self.store,
            &org.org_id,
            &signature,
            &component_sha256,
            &manifest_sha256,
        )?;
        Ok(Checked {
            component_sha256,
            manifest_sha256,
            bytes,
            manifest: Manifest::parse(&upload.manifest)?,
            key_id: signature.key_id,
        })
    }

    /// Publishes a component with its manifest on behalf of `org`. Everything
    /// is on disk before this returns; a refused upload lists nothing (a
    /// failed attestation keeps only its signed report).
    pub async fn publish(&self, org: &Org, upload: Upload) -> Result<Published> {
        let checked = self.check_upload(org, &upload)?;
        let component_sha256 = checked.component_sha256.clone();

        // Compile (or load from the cache) before anything is stored.
        let known = self.store.contains(Tree::Components, &component_sha256)?;
        let (compiled, artifact) = self
            .compiled(&component_sha256, Some(upload.component.clone()))
            .await?;
        let description = self.sandbox.describe(&compiled).await?;
        let (version, mut capabilities) = check_description(&description, &checked.manifest)?;
        let version_text = version.to_string();
        let key = version_key(&description.name, &version_text);

        let existing = self
            .store
            .get::<AgentRecord>(Tree::Agents, &description.name)?;
        if let Some(agent) = &existing {
            if agent.owner_org_id != org.org_id {
                return Err(Error::NotOwner {
                    agent: agent.name.clone(),
                });
            }
            if let Some(same) = self.store.get::<VersionRecord>(Tree::Versions, &key)? {
                if same.component_sha256 == component_sha256
                    && same.manifest_sha256 == checked.manifest_sha256
                {
                    return self.published(&same, false);
                }
                return Err(Error::VersionExists {
                    agent: agent.name.clone(),
                    version: version_text,
                });
            }
            let latest = agent
                .versions
                .iter()
                .filter_map(|v| semver::Version::parse(v).ok())
                .max();
            if let Some(latest) = latest.filter(|latest| *latest >= version) {
                return Err(Error::VersionNotNewer {
                    agent: agent.name.clone(),
                    version: version_text,
                    latest: latest.to_string(),
                });
            }
        }

        // The listed version this one replaces within its major, if any.
        let previous = self
            .catalog
            .versions_of(&description.name)
            .into_iter()
            .rev()
            .find(|l| l.version.major == version.major && l.version < version);
        let now = now_ms();
        let report = {
            let batteries = self.batteries();
            let attester = Attester {
                sandbox: &self.sandbox,
                batteries: &batteries,
                budget: std::time::Duration::from_millis(self.config.attestation_ms_max),
            };
            let subject = Subject {
                compiled: &compiled,
                agent: &description.name,
                version: &version_text,
                component_sha256: &component_sha256,
                manifest_sha256: &checked.manifest_sha256,
                structure: structure_checks(checked.bytes, self.config.component_bytes_max),
                capabilities: &capabilities,
                previous: previous.as_ref().map(|p| &p.record),
            };
            attester.attest(&subject, now, &mut |_, _| {}).await
        };
        let signed = self.sign_report(&report)?;
        self.record_upload(&UploadRecord {
            upload_id: super::history::new_upload_id(),
            org_id: org.org_id.clone(),
            agent: description.name.clone(),
            version: version_text.clone(),
            passed: report.passed(),
            at_ms: now,
            key_id: checked.key_id.clone(),
            report: signed.clone(),
        })?;
        if !report.passed() {
            self.store.put(Tree::Reports, &key, &signed)?;
            self.store.sync().await?;
            tracing::info!(agent = %description.name, version = %version_text, "attestation failed");
            return Err(refusal(&report, signed));
        }
        for (record, attested) in capabilities.iter_mut().zip(&report.capabilities) {
            record.attested_fuel_p50 = attested.fuel_p50;
        }

        let record = VersionRecord {
            agent: description.name.clone(),
            version: version_text.clone(),
            owner_org_id: org.org_id.clone(),
            component_sha256: component_sha256.clone(),
            component_bytes: checked.bytes,
            published_at_ms: now,
            capabilities,
            attested: true,
            manifest_sha256: checked.manifest_sha256.clone(),
            signed_by_key_id: Some(checked.key_id.clone()),
        };
        // Every listed agent is also an MCP registry listing: what
        // `/v0/servers` would serve for it must be valid server.json.
        let public_url = self.config.public_url.as_deref();
        let listing = crate::registry::listing::server_response(
            &record,
            &crate::registry::listing::namespace(public_url),
            public_url.unwrap_or("http://localhost"),
            true,
        );
        let violations = crate::registry::listing::listing_violations(&listing);
        if !violations.is_empty() {
            return Err(Error::Registry(crate::registry::Error::InvalidDescription(
                format!(
                    "its MCP registry listing would not be valid server.json: {}",
                    violations.join("; ")
                ),
            )));
        }
        let mut agent = existing.clone().unwrap_or_else(|| AgentRecord {
            name: description.name.clone(),
            owner_org_id: org.org_id.clone(),
            versions: Vec::new(),
            created_at_ms: now,
        });
        agent.versions.push(version_text.clone());

        if !known {
            self.store
                .put_bytes(Tree::Components, &component_sha256, &upload.component)?;
        }
        if let Some(artifact) = &artifact {
            self.cache_artifact(&component_sha256, artifact)?;
        }
        let written = self.store.put_agent_version(
            &description.name,
            existing.as_ref(),
            &agent,
            &key,
            &record,
        )?;
        if !written {
            // Another upload of this agent won the race; nothing of ours was
            // written but the (content-addressed, shareable) component bytes.
            return Err(Error::VersionExists {
                agent: description.name,
                version: version_text,
            });
        }
        self.store.put(Tree::Reports, &key, &signed)?;
        self.store.sync().await?;

        let listed = Listed::new(record.clone(), compiled).map_err(Error::Internal)?;
        self.catalog.insert(Arc::new(listed));
        self.index_agent(&record.agent).await?;
        self.announce_agent(&record.agent);
        tracing::info!(agent = %record.agent, version = %record.version, org = %org.org_id, "published");
        self.published(&record, true)
    }

    /// Signs a report with the marketplace key.
    pub(super) fn sign_report(&self, report: &Report) -> Result<serde_json::Value> {
        let mut value = serde_json::to_value(report).map_err(|e| Error::Internal(e.to_string()))?;
        self.market_key
            .sign(&mut value)
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(value)
    }

    fn published(&self, record: &VersionRecord, created: bool) -> Result<Published> {
        let capabilities: Vec<CapabilityView> = record
            .capabilities
            .iter()
            .filter_map(|c| {
                self.capability(&format!("{}.{}@{}", record.agent, c.name, record.version))
                    .ok()
            })
            .collect();
        let attestation = self
            .store
            .get::<serde_json::Value>(Tree::Reports, &version_key(&record.agent, &record.version))?
            .unwrap_or(serde_json::Value::Null);
        Ok(Published {
            agent: record.agent.clone(),
            version: record.version.clone(),
            component_sha256: record.component_sha256.clone(),
            created,
            capabilities,
            attestation,
        })
    }
}

/// The structure checks every upload that reaches attestation has passed
/// (a component failing one is refused earlier with its own error code).
pub fn structure_checks(bytes: u64, bytes_max: u64) -> Vec<CheckResult> {
    vec![
        CheckResult::pass("a valid WebAssembly component"),
        CheckResult::pass("implements the mercato:agent world"),
        CheckResult::pass("imports only what the host grants"),
        CheckResult {
            check: "size".into(),
            passed: bytes <= bytes_max,
            detail: Some(format!("{bytes} bytes; at most {bytes_max}")),
        },
        CheckResult::pass("describe() is valid and matches the manifest"),
    ]
}

/// Whether a failed report failed on compatibility with the previous version.
fn refusal(report: &Report, signed: serde_json::Value) -> Error {
    let upgrade_failed = report.compatibility.iter().any(|c| !c.passed)
        || report
            .capabilities
            .iter()
            .flat_map(|c| &c.cases)
            .any(|c: &CaseReport| c.suite == "upgrade" && !c.passed);
    let failures = report.failures();
    match (&report.upgrades, upgrade_failed) {
        (Some(previous), true) => Error::Incompatible {
            version: report.version.clone(),
            previous: previous.clone(),
            failures,
            report: Box::new(signed),
        },
        _ => Error::AttestationFailed {
            failures,
            report: Box::new(signed),
        },
    }
}
