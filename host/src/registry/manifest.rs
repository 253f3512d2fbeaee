//! The upload manifest (TOML): commercial terms per capability.
//!
//! ```toml
//! [capabilities.redact]
//! price_micros = 2000          # base price per call
//! micros_per_mfuel = 100       # per million fuel
//! latency_ms_max = 250
//! uptime = 0.999
//! rate_limit_per_minute = 600  # 0: no limit
//! data_policy = { retention = "none", encryption = true, jurisdictions = ["EU"] }
//! ```

use super::Error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The slowest latency anything may promise or ask for: an hour, in ms.
pub const LATENCY_MS_MAX: u64 = 3_600_000;

/// Largest manifest accepted, in bytes.
pub const MANIFEST_BYTES_MAX: usize = 64 * 1024;
/// Highest base price or rate accepted: a million currency units. Keeps every
/// cost computation far from `u64` overflow.
pub const PRICE_MICROS_MAX: u64 = 1_000_000_000_000;

/// The whole manifest.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Terms by capability name.
    pub capabilities: BTreeMap<String, Terms>,
}

/// How long a provider keeps a call's input and output, ordered from least
/// to most (discovery filters on "at most").
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, ToSchema)]
pub enum Retention {
    /// Never stored.
    #[serde(rename = "none")]
    None,
    /// Up to 24 hours.
    #[serde(rename = "24h")]
    Day,
    /// Up to 30 days.
    #[serde(rename = "30d")]
    Month,
}

/// What happens to a caller's data.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DataPolicy {
    /// How long data is kept.
    pub retention: Retention,
    /// Whether data is encrypted at rest and in transit.
    pub encryption: bool,
    /// Jurisdictions where data is processed (for example `EU`, `US`).
    pub jurisdictions: Vec<String>,
}

/// The commercial terms of one capability.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Terms {
    /// Base price per call, in micros.
    pub price_micros: u64,
    /// Price per million fuel, in micros.
    pub micros_per_mfuel: u64,
    /// Latency the provider promises, in milliseconds.
    pub latency_ms_max: u64,
    /// Availability the provider promises, as a fraction (0 to 1).
    pub uptime: f64,
    /// Calls per minute per consumer; 0 means no limit.
    #[serde(default)]
    pub rate_limit_per_minute: u32,
    /// Data handling.
    pub data_policy: DataPolicy,
    /// What the provider will agree to in a negotiation (the listed terms
    /// when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negotiation: Option<Policy>,
}

impl Manifest {
    /// Parses and checks a manifest.
    pub fn parse(text: &str) -> Result<Manifest, Error> {
        if text.len() > MANIFEST_BYTES_MAX {
            return Err(Error::InvalidManifest(format!(
                "larger than {MANIFEST_BYTES_MAX} bytes"
            )));
        }
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| Error::InvalidManifest(e.message().to_string()))?;
        if manifest.capabilities.is_empty() {
            return Err(Error::InvalidManifest(
                "no [capabilities.<name>] table".into(),
            ));
        }
        for (name, terms) in &manifest.capabilities {
            terms
                .check()
                .map_err(|why| Error::InvalidManifest(format!("capabilities.{name}: {why}")))?;
        }
        Ok(manifest)
    }
}

impl Terms {
    fn check(&self) -> Result<(), String> {
        if self.price_micros > PRICE_MICROS_MAX || self.micros_per_mfuel > PRICE_MICROS_MAX {
            return Err(format!("prices are limited to {PRICE_MICROS_MAX} micros"));
        }
        if !(0.0..=1.0).contains(&self.uptime) {
            return Err("uptime must be between 0 and 1".into());
        }
        if self.latency_ms_max == 0 || self.latency_ms_max > LATENCY_MS_MAX {
            return Err(format!(
                "latency_ms_max must be between 1 and {LATENCY_MS_MAX}"
            ));
        }
        if let Some(n) = &self.negotiation {
            if n.uptime_max.is_some_and(|u| !(0.0..=1.0).contains(&u)) {
                return Err("negotiation.uptime_max must be between 0 and 1".into());
            }
            if n.latency_ms_min
                .is_some_and(|l| l == 0 || l > self.latency_ms_max)
            {
                return Err("negotiation.latency_ms_min must be 1 to latency_ms_max".into());
            }
            if n.price_cap_micros_min.is_some_and(|p| p > PRICE_MICROS_MAX) {
                return Err(format!("prices are limited to {PRICE_MICROS_MAX} micros"));
            }
            if n.validity_ms_max
                .is_some_and(|v| v == 0 || v > 366 * 86_400_000)
            {
                return Err("negotiation.validity_ms_max is 1 ms to a year".into());
            }
        }
        let j = &self.data_policy.jurisdictions;
        if j.len() > 64 || j.iter().any(|j| j.is_empty() || j.len() > 16) {
            return Err("data_policy.jurisdictions: at most 64 codes of 1 to 16 characters".into());
        }
        Ok(())
    }
}

/// What a provider will agree to, beyond its listed terms (manifest
/// `[capabilities.<name>.negotiation]`). Every field defaults to the listed
/// terms: a provider without a policy accepts exactly what it lists.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The fastest latency it will promise, ms.
    #[serde(default)]
    pub latency_ms_min: Option<u64>,
    /// The highest uptime it will promise.
    #[serde(default)]
    pub uptime_max: Option<f64>,
    /// The least retention it can work with.
    #[serde(default)]
    pub retention_min: Option<Retention>,
    /// The highest rate it grants one contract, per minute (0: unlimited).
    #[serde(default)]
    pub rate_limit_per_minute_max: Option<u32>,
    /// The lowest per-call price cap it accepts, micros.
    #[serde(default)]
    pub price_cap_micros_min: Option<u64>,
    /// The longest contract it signs, ms.
    #[serde(default)]
    pub validity_ms_max: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [capabilities.redact]
        price_micros = 2000
        micros_per_mfuel = 100
        latency_ms_max = 250
        uptime = 0.999
        data_policy = { retention = "24h", encryption = true, jurisdictions = ["EU"] }
    "#;

    #[test]
    fn parses_terms() {
        let m = Manifest::parse(GOOD).unwrap_or_else(|e| panic!("{e}"));
        let t = &m.capabilities["redact"];
        assert_eq!(
            (t.price_micros, t.micros_per_mfuel, t.rate_limit_per_minute),
            (2000, 100, 0)
        );
        assert_eq!(t.data_policy.retention, Retention::Day);
    }

    #[test]
    fn refuses_typos_bad_ranges_and_floats_for_money() {
        for bad in [
            GOOD.replace("price_micros", "price_micro"),
            GOOD.replace("0.999", "1.5"),
            GOOD.replace("2000", "20.5"),
            GOOD.replace("\"24h\"", "\"forever\""),
            String::new(),
        ] {
            assert!(
                matches!(Manifest::parse(&bad), Err(Error::InvalidManifest(_))),
                "{bad}"
            );
        }
    }
}
