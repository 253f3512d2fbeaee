//! Negotiation: evaluating a consumer's proposed terms against a provider's
//! policy, pure (no I/O, no clock).
//!
//! Owns: the shape of a proposal and of agreed terms, and the answer to a
//! proposal under the provider's [`Policy`] (acceptable ranges, declared in
//! the manifest, so owned by the registry): accept, counter
//! (counter-terms and one reason per violated term) or reject (a term the
//! provider cannot meet at all).
//!
//! Does not know about: storage, rounds, expiry or signatures (the market
//! keeps negotiations and signs contracts).

use crate::pricing;
use crate::registry::{Policy, Retention, Terms};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest contract a policy allows when it says nothing: 30 days.
pub const VALIDITY_MS_DEFAULT: u64 = 30 * 86_400_000;

/// Terms a consumer proposes. Absent fields take the listed terms.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Proposal {
    /// The most one call may cost (cost plus fee), micros.
    #[schema(maximum = 9_007_199_254_740_991_f64)]
    pub max_price_micros: u64,
    /// Latency the provider must meet, ms (1 to an hour).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 3600000)]
    pub latency_ms_max: Option<u64>,
    /// Availability the provider must promise.
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub uptime_min: Option<f64>,
    /// The most retention the consumer accepts.
    #[serde(default)]
    pub retention: Option<Retention>,
    /// Whether data must be encrypted.
    #[serde(default)]
    pub encryption: Option<bool>,
    /// A jurisdiction data must be processed in.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 16)]
    pub jurisdiction: Option<String>,
    /// Calls per minute the consumer needs (0: unlimited).
    #[serde(default)]
    #[schema(maximum = 1000000)]
    pub rate_limit_per_minute: Option<u32>,
    /// How long the contract should hold, ms.
    #[schema(minimum = 1, maximum = 31_622_400_000_f64)]
    pub validity_ms: u64,
}

/// Fully specified terms both sides agreed to.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, ToSchema)]
pub struct Agreed {
    /// The most one call may cost (cost plus fee), micros.
    pub max_price_micros: u64,
    /// Latency SLA, ms: a call slower than this is not charged.
    pub latency_ms_max: u64,
    /// Promised availability.
    pub uptime: f64,
    /// Retention of inputs and outputs (`none`: only their hashes are kept).
    pub retention: Retention,
    /// Whether data is encrypted.
    pub encryption: bool,
    /// Where data is processed (the consumer's requirement, if any).
    pub jurisdiction: Option<String>,
    /// Calls per minute under this contract (0: unlimited).
    pub rate_limit_per_minute: u32,
    /// How long the contract holds, ms.
    pub validity_ms: u64,
}

/// The provider's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The proposal as agreed terms.
    Accept(Agreed),
    /// Terms the provider would accept, with one reason per changed term.
    Counter(Proposal, Vec<String>),
    /// Terms it can never meet.
    Reject(Vec<String>),
}

/// Checks a proposal's own sanity; `Err` says what is wrong.
pub fn check(proposal: &Proposal) -> Result<(), String> {
    if proposal
        .uptime_min
        .is_some_and(|u| !(0.0..=1.0).contains(&u))
    {
        return Err("uptime_min is between 0 and 1".into());
    }
    if proposal.validity_ms == 0 || proposal.validity_ms > 366 * 86_400_000 {
        return Err("validity_ms is 1 ms to a year".into());
    }
    if proposal
        .latency_ms_max
        .is_some_and(|l| l == 0 || l > crate::registry::LATENCY_MS_MAX)
    {
        return Err(format!(
            "latency_ms_max is 1 to {} ms",
            crate::registry::LATENCY_MS_MAX
        ));
    }
    if proposal.max_price_micros > pricing::MICROS_MAX {
        return Err(format!(
            "max_price_micros is at most {}",
            pricing::MICROS_MAX
        ));
    }
    if proposal
        .rate_limit_per_minute
        .is_some_and(|r| r > 1_000_000)
    {
        return Err("rate_limit_per_minute is at most 1000000".into());
    }
    if proposal
        .jurisdiction
        .as_ref()
        .is_some_and(|j| j.is_empty() || crate::text::chars(j) > 16)
    {
        return Err("jurisdiction is 1 to 16 characters".into());
    }
    Ok(())
}

/// What a component's `negotiate` answered.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Sign the proposal.
    Accept,
    /// Counter-terms.
    Counter {
        /// The terms.
        terms: Proposal,
        /// One reason per changed term.
        #[serde(default)]
        reasons: Vec<String>,
    },
    /// Refuse.
    Reject {
        /// Why.
        #[serde(default)]
        reasons: Vec<String>,
    },
    /// Evaluate the manifest's policy instead.
    Policy,
}

