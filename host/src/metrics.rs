//! Prometheus metrics: invocations by outcome, fuel, latency, compilations.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Labels of `mercato_invocations_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `ok` or the error code.
    pub outcome: String,
}

/// Every metric the host exports.
pub struct Metrics {
    registry: Registry,
    /// Invocations by outcome.
    pub invocations: Family<OutcomeLabels, Counter>,
    /// Fuel used per call.
    pub fuel: Histogram,
    /// Wall time per call, seconds.
    pub duration: Histogram,
    /// Components compiled by cranelift (not loaded from the artifact cache).
    pub compilations: Counter,
    /// Components loaded from the artifact cache.
    pub artifact_loads: Counter,
    /// Store flushes (fdatasync) so far.
    pub store_syncs: Gauge<u64, AtomicU64>,
    /// MCP `tools/call` requests answered by the fast path (the rest go
    /// through rmcp).
    pub mcp_fast_calls: Counter,
    /// Webhook deliveries refused because their target resolved to a
    /// loopback, private, link-local or multicast address.
    pub webhooks_refused: Counter,
    /// Needs embedded by a slow embedder (the model) for discovery.
    pub needs_embedded: Counter,
    /// Needs whose vector was kept from an earlier discovery.
    pub need_vectors_kept: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mercato");
        let invocations = Family::<OutcomeLabels, Counter>::default();
        let fuel = Histogram::new(exponential_buckets(1_000.0, 10.0, 8));
        let duration = Histogram::new(exponential_buckets(0.000_05, 2.0, 18));
        let compilations = Counter::default();
        let artifact_loads = Counter::default();
        let store_syncs = Gauge::<u64, AtomicU64>::default();
        let mcp_fast_calls = Counter::default();
        let webhooks_refused = Counter::default();
        let needs_embedded = Counter::default();
        let need_vectors_kept = Counter::default();
        registry.register(
            "invocations",
            "Capability invocations by outcome",
            invocations.clone(),
        );
        registry.register("invocation_fuel", "Fuel used per invocation", fuel.clone());
        registry.register(
            "invocation_duration_seconds",
            "Wall time per invocation",
            duration.clone(),
        );
        registry.register(
            "component_compilations",
            "Components compiled with cranelift",
            compilations.clone(),
        );
        registry.register(
            "artifact_loads",
            "Components loaded from the artifact cache",
            artifact_loads.clone(),
        );
        registry.register("store_syncs", "Store flushes to disk", store_syncs.clone());
        registry.register(
            "mcp_fast_calls",
            "MCP tools/call requests answered without rmcp's per-request service",
            mcp_fast_calls.clone(),
        );
        registry.register(
            "webhooks_refused",
            "Webhook deliveries refused for a non-public target",
            webhooks_refused.clone(),
        );
        registry.register(
            "discovery_needs_embedded",
            "Needs embedded by the sentence-embedding model for discovery",
            needs_embedded.clone(),
        );
        registry.register(
            "discovery_need_vectors_kept",
            "Needs whose vector was kept from an earlier discovery",
            need_vectors_kept.clone(),
        );
        Metrics {
            registry,
            invocations,
            fuel,
            duration,
            compilations,
            artifact_loads,
            store_syncs,
            mcp_fast_calls,
            webhooks_refused,
            needs_embedded,
            need_vectors_kept,
        }
    }
}

impl Metrics {
    /// Counts one invocation.
    pub fn invocation(&self, outcome: &str, fuel: u64, seconds: f64) {
        self.invocations
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
        self.fuel.observe(fuel as f64);
        self.duration.observe(seconds);
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
