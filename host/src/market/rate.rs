//! Per-consumer rate limits from a capability's terms
//! (`rate_limit_per_minute`): a token bucket per (consumer, capability).
//!
//! Replicas sharing a store split each limit evenly among those alive: a
//! replica's bucket holds and refills `limit / replicas`. Spread evenly by a
//! load balancer, a consumer gets its whole limit and never more; sent to
//! one replica only, it gets that replica's share.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Buckets kept before idle ones are dropped.
const BUCKETS_MAX: usize = 100_000;
/// A bucket idle this long is full again and can be forgotten.
const IDLE: Duration = Duration::from_secs(120);

struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets by (consumer org, unpinned capability id).
pub struct RateLimiter {
    buckets: Mutex<HashMap<(String, String), Bucket>>,
    /// Replicas the limits are split among.
    replicas: AtomicU32,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter {
            buckets: Mutex::default(),
            replicas: AtomicU32::new(1),
        }
    }
}

impl RateLimiter {
    /// The replicas limits are split among.
    pub fn replicas(&self) -> u32 {
        self.replicas.load(Ordering::Acquire)
    }

    /// Splits every limit among `replicas` (at least 1) from now on.
    pub fn share_among(&self, replicas: u32) {
        self.replicas.store(replicas.max(1), Ordering::Release);
    }

    /// Takes one call from the bucket; `Err(wait)` when it is empty.
    /// `per_minute == 0` means no limit.
    pub fn take(
        &self,
        consumer: &str,
        capability: &str,
        per_minute: u32,
        now: Instant,
    ) -> Result<(), Duration> {
        if per_minute == 0 {
            return Ok(());
        }
        let share = f64::from(self.replicas.load(Ordering::Acquire).max(1));
        let capacity = (f64::from(per_minute) / share).max(1.0);
        let per_second = f64::from(per_minute) / share / 60.0;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= BUCKETS_MAX {
            buckets.retain(|_, b| now.duration_since(b.updated) < IDLE);
        }
        let bucket = buckets
            .entry((consumer.to_string(), capability.to_string()))
            .or_insert(Bucket {
                tokens: capacity,
                updated: now,
            });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_allows_the_limit_then_refills_over_time() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.take("org", "a.b", 3, start), Ok(()));
        }
        let wait = limiter
            .take("org", "a.b", 3, start)
            .err()
            .unwrap_or_default();
        assert!(
            wait > Duration::from_secs(19) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        // Another consumer, or another capability, has its own bucket.
        assert_eq!(limiter.take("other", "a.b", 3, start), Ok(()));
        assert_eq!(limiter.take("org", "a.c", 3, start), Ok(()));
        // 20 s later one call is back.
        assert_eq!(
            limiter.take("org", "a.b", 3, start + Duration::from_secs(20)),
            Ok(())
        );
        assert!(
            limiter
                .take("org", "a.b", 3, start + Duration::from_secs(20))
                .is_err()
        );
        assert_eq!(
            limiter.take("org", "a.b", 0, start),
            Ok(()),
            "0 means no limit"
        );
    }

    /// Among three replicas, each holds and refills a third of a limit.
    #[test]
    fn a_limit_is_split_among_the_replicas_alive() {
        let limiter = RateLimiter::default();
        limiter.share_among(3);
        let start = Instant::now();
        for _ in 0..20 {
            assert_eq!(limiter.take("org", "a.b", 60, start), Ok(()));
        }
        let wait = limiter.take("org", "a.b", 60, start).err();
        assert_eq!(wait, Some(Duration::from_secs(3)), "a third of 1 a second");
        limiter.share_among(0);
        assert_eq!(
            limiter.take("org", "a.c", 60, start),
            Ok(()),
            "no replica count means one"
        );
    }
}
