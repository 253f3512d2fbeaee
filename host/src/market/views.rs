//! The shapes clients see (JSON), shared by the REST API, the CLI and docs.

use crate::pricing;
use crate::registry::{Example, Listed, ListedCapability, Terms};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Observed figures of a capability version (the last 1,024 calls).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct StatsView {
    /// Calls recorded.
    pub invocations: u64,
    /// Calls that returned a valid output.
    pub successes: u64,
    /// Calls answered within the promised latency.
    pub sla_met: u64,
    /// Calls disputed by their consumer.
    pub disputes: u64,
    /// Median fuel of successful calls.
    pub fuel_p50: Option<u64>,
    /// 95th percentile fuel of successful calls.
    pub fuel_p95: Option<u64>,
    /// Median wall time of successful calls, milliseconds.
    pub duration_ms_p50: Option<u64>,
    /// 95th percentile wall time of successful calls, milliseconds.
    pub duration_ms_p95: Option<u64>,
    /// Median wall time of successful calls, microseconds.
    #[serde(default)]
    pub duration_us_p50: Option<u64>,
    /// 95th percentile wall time of successful calls, microseconds.
    #[serde(default)]
    pub duration_us_p95: Option<u64>,
}

/// A listed capability with its terms, schemas, examples and statistics.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CapabilityView {
    /// The id to call: `agent.capability` (latest of the agent's lowest
    /// listed major) or `agent.capability@MAJOR` for later majors.
    pub id: String,
    /// Pinned id, `agent.capability@version`.
    pub pinned_id: String,
    /// Agent name.
    pub agent: String,
    /// Agent version.
    pub version: String,
    /// Capability name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Category.
    pub category: String,
    /// Keywords.
    pub tags: Vec<String>,
    /// The publishing organisation.
    pub provider_org_id: String,
    /// SHA-256 of the component, hex.
    pub component_sha256: String,
    /// Publication time, Unix milliseconds.
    pub published_at_ms: u64,
    /// Commercial terms.
    pub terms: Terms,
    /// Input JSON Schema.
    #[schema(value_type = Object)]
    pub input_schema: serde_json::Value,
    /// Output JSON Schema.
    #[schema(value_type = Object)]
    pub output_schema: serde_json::Value,
    /// Worked examples.
    pub examples: Vec<Example>,
    /// Observed figures.
    pub stats: StatsView,
    /// Attestation status.
    pub attestation: AttestationStatus,
    /// Rating and objective figures.
    pub reputation: ReputationView,
}

/// A capability's reputation: its consumers' time-decayed rating beside
/// objective figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct ReputationView {
    /// Time-decayed mean rating, 1 to 5 (none before the first rating).
    pub rating: Option<f64>,
    /// Ratings received.
    pub ratings: u64,
    /// Calls observed.
    pub calls: u64,
    /// Share of calls that returned a valid output.
    pub success_rate: Option<f64>,
    /// Share of calls answered within the promised latency.
    pub sla_adherence: Option<f64>,
    /// Share of calls disputed.
    pub dispute_rate: Option<f64>,
}

impl ReputationView {
    pub(super) fn new(score: crate::reputation::Score, stats: &StatsView) -> Self {
        let share = |n: u64| (stats.invocations > 0).then(|| n as f64 / stats.invocations as f64);
        ReputationView {
            rating: score.rating,
            ratings: score.ratings,
            calls: stats.invocations,
            success_rate: share(stats.successes),
            sla_adherence: share(stats.sla_met),
            dispute_rate: share(stats.disputes),
        }
    }
}

/// How a listed capability was attested.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct AttestationStatus {
    /// `passed`, or `not_attested` for versions listed before attestation existed.
    pub status: String,
    /// Median fuel over the attestation cases (none when no case applied:
    /// no worked example and no battery for its category).
    pub fuel_p50: Option<u64>,
    /// Where the signed report is.
    pub report: String,
}

impl CapabilityView {
    pub(super) fn new(
        listed: &Listed,
        c: &ListedCapability,
        id: String,
        stats: StatsView,
        score: crate::reputation::Score,
    ) -> Self {
        let r = &listed.record;
        let reputation = ReputationView::new(score, &stats);
        CapabilityView {
            id,
            pinned_id: c.pinned_id.clone(),
            agent: r.agent.clone(),
            version: r.version.clone(),
            name: c.record.name.clone(),
            description: c.record.description.clone(),
            category: c.record.category.clone(),
            tags: c.record.tags.clone(),
            provider_org_id: r.owner_org_id.clone(),
            component_sha256: r.component_sha256.clone(),
            published_at_ms: r.published_at_ms,
            terms: c.record.terms.clone(),
            input_schema: c.record.input_schema.clone(),
            output_schema: c.record.output_schema.clone(),
            examples: c.record.examples.clone(),
            stats,
            attestation: AttestationStatus {
                status: if r.attested { "passed" } else { "not_attested" }.into(),
                fuel_p50: c.record.attested_fuel_p50,
                report: format!("/v1/capabilities/{}/attestation", c.pinned_id),
            },
            reputation,
        }
    }
}