/// Terms no negotiator may agree to: data handling the listed terms do not
/// offer. `Some` is the rejection to answer instead of asking anyone.
pub fn hard_limits(terms: &Terms, fee_bps: u64, p: &Proposal) -> Option<Answer> {
    match evaluate(terms, &Policy::default(), fee_bps, p) {
        Answer::Reject(reasons) => Some(Answer::Reject(reasons)),
        _ => None,
    }
}

/// The answer from a component's decision (after [`hard_limits`] passed).
pub fn from_decision(
    terms: &Terms,
    policy: &Policy,
    fee_bps: u64,
    p: &Proposal,
    decision: Decision,
) -> Answer {
    match decision {
        Decision::Policy => evaluate(terms, policy, fee_bps, p),
        // The provider's own code may agree to what its ranges would not
        // (shorter retention, a higher rate): it is the provider speaking.
        Decision::Accept => {
            // No call could run under a cap below the base price and fee.
            let floor = pricing::charged_micros(terms.price_micros, fee_bps);
            if p.max_price_micros < floor {
                let mut counter = p.clone();
                counter.max_price_micros = floor;
                return Answer::Counter(
                    counter,
                    vec![format!(
                        "max_price_micros: at least {floor} (base price and fee)"
                    )],
                );
            }
            Answer::Accept(fill(terms, &Policy::default(), &as_proposed(terms, p)))
        }
        Decision::Counter {
            terms: counter,
            reasons,
        } => match check(&counter) {
            Ok(()) if counter != *p => Answer::Counter(
                counter,
                if reasons.is_empty() {
                    vec!["the provider proposes other terms".into()]
                } else {
                    reasons
                },
            ),
            Ok(()) => Answer::Accept(fill(terms, &Policy::default(), &as_proposed(terms, p))),
            Err(why) => Answer::Reject(vec![format!("the provider's counter is invalid: {why}")]),
        },
        Decision::Reject { reasons } => Answer::Reject(if reasons.is_empty() {
            vec!["the provider declined".into()]
        } else {
            reasons
        }),
    }
}

/// A proposal with its retention and rate made explicit (the listed ones
/// when absent), so [`fill`] keeps them as proposed.
fn as_proposed(terms: &Terms, p: &Proposal) -> Proposal {
    Proposal {
        retention: Some(p.retention.unwrap_or(terms.data_policy.retention)),
        rate_limit_per_minute: Some(
            p.rate_limit_per_minute
                .unwrap_or(terms.rate_limit_per_minute),
        ),
        ..p.clone()
    }
}

/// A proposal as agreed terms: absent fields take the listed terms.
fn fill(terms: &Terms, policy: &Policy, p: &Proposal) -> Agreed {
    let rate_ceiling = policy
        .rate_limit_per_minute_max
        .unwrap_or(terms.rate_limit_per_minute);
    Agreed {
        max_price_micros: p.max_price_micros,
        latency_ms_max: p.latency_ms_max.unwrap_or(terms.latency_ms_max),
        uptime: p.uptime_min.unwrap_or(terms.uptime).max(0.0),
        // `evaluate` countered any retention below the policy's floor.
        retention: p.retention.unwrap_or(terms.data_policy.retention),
        encryption: terms.data_policy.encryption,
        jurisdiction: p.jurisdiction.clone(),
        rate_limit_per_minute: p.rate_limit_per_minute.unwrap_or(rate_ceiling),
        validity_ms: p.validity_ms,
    }
}

