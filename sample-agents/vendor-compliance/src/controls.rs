//! The control catalogue: each control is a reference, a requirement and a check.

use crate::VendorProfile;
use mercato_sdk::{Deserialize, JsonSchema, Serialize};

/// A compliance framework.
#[derive(Deserialize, Serialize, JsonSchema, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(crate = "mercato_sdk::serde", rename_all = "lowercase")]
#[schemars(crate = "mercato_sdk::schemars")]
pub enum Framework {
    /// AICPA SOC 2 (Trust Services Criteria).
    Soc2,
    /// ISO/IEC 27001:2022 Annex A.
    Iso27001,
    /// US HIPAA Security and Breach Notification Rules.
    Hipaa,
    /// EU General Data Protection Regulation.
    Gdpr,
}

impl Framework {
    pub const ALL: [Framework; 4] = [
        Framework::Soc2,
        Framework::Iso27001,
        Framework::Hipaa,
        Framework::Gdpr,
    ];
}

pub struct Control {
    pub framework: Framework,
    pub id: &'static str,
    pub title: &'static str,
    pub check: fn(&VendorProfile) -> (bool, String),
}

fn flag(ok: bool, yes: &str, no: &str) -> (bool, String) {
    (ok, if ok { yes } else { no }.to_string())
}

fn certified(v: &VendorProfile, cert: &str) -> bool {
    v.certifications
        .iter()
        .any(|c| c.eq_ignore_ascii_case(cert))
}

fn mfa(v: &VendorProfile) -> (bool, String) {
    flag(
        v.mfa_enforced,
        "MFA is enforced for all staff",
        "MFA is not enforced",
    )
}

fn encryption(v: &VendorProfile) -> (bool, String) {
    match (v.encryption_at_rest, v.encryption_in_transit) {
        (true, true) => (true, "data is encrypted at rest and in transit".into()),
        (false, true) => (false, "data is not encrypted at rest".into()),
        (true, false) => (false, "data is not encrypted in transit".into()),
        (false, false) => (
            false,
            "data is encrypted neither at rest nor in transit".into(),
        ),
    }
}

fn access_reviews(v: &VendorProfile) -> (bool, String) {
    let n = v.access_reviews_per_year;
    (
        n >= 1,
        format!("{n} access review(s) a year; at least 1 required"),
    )
}

fn incident(v: &VendorProfile) -> (bool, String) {
    flag(
        v.incident_response_plan,
        "an incident response plan exists",
        "no incident response plan",
    )
}

fn logging(v: &VendorProfile) -> (bool, String) {
    flag(
        v.audit_logging,
        "audit logging is in place",
        "no audit logging",
    )
}

fn pen_test(v: &VendorProfile) -> (bool, String) {
    match v.pen_test_months_ago {
        Some(m) if m <= 12 => (true, format!("last penetration test {m} month(s) ago")),
        Some(m) => (
            false,
            format!("last penetration test {m} months ago; must be within 12"),
        ),
        None => (false, "never penetration tested".into()),
    }
}

fn backups(v: &VendorProfile) -> (bool, String) {
    flag(
        v.backups_tested,
        "backup restores are tested",
        "backup restores are not tested",
    )
}

fn breach_within(v: &VendorProfile, hours: u32) -> (bool, String) {
    match v.breach_notification_hours {
        Some(h) if h <= hours => (
            true,
            format!("breach notice within {h} h (required {hours} h)"),
        ),
        Some(h) => (
            false,
            format!("breach notice within {h} h; required {hours} h"),
        ),
        None => (false, "no breach notification commitment".into()),
    }
}

fn soc2_report(v: &VendorProfile) -> (bool, String) {
    flag(
        certified(v, "soc2-type2"),
        "holds a SOC 2 Type II report",
        "no SOC 2 Type II report",
    )
}

fn iso_cert(v: &VendorProfile) -> (bool, String) {
    flag(
        certified(v, "iso27001"),
        "ISO 27001 certified",
        "not ISO 27001 certified",
    )
}

fn baa(v: &VendorProfile) -> (bool, String) {
    flag(
        v.baa_offered,
        "a business associate agreement is offered",
        "no business associate agreement",
    )
}

fn dpa(v: &VendorProfile) -> (bool, String) {
    flag(
        v.dpa_offered,
        "a data processing agreement is offered",
        "no data processing agreement",
    )
}

