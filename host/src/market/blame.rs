//! Who a call's end is owed to, which decides whether the consumer pays.
//!
//! The rule, as the README states it:
//! - The consumer pays (price plus the fuel burned) for what it asked for: a
//!   valid output, running out of the fuel its own cap bought, and running
//!   out of time while the guest computed for it, waited on the consumer's
//!   own unread stream, or queued behind the consumer's own flood of calls.
//! - The provider's faults are not charged: traps, memory, invalid output,
//!   refusals, and a deadline spent parked in a host call (a guest that
//!   sleeps or waits on nothing the consumer controls).
//! - The host's are not charged either and do not count against the
//!   provider: a deadline spent mostly waiting for a worker while the host
//!   ran other tenants' calls ends as `overloaded`, to be retried.

use crate::sandbox::{CallOutput, Failure, Timing};
use std::time::Duration;

/// Who a call's end is owed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The consumer got what it asked for (or its own limits ended the call).
    Consumer,
    /// The provider's component did not deliver.
    Provider,
    /// The host was too busy with other tenants' calls.
    Host,
}

/// Who ended a call with this `result`. `own_calls` is how many calls the
/// consumer has in flight, `workers` how many threads run guests: beyond
/// that many, a call's time in the run queue is the consumer's own doing.
pub fn blame(
    result: &Result<CallOutput, Failure>,
    timing: Timing,
    duration: Duration,
    own_calls: usize,
    workers: usize,
) -> Blame {
    match result {
        Ok(CallOutput::Output(_)) | Err(Failure::FuelExhausted { .. }) => Blame::Consumer,
        Err(Failure::DeadlineExceeded { .. }) => deadline(timing, duration, own_calls, workers),
        Err(Failure::Overloaded) => Blame::Host,
        _ => Blame::Provider,
    }
}

/// A deadline is the consumer's when at least half the call's time went to
/// it; otherwise the host's when the run queue took more of it than the
/// guest's own waiting did, else the provider's.
fn deadline(timing: Timing, duration: Duration, own_calls: usize, workers: usize) -> Blame {
    let own_flood = own_calls > workers.max(1);
    let (consumer_queued, host_queued) = if own_flood {
        (timing.queued, Duration::ZERO)
    } else {
        (Duration::ZERO, timing.queued)
    };
    let consumer = timing.running + timing.consumer_wait + consumer_queued;
    let parked = duration.saturating_sub(timing.running + timing.queued + timing.consumer_wait);
    if consumer * 2 >= duration {
        Blame::Consumer
    } else if host_queued >= parked {
        Blame::Host
    } else {
        Blame::Provider
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINE: Failure = Failure::DeadlineExceeded { deadline_ms: 1_000 };

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn timing(running: u64, queued: u64, consumer_wait: u64) -> Timing {
        Timing {
            running: ms(running),
            queued: ms(queued),
            consumer_wait: ms(consumer_wait),
        }
    }

    #[test]
    fn a_guest_that_computed_until_the_deadline_is_the_consumers_to_pay() {
        let spun = blame(&Err(DEADLINE), timing(950, 50, 0), ms(1_000), 1, 2);
        assert_eq!(spun, Blame::Consumer);
        // Held by the consumer's own unread stream.
        let unread = blame(&Err(DEADLINE), timing(10, 0, 980), ms(1_000), 1, 2);
        assert_eq!(unread, Blame::Consumer);
    }

    #[test]
    fn queueing_is_the_hosts_fault_unless_the_consumer_floods_it_itself() {
        let starved = timing(100, 880, 0);
        assert_eq!(blame(&Err(DEADLINE), starved, ms(1_000), 1, 2), Blame::Host);
        assert_eq!(blame(&Err(DEADLINE), starved, ms(1_000), 2, 2), Blame::Host);
        assert_eq!(
            blame(&Err(DEADLINE), starved, ms(1_000), 16, 2),
            Blame::Consumer
        );
    }

    #[test]
    fn a_guest_parked_in_a_host_call_is_the_providers_fault() {
        let slept = blame(&Err(DEADLINE), timing(5, 5, 0), ms(1_000), 1, 2);
        assert_eq!(slept, Blame::Provider);
        // Even in a busy host, when sleeping took more of the time.
        let slept = blame(&Err(DEADLINE), timing(5, 300, 0), ms(1_000), 1, 2);
        assert_eq!(slept, Blame::Provider);
    }

    #[test]
    fn other_ends_follow_the_rule() {
        let t = Timing::default();
        let ok = Ok(CallOutput::Output("{}".into()));
        assert_eq!(blame(&ok, t, ms(1), 1, 2), Blame::Consumer);
        let fuel = Err(Failure::FuelExhausted { fuel: 1 });
        assert_eq!(blame(&fuel, t, ms(1), 1, 2), Blame::Consumer);
        let trap = Err(Failure::Trapped {
            trap: "unreachable".into(),
        });
        assert_eq!(blame(&trap, t, ms(1), 1, 2), Blame::Provider);
        assert_eq!(
            blame(&Err(Failure::Overloaded), t, ms(1), 1, 2),
            Blame::Host
        );
    }
}
