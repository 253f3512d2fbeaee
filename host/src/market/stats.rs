//! Per-capability-version statistics: bounded windows of fuel and latency.

use super::views::StatsView;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// Calls kept per capability version for percentiles.
const WINDOW: usize = 1_024;

#[derive(Default)]
struct Window {
    invocations: u64,
    successes: u64,
    sla_met: u64,
    disputes: u64,
    fuel: VecDeque<u64>,
    duration_us: VecDeque<u64>,
}

/// Statistics by pinned capability id.
#[derive(Default)]
pub struct Stats {
    windows: Mutex<HashMap<String, Window>>,
}

fn push(window: &mut VecDeque<u64>, value: u64) {
    if window.len() == WINDOW {
        window.pop_front();
    }
    window.push_back(value);
}

/// The `q`-quantile (0..=1) by nearest rank.
fn quantile(values: &VecDeque<u64>, q: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted: Vec<u64> = values.iter().copied().collect();
    sorted.sort_unstable();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

impl Stats {
    /// Records one call; returns the successes recorded so far.
    /// `sla_met`: it answered within the promised latency.
    pub fn record(
        &self,
        pinned_id: &str,
        success: bool,
        fuel: u64,
        duration_us: u64,
        sla_met: bool,
    ) -> u64 {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let w = windows.entry(pinned_id.to_string()).or_default();
        w.invocations += 1;
        w.sla_met += u64::from(sla_met);
        if success {
            w.successes += 1;
            push(&mut w.fuel, fuel);
            push(&mut w.duration_us, duration_us);
        }
        w.successes
    }

    /// Counts a dispute against a capability version.
    pub fn dispute(&self, pinned_id: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        windows.entry(pinned_id.to_string()).or_default().disputes += 1;
    }

    /// The figures for one capability version.
    pub fn view(&self, pinned_id: &str) -> StatsView {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let Some(w) = windows.get(pinned_id) else {
            return StatsView::default();
        };
        StatsView {
            invocations: w.invocations,
            successes: w.successes,
            sla_met: w.sla_met,
            disputes: w.disputes,
            fuel_p50: quantile(&w.fuel, 0.5),
            fuel_p95: quantile(&w.fuel, 0.95),
            duration_ms_p50: quantile(&w.duration_us, 0.5).map(|us| us / 1_000),
            duration_ms_p95: quantile(&w.duration_us, 0.95).map(|us| us / 1_000),
            duration_us_p50: quantile(&w.duration_us, 0.5),
            duration_us_p95: quantile(&w.duration_us, 0.95),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank_over_a_bounded_window() {
        let stats = Stats::default();
        for fuel in 1..=2_000u64 {
            stats.record("a.b@1.0.0", true, fuel, 1, true);
        }
        stats.record("a.b@1.0.0", false, 0, 0, false);
        let v = stats.view("a.b@1.0.0");
        assert_eq!((v.invocations, v.successes), (2_001, 2_000));
        // The window holds the last 1,024 calls: 977..=2000.
        assert_eq!(v.fuel_p50, Some(977 + 511));
        assert_eq!(v.fuel_p95, Some(977 + 972));
        assert_eq!(stats.view("x.y@1.0.0"), StatsView::default());
    }
}