/// The expected cost of one call.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Quote {
    /// The pinned id quoted.
    pub capability_id: String,
    /// Base price per call.
    pub price_micros: u64,
    /// Price per million fuel.
    pub micros_per_mfuel: u64,
    /// Successful calls the figures rest on.
    pub observations: u64,
    /// Median fuel observed.
    pub fuel_p50: Option<u64>,
    /// 95th percentile fuel observed.
    pub fuel_p95: Option<u64>,
    /// Expected cost: at the median fuel observed, or measured by attestation
    /// before any observation, or the base price.
    pub expected_cost_micros: u64,
    /// Cost at the 95th percentile of fuel.
    pub cost_p95_micros: Option<u64>,
    /// The most a call can cost (at the host's fuel cap).
    pub max_cost_micros: u64,
    /// The marketplace fee, in basis points of the cost (charged on top).
    pub fee_bps: u64,
    /// A `max_price_micros` (which caps cost plus fee) that covers 95% of
    /// observed calls with a 2× margin on the metered part.
    pub suggested_max_price_micros: u64,
}

impl Quote {
    pub(super) fn new(view: &CapabilityView, fuel_per_call_max: u64, fee_bps: u64) -> Self {
        let (price, rate) = (view.terms.price_micros, view.terms.micros_per_mfuel);
        let cost = |fuel: u64| pricing::cost_micros(price, rate, fuel);
        let max_cost = pricing::max_cost_micros(price, rate, fuel_per_call_max);
        let suggested = view
            .stats
            .fuel_p95
            .map(|f| cost(f.saturating_mul(2).min(fuel_per_call_max)))
            .map(|c| pricing::charged_micros(c, fee_bps))
            .unwrap_or_else(|| pricing::charged_micros(max_cost, fee_bps));
        Quote {
            capability_id: view.pinned_id.clone(),
            price_micros: price,
            micros_per_mfuel: rate,
            observations: view.stats.successes,
            fuel_p50: view.stats.fuel_p50,
            fuel_p95: view.stats.fuel_p95,
            expected_cost_micros: view
                .stats
                .fuel_p50
                .or(view.attestation.fuel_p50)
                .map(cost)
                .unwrap_or(price),
            cost_p95_micros: view.stats.fuel_p95.map(cost),
            max_cost_micros: max_cost,
            fee_bps,
            suggested_max_price_micros: suggested,
        }
    }
}

/// A successful call.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct InvokeResult {
    /// The capability's output (valid against its output schema).
    #[schema(value_type = Object)]
    pub output: serde_json::Value,
    /// The settlement record of this call.
    pub transaction_id: String,
    /// The pinned id that ran.
    pub capability_id: String,
    /// Fuel the call used.
    pub fuel_used: u64,
    /// Fuel the call was given (what `max_price_micros` paid for, capped).
    pub fuel_limit: u64,
    /// The provider's price for the call: `price_micros + ceil(fuel_used * micros_per_mfuel / 1e6)`.
    pub cost_micros: u64,
    /// The marketplace fee: `ceil(cost × fee_bps / 10,000)`.
    pub fee_micros: u64,
    /// What the consumer paid: cost plus fee (held in escrow until the
    /// dispute window closes).
    pub charged_micros: u64,
    /// Wall time in the sandbox, whole milliseconds (rounded down).
    pub duration_ms: u64,
    /// Wall time in the sandbox, microseconds.
    #[serde(default)]
    pub duration_us: u64,
    /// The receipt, signed by the marketplace key.
    #[schema(value_type = Object)]
    pub receipt: super::SignedReceipt,
    /// The contract the call ran under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract_id: Option<String>,
    /// Slower than the contract's latency SLA: not charged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sla_missed: bool,
    /// The contract's retention, when there is one (`none`: the output is
    /// never written to disk, not even for an idempotent replay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<crate::registry::Retention>,
}

/// The result of an upload.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Published {
    /// Agent name.
    pub agent: String,
    /// Version published.
    pub version: String,
    /// SHA-256 of the component.
    pub component_sha256: String,
    /// False when this exact component was already published as this version.
    pub created: bool,
    /// The capabilities now listed.
    pub capabilities: Vec<CapabilityView>,
    /// The signed attestation report.
    #[schema(value_type = Object)]
    pub attestation: serde_json::Value,
}
