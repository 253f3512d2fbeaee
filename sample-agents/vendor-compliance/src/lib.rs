//! Vendor-compliance checker: takes a vendor's security profile and reports,
//! per control of SOC 2, ISO 27001, HIPAA and GDPR, whether the profile meets
//! it, with the reason. A framework passes when all its controls pass.

mod controls;

use controls::{CONTROLS, Framework};
use mercato_sdk::negotiation::Retention;
use mercato_sdk::{
    Agent, Capability, Decision, Deserialize, Error, JsonSchema, Negotiator, Proposal, Serialize,
};

/// What a vendor states about its security practice.
#[derive(Deserialize, Serialize, JsonSchema, Clone, Default)]
#[serde(crate = "mercato_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "mercato_sdk::schemars")]
pub struct VendorProfile {
    /// Vendor name.
    pub name: String,
    /// Certifications held, for example `soc2-type2`, `iso27001`.
    #[serde(default)]
    pub certifications: Vec<String>,
    /// Multi-factor authentication enforced for all staff.
    #[serde(default)]
    pub mfa_enforced: bool,
    /// Customer data encrypted at rest.
    #[serde(default)]
    pub encryption_at_rest: bool,
    /// Customer data encrypted in transit (TLS 1.2 or later).
    #[serde(default)]
    pub encryption_in_transit: bool,
    /// Access reviews held per year.
    #[serde(default)]
    pub access_reviews_per_year: u32,
    /// A documented, tested incident response plan exists.
    #[serde(default)]
    pub incident_response_plan: bool,
    /// Hours within which customers are told of a breach; absent if not committed.
    #[serde(default)]
    pub breach_notification_hours: Option<u32>,
    /// Security-relevant actions are logged and the logs kept.
    #[serde(default)]
    pub audit_logging: bool,
    /// Months since the last independent penetration test; absent if never.
    #[serde(default)]
    pub pen_test_months_ago: Option<u32>,
    /// Backups are restored in a test at least yearly.
    #[serde(default)]
    pub backups_tested: bool,
    /// A data processing agreement (GDPR art. 28) is offered.
    #[serde(default)]
    pub dpa_offered: bool,
    /// A HIPAA business associate agreement is offered.
    #[serde(default)]
    pub baa_offered: bool,
    /// Sub-processors are disclosed to customers.
    #[serde(default)]
    pub subprocessors_disclosed: bool,
    /// Regions where customer data is stored, for example `EU`, `US`.
    #[serde(default)]
    pub data_regions: Vec<String>,
    /// Standard contractual clauses (or an adequacy decision) cover transfers out of the EU.
    #[serde(default)]
    pub transfer_safeguards: bool,
    /// Customer data is deleted on request and within a stated period.
    #[serde(default)]
    pub deletion_on_request: bool,
}

/// A profile and the frameworks to check it against.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde", deny_unknown_fields)]
#[schemars(crate = "mercato_sdk::schemars")]
struct CheckInput {
    /// The vendor's profile.
    vendor: VendorProfile,
    /// Frameworks to check; all four when absent.
    #[serde(default)]
    frameworks: Option<Vec<Framework>>,
}

/// Pass or fail.
#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(crate = "mercato_sdk::serde", rename_all = "lowercase")]
#[schemars(crate = "mercato_sdk::schemars")]
enum Status {
    /// Requirement met.
    Pass,
    /// Requirement not met.
    Fail,
}

/// One control's result.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct ControlResult {
    /// Control reference, for example `CC6.1` or `Art. 32`.
    id: String,
    /// What the control requires.
    title: String,
    /// Whether the profile meets it.
    status: Status,
    /// Why.
    reason: String,
}

/// One framework's result.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct FrameworkResult {
    /// The framework.
    framework: Framework,
    /// Pass when every control passes.
    status: Status,
    /// Controls passed.
    passed: u32,
    /// Controls failed.
    failed: u32,
    /// Each control.
    controls: Vec<ControlResult>,
}

/// The report.
#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(crate = "mercato_sdk::serde")]
#[schemars(crate = "mercato_sdk::schemars")]
struct CheckOutput {
    /// Vendor name.
    vendor: String,
    /// Pass when every checked framework passes.
    overall: Status,
    /// Per framework.
    frameworks: Vec<FrameworkResult>,
}

