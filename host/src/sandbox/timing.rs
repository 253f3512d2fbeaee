//! Where a call's wall time went: running on a worker, waiting for one
//! (runnable, but the host was busy), or parked (waiting in a host call).
//!
//! A deadline failure is charged or not by who made it happen (see
//! `market::deadline`), and that needs more than the wall clock: a guest that
//! computed until the deadline used what it asked for, a guest that sat in
//! the run queue behind other tenants' calls did not.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// Where a call's wall time went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    /// Time the call's future was being polled: the guest computing (or
    /// the host working for it).
    pub running: Duration,
    /// Time it was runnable but waited for a worker thread.
    pub queued: Duration,
    /// Time the guest was held in `emit` by a consumer not reading its stream.
    pub consumer_wait: Duration,
}

/// No wake recorded since the last poll.
const NOT_WOKEN: u64 = u64::MAX;

/// Records when the wrapped future was last woken, then passes the wake on.
struct Relay {
    origin: Instant,
    woken_at_ns: AtomicU64,
    waker: Mutex<Waker>,
}

impl Relay {
    fn note(&self) {
        let now = self.origin.elapsed().as_nanos() as u64;
        // The first wake since the last poll is when it became runnable.
        let _ =
            self.woken_at_ns
                .compare_exchange(NOT_WOKEN, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn inner(&self) -> Waker {
        match self.waker.lock() {
            Ok(waker) => waker.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl Wake for Relay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.note();
        self.inner().wake();
    }
}

/// A future that measures how long it ran and how long it waited to run.
pub struct Timed<F> {
    inner: Pin<Box<F>>,
    relay: Arc<Relay>,
    waker: Waker,
    timing: Timing,
}

impl<F: Future> Timed<F> {
    /// Wraps `inner`; the clock starts now (a first poll that comes late
    /// counts as queued).
    pub fn new(inner: F) -> Self {
        let relay = Arc::new(Relay {
            origin: Instant::now(),
            woken_at_ns: AtomicU64::new(0),
            waker: Mutex::new(Waker::noop().clone()),
        });
        Timed {
            inner: Box::pin(inner),
            waker: Waker::from(relay.clone()),
            relay,
            timing: Timing::default(),
        }
    }

    /// The time measured so far.
    pub fn timing(&self) -> Timing {
        self.timing
    }
}

impl<F: Future> Future for Timed<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let started = Instant::now();
        let woken = this.relay.woken_at_ns.swap(NOT_WOKEN, Ordering::Relaxed);
        if woken != NOT_WOKEN {
            let now = started.duration_since(this.relay.origin).as_nanos() as u64;
            this.timing.queued += Duration::from_nanos(now.saturating_sub(woken));
        }
        {
            let mut waker = match this.relay.waker.lock() {
                Ok(waker) => waker,
                Err(poisoned) => poisoned.into_inner(),
            };
            if !waker.will_wake(cx.waker()) {
                *waker = cx.waker().clone();
            }
        }
        let mut relayed = Context::from_waker(&this.waker);
        let answer = this.inner.as_mut().poll(&mut relayed);
        this.timing.running += started.elapsed();
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gives the thread up once, waking itself at once (as wasmtime's fuel
    /// yield does).
    struct YieldOnce(bool);

    impl Future for YieldOnce {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn spin(ms: u64) {
        let until = Instant::now() + Duration::from_millis(ms);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_future_that_computes_runs_and_one_that_waits_behind_others_queues() {
        // Computing: each poll spins 2 ms, then yields; a neighbour on the
        // same (only) worker hogs it 5 ms per turn.
        let spinner = tokio::spawn(async {
            let mut timed = Timed::new(async {
                for _ in 0..5 {
                    spin(2);
                    YieldOnce(false).await;
                }
            });
            (&mut timed).await;
            timed.timing()
        });
        let hog = tokio::spawn(async {
            for _ in 0..5 {
                spin(5);
                YieldOnce(false).await;
            }
        });
        let timing = spinner.await.expect("spinner");
        hog.await.expect("hog");
        assert!(timing.running >= Duration::from_millis(10), "{timing:?}");
        assert!(timing.queued >= Duration::from_millis(10), "{timing:?}");

        // Parked: a sleep is neither running nor queued (beyond the wake-up).
        let parked = tokio::spawn(async {
            let mut timed = Timed::new(tokio::time::sleep(Duration::from_millis(30)));
            (&mut timed).await;
            timed.timing()
        });
        let timing = parked.await.expect("parked");
        assert!(timing.running < Duration::from_millis(5), "{timing:?}");
        assert!(timing.queued < Duration::from_millis(15), "{timing:?}");
    }
}