/// Evaluates a proposal against listed terms, a policy and the fee.
pub fn evaluate(terms: &Terms, policy: &Policy, fee_bps: u64, p: &Proposal) -> Answer {
    let mut rejected = Vec::new();
    if p.encryption == Some(true) && !terms.data_policy.encryption {
        rejected.push("encryption: the provider does not encrypt data".to_string());
    }
    if let Some(j) = &p.jurisdiction
        && !terms
            .data_policy
            .jurisdictions
            .iter()
            .any(|x| x.eq_ignore_ascii_case(j))
    {
        rejected.push(format!(
            "jurisdiction: data is processed in {} only",
            terms.data_policy.jurisdictions.join(", ")
        ));
    }
    if !rejected.is_empty() {
        return Answer::Reject(rejected);
    }

    let mut counter = p.clone();
    let mut reasons = Vec::new();
    let price_floor = policy
        .price_cap_micros_min
        .unwrap_or(0)
        .max(pricing::charged_micros(terms.price_micros, fee_bps));
    if p.max_price_micros < price_floor {
        counter.max_price_micros = price_floor;
        reasons.push(format!(
            "max_price_micros: at least {price_floor} (base price and fee, or the provider's floor)"
        ));
    }
    let latency_floor = policy.latency_ms_min.unwrap_or(terms.latency_ms_max);
    if let Some(l) = p.latency_ms_max.filter(|l| *l < latency_floor) {
        counter.latency_ms_max = Some(latency_floor);
        reasons.push(format!(
            "latency_ms_max: {l} is faster than the {latency_floor} ms it promises"
        ));
    }
    let uptime_ceiling = policy.uptime_max.unwrap_or(terms.uptime);
    if let Some(u) = p.uptime_min.filter(|u| *u > uptime_ceiling) {
        counter.uptime_min = Some(uptime_ceiling);
        reasons.push(format!(
            "uptime_min: {u} is above the {uptime_ceiling} it promises"
        ));
    }
    let retention_floor = policy.retention_min.unwrap_or(terms.data_policy.retention);
    if let Some(r) = p.retention.filter(|r| *r < retention_floor) {
        counter.retention = Some(retention_floor);
        reasons.push(format!(
            "retention: it keeps data at least {retention_floor:?}, not {r:?}"
        ));
    }
    let rate_ceiling = policy
        .rate_limit_per_minute_max
        .unwrap_or(terms.rate_limit_per_minute);
    if rate_ceiling > 0
        && let Some(r) = p
            .rate_limit_per_minute
            .filter(|r| *r == 0 || *r > rate_ceiling)
    {
        counter.rate_limit_per_minute = Some(rate_ceiling);
        reasons.push(format!(
            "rate_limit_per_minute: at most {rate_ceiling}, not {r}"
        ));
    }
    let validity_ceiling = policy.validity_ms_max.unwrap_or(VALIDITY_MS_DEFAULT);
    if p.validity_ms > validity_ceiling {
        counter.validity_ms = validity_ceiling;
        reasons.push(format!("validity_ms: at most {validity_ceiling}"));
    }
    if !reasons.is_empty() {
        return Answer::Counter(counter, reasons);
    }
    Answer::Accept(Agreed {
        max_price_micros: p.max_price_micros,
        latency_ms_max: p.latency_ms_max.unwrap_or(terms.latency_ms_max),
        uptime: p.uptime_min.unwrap_or(terms.uptime).max(0.0),
        retention: p
            .retention
            .map_or(terms.data_policy.retention, |r| r.max(retention_floor)),
        encryption: terms.data_policy.encryption,
        jurisdiction: p.jurisdiction.clone(),
        rate_limit_per_minute: p.rate_limit_per_minute.unwrap_or(rate_ceiling),
        validity_ms: p.validity_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::DataPolicy;

    fn terms() -> Terms {
        Terms {
            price_micros: 2_000,
            micros_per_mfuel: 100,
            latency_ms_max: 250,
            uptime: 0.999,
            rate_limit_per_minute: 600,
            data_policy: DataPolicy {
                retention: Retention::Day,
                encryption: true,
                jurisdictions: vec!["EU".into(), "US".into()],
            },
            negotiation: None,
        }
    }

    fn proposal() -> Proposal {
        Proposal {
            max_price_micros: 5_000,
            latency_ms_max: None,
            uptime_min: None,
            retention: None,
            encryption: None,
            jurisdiction: None,
            rate_limit_per_minute: None,
            validity_ms: 86_400_000,
        }
    }

    #[test]
    fn listed_terms_are_accepted_and_filled_in() {
        let Answer::Accept(agreed) = evaluate(&terms(), &Policy::default(), 100, &proposal())
        else {
            panic!("accepted")
        };
        assert_eq!(
            (
                agreed.latency_ms_max,
                agreed.retention,
                agreed.rate_limit_per_minute
            ),
            (250, Retention::Day, 600)
        );
    }

    #[test]
    fn each_violated_term_is_countered_with_its_reason() {
        let p = Proposal {
            max_price_micros: 10,
            latency_ms_max: Some(50),
            uptime_min: Some(0.99999),
            retention: Some(Retention::None),
            rate_limit_per_minute: Some(10_000),
            validity_ms: 400 * 86_400_000 / 2,
            ..proposal()
        };
        let policy = Policy {
            latency_ms_min: Some(100),
            retention_min: Some(Retention::None),
            ..Policy::default()
        };
        let Answer::Counter(counter, reasons) = evaluate(&terms(), &policy, 100, &p) else {
            panic!("countered")
        };
        assert_eq!(counter.max_price_micros, 2_020);
        assert_eq!(counter.latency_ms_max, Some(100));
        assert_eq!(counter.uptime_min, Some(0.999));
        assert_eq!(
            counter.retention,
            Some(Retention::None),
            "the policy allows none"
        );
        assert_eq!(counter.rate_limit_per_minute, Some(600));
        assert_eq!(counter.validity_ms, VALIDITY_MS_DEFAULT);
        assert_eq!(reasons.len(), 5, "{reasons:?}");
        // The counter itself is acceptable.
        assert!(matches!(
            evaluate(&terms(), &policy, 100, &counter),
            Answer::Accept(_)
        ));
    }

    #[test]
    fn impossible_terms_are_rejected() {
        let p = Proposal {
            jurisdiction: Some("BR".into()),
            ..proposal()
        };
        let Answer::Reject(reasons) = evaluate(&terms(), &Policy::default(), 100, &p) else {
            panic!("rejected")
        };
        assert!(reasons[0].contains("EU, US"), "{reasons:?}");
    }
}