fn check(input: CheckInput) -> Result<CheckOutput, Error> {
    if input.vendor.name.trim().is_empty() {
        return Err(Error::InvalidInput("vendor.name is empty".into()));
    }
    let frameworks = input.frameworks.unwrap_or_else(|| Framework::ALL.to_vec());
    let mut results = Vec::new();
    for framework in frameworks {
        let controls: Vec<ControlResult> = CONTROLS
            .iter()
            .filter(|c| c.framework == framework)
            .map(|c| {
                let (ok, reason) = (c.check)(&input.vendor);
                ControlResult {
                    id: c.id.into(),
                    title: c.title.into(),
                    status: if ok { Status::Pass } else { Status::Fail },
                    reason,
                }
            })
            .collect();
        let failed = controls.iter().filter(|c| c.status == Status::Fail).count() as u32;
        results.push(FrameworkResult {
            framework,
            status: if failed == 0 {
                Status::Pass
            } else {
                Status::Fail
            },
            passed: controls.len() as u32 - failed,
            failed,
            controls,
        });
    }
    let overall = if results.iter().all(|r| r.status == Status::Pass) {
        Status::Pass
    } else {
        Status::Fail
    };
    Ok(CheckOutput {
        vendor: input.vendor.name,
        overall,
        frameworks: results,
    })
}

/// The expected report, written out by hand from the control catalogue.
const WEAK_VENDOR_GDPR: &str = r#"{
  "vendor": "Quickshare Ltd",
  "overall": "fail",
  "frameworks": [{
    "framework": "gdpr", "status": "fail", "passed": 2, "failed": 4,
    "controls": [
      {"id": "Art. 28", "title": "Processing under a data processing agreement", "status": "pass",
       "reason": "a data processing agreement is offered"},
      {"id": "Art. 28(2)", "title": "Sub-processors are disclosed", "status": "fail",
       "reason": "sub-processors are not disclosed"},
      {"id": "Art. 32", "title": "Security of processing (encryption, access control)", "status": "fail",
       "reason": "data is not encrypted at rest"},
      {"id": "Art. 33", "title": "Breach notified within 72 hours", "status": "fail",
       "reason": "breach notice within 96 h; required 72 h"},
      {"id": "Art. 17", "title": "Right to erasure is honoured", "status": "pass",
       "reason": "data is deleted on request"},
      {"id": "Art. 44", "title": "International transfers are safeguarded", "status": "fail",
       "reason": "transfers to US lack safeguards"}
    ]
  }]
}"#;

fn examples() -> Vec<(CheckInput, CheckOutput)> {
    let weak = VendorProfile {
        name: "Quickshare Ltd".into(),
        mfa_enforced: true,
        encryption_in_transit: true,
        breach_notification_hours: Some(96),
        dpa_offered: true,
        data_regions: vec!["EU".into(), "US".into()],
        deletion_on_request: true,
        ..VendorProfile::default()
    };
    let input = CheckInput {
        vendor: weak,
        frameworks: Some(vec![Framework::Gdpr]),
    };
    match mercato_sdk::serde_json::from_str(WEAK_VENDOR_GDPR) {
        Ok(output) => vec![(input, output)],
        // A typo above shows up as a missing example at attestation.
        Err(_) => Vec::new(),
    }
}

struct VendorCompliance;

impl Agent for VendorCompliance {
    const NAME: &'static str = "vendor-compliance";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    fn capabilities() -> Vec<Capability> {
        vec![
            Capability::new(
                "check-vendor",
                "Checks a vendor's security profile against SOC 2, ISO 27001, HIPAA and GDPR \
                 controls and reports pass or fail per control with the reason, for vendor \
                 due diligence and third-party risk reviews.",
                check,
            )
            .category("compliance")
            .tags(&[
                "vendor risk",
                "soc2",
                "iso27001",
                "hipaa",
                "gdpr",
                "due diligence",
                "audit",
            ])
            .examples(examples),
        ]
    }
}

/// Terms are negotiated by code, not only by the manifest's ranges: audit
/// evidence is normally kept 30 days; a consumer who wants it kept for less
/// pays for the re-checks that saves, and contracts run at most a week.
impl Negotiator for VendorCompliance {
    fn negotiate(_capability: &str, proposal: Proposal) -> Decision {
        const BASE_CAP: u64 = 30_000;
        const SHORT_RETENTION_CAP: u64 = 40_000;
        const WEEK_MS: u64 = 7 * 86_400_000;
        let short_retention = proposal.retention.is_some_and(|r| r < Retention::Month);
        let floor = if short_retention {
            SHORT_RETENTION_CAP
        } else {
            BASE_CAP
        };
        let mut counter = proposal.clone();
        let mut reasons = Vec::new();
        if proposal.max_price_micros < floor {
            counter.max_price_micros = floor;
            reasons.push(if short_retention {
                format!(
                    "max_price_micros: keeping evidence less than 30 days costs at least {floor}"
                )
            } else {
                format!("max_price_micros: a full check costs at least {floor}")
            });
        }
        if proposal.validity_ms > WEEK_MS {
            counter.validity_ms = WEEK_MS;
            reasons.push("validity_ms: controls change; contracts run at most a week".into());
        }
        if short_retention {
            // The manifest says 30d; the negotiator can do better for a price.
            counter.retention = proposal.retention;
        }
        if reasons.is_empty() {
            Decision::Accept
        } else {
            Decision::Counter {
                terms: counter,
                reasons,
            }
        }
    }
}

mercato_sdk::export_negotiating_agent!(VendorCompliance);
