//! Custom negotiation: implement [`Negotiator`] and export the agent with
//! [`export_negotiating_agent!`](crate::export_negotiating_agent). The host
//! then asks the component instead of evaluating the manifest's policy.

use serde::{Deserialize, Serialize};

/// How long a provider keeps a call's data.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(crate = "serde")]
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

/// Terms a consumer proposes (absent fields: the listed terms).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(crate = "serde")]
pub struct Proposal {
    /// The most one call may cost (cost plus fee), micros.
    pub max_price_micros: u64,
    /// Latency the provider must meet, ms.
    #[serde(default)]
    pub latency_ms_max: Option<u64>,
    /// Availability the provider must promise.
    #[serde(default)]
    pub uptime_min: Option<f64>,
    /// The most retention the consumer accepts.
    #[serde(default)]
    pub retention: Option<Retention>,
    /// Whether data must be encrypted.
    #[serde(default)]
    pub encryption: Option<bool>,
    /// A jurisdiction data must be processed in.
    #[serde(default)]
    pub jurisdiction: Option<String>,
    /// Calls per minute the consumer needs (0: unlimited).
    #[serde(default)]
    pub rate_limit_per_minute: Option<u32>,
    /// How long the contract should hold, ms.
    pub validity_ms: u64,
}

/// The provider's answer.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(crate = "serde", tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Sign the proposal as it is.
    Accept,
    /// Propose these terms instead, with one reason per changed term.
    Counter {
        /// The counter-terms.
        terms: Proposal,
        /// Why.
        reasons: Vec<String>,
    },
    /// Refuse.
    Reject {
        /// Why.
        reasons: Vec<String>,
    },
    /// Let the host evaluate the manifest's policy (what agents exported
    /// with `export_agent!` answer).
    Policy,
}

/// An agent that negotiates its own terms.
pub trait Negotiator {
    /// Answers `proposal` for `capability`. Runs sandboxed and fuel-capped;
    /// keep it quick and deterministic.
    fn negotiate(capability: &str, proposal: Proposal) -> Decision;
}

/// The answer of an agent without a negotiator of its own.
#[doc(hidden)]
pub fn defer_to_policy() -> String {
    r#"{"decision":"policy"}"#.to_string()
}

/// Glue for [`export_negotiating_agent!`](crate::export_negotiating_agent).
#[doc(hidden)]
pub fn negotiate<N: Negotiator>(capability: &str, proposal: &str) -> String {
    let decision = match serde_json::from_str::<Proposal>(proposal) {
        Ok(proposal) => N::negotiate(capability, proposal),
        Err(e) => Decision::Reject {
            reasons: vec![format!("the proposal does not decode: {e}")],
        },
    };
    serde_json::to_string(&decision)
        .unwrap_or_else(|_| r#"{"decision":"reject","reasons":[]}"#.into())
}