fn subprocessors(v: &VendorProfile) -> (bool, String) {
    flag(
        v.subprocessors_disclosed,
        "sub-processors are disclosed",
        "sub-processors are not disclosed",
    )
}

fn transfers(v: &VendorProfile) -> (bool, String) {
    let outside_eu: Vec<&str> = v
        .data_regions
        .iter()
        .map(String::as_str)
        .filter(|r| !["EU", "EEA"].contains(&r.to_ascii_uppercase().as_str()))
        .collect();
    if outside_eu.is_empty() {
        (true, "data stays in the EU/EEA".into())
    } else if v.transfer_safeguards {
        (
            true,
            format!(
                "transfers to {} are covered by safeguards",
                outside_eu.join(", ")
            ),
        )
    } else {
        (
            false,
            format!("transfers to {} lack safeguards", outside_eu.join(", ")),
        )
    }
}

fn erasure(v: &VendorProfile) -> (bool, String) {
    flag(
        v.deletion_on_request,
        "data is deleted on request",
        "no deletion on request",
    )
}

const fn c(
    framework: Framework,
    id: &'static str,
    title: &'static str,
    check: fn(&VendorProfile) -> (bool, String),
) -> Control {
    Control {
        framework,
        id,
        title,
        check,
    }
}

use Framework::{Gdpr, Hipaa, Iso27001, Soc2};

pub const CONTROLS: &[Control] = &[
    c(
        Soc2,
        "SOC2-report",
        "Independent SOC 2 Type II attestation",
        soc2_report,
    ),
    c(
        Soc2,
        "CC6.1",
        "Logical access is protected (multi-factor authentication)",
        mfa,
    ),
    c(
        Soc2,
        "CC6.2",
        "Access is reviewed periodically",
        access_reviews,
    ),
    c(
        Soc2,
        "CC6.7",
        "Data is protected in transmission and storage",
        encryption,
    ),
    c(
        Soc2,
        "CC7.2",
        "Security events are monitored and logged",
        logging,
    ),
    c(
        Soc2,
        "CC7.4",
        "Incidents are responded to under a plan",
        incident,
    ),
    c(
        Soc2,
        "A1.2",
        "Recovery is supported by tested backups",
        backups,
    ),
    c(
        Iso27001,
        "ISO-cert",
        "Accredited ISO/IEC 27001 certification",
        iso_cert,
    ),
    c(
        Iso27001,
        "A.5.18",
        "Access rights are reviewed",
        access_reviews,
    ),
    c(
        Iso27001,
        "A.5.24",
        "Incident management is planned",
        incident,
    ),
    c(Iso27001, "A.8.5", "Secure authentication", mfa),
    c(Iso27001, "A.8.13", "Information backup is tested", backups),
    c(Iso27001, "A.8.15", "Logging", logging),
    c(Iso27001, "A.8.24", "Use of cryptography", encryption),
    c(
        Iso27001,
        "A.8.8",
        "Technical vulnerabilities are tested (penetration test within 12 months)",
        pen_test,
    ),
    c(Hipaa, "164.308(b)", "Business associate agreement", baa),
    c(
        Hipaa,
        "164.312(a)",
        "Access control with unique, strong authentication",
        mfa,
    ),
    c(Hipaa, "164.312(b)", "Audit controls", logging),
    c(
        Hipaa,
        "164.312(e)",
        "Transmission and storage security",
        encryption,
    ),
    c(
        Hipaa,
        "164.308(a)(6)",
        "Security incident procedures",
        incident,
    ),
    c(
        Hipaa,
        "164.410",
        "Breach notification without unreasonable delay (60 days)",
        |v| breach_within(v, 24 * 60),
    ),
    c(
        Gdpr,
        "Art. 28",
        "Processing under a data processing agreement",
        dpa,
    ),
    c(
        Gdpr,
        "Art. 28(2)",
        "Sub-processors are disclosed",
        subprocessors,
    ),
    c(
        Gdpr,
        "Art. 32",
        "Security of processing (encryption, access control)",
        |v| {
            let (enc, why) = encryption(v);
            if !enc {
                return (false, why);
            }
            mfa(v)
        },
    ),
    c(Gdpr, "Art. 33", "Breach notified within 72 hours", |v| {
        breach_within(v, 72)
    }),
    c(Gdpr, "Art. 17", "Right to erasure is honoured", erasure),
    c(
        Gdpr,
        "Art. 44",
        "International transfers are safeguarded",
        transfers,
    ),
];
