//! Group commit: one flush serves every writer waiting when it starts.
//!
//! Leader and followers: a writer that needs durability takes a ticket; if no
//! flush is running it becomes the leader and flushes on its own thread
//! (`block_in_place`), covering every ticket issued so far; writers arriving
//! meanwhile wait for the next flush, which one of them leads. A lone writer
//! thus pays its sync and nothing else: no hand-off to another thread and no
//! wake-up on the way back, the two costs that made a settled call take
//! about twice a bare `fdatasync`. A background thread flushes writes
//! nobody waits for (marked [`GroupCommit::dirty`]) within the interval.

use super::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::watch;

/// Pause before retrying a failed flush.
const RETRY: Duration = Duration::from_millis(100);

type Flush = dyn Fn() -> std::result::Result<(), String> + Send + Sync;

#[derive(Default)]
struct State {
    /// Tickets issued: a writer takes ticket `n` after writing.
    issued: u64,
    /// Every ticket ≤ `done` is durable.
    done: u64,
    /// A leader is flushing.
    flushing: bool,
    /// Unsynced writes nobody waits for.
    dirty: bool,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the background thread (to stop).
    wake: Condvar,
    /// Bumped after every flush attempt: followers re-check then.
    flushes: watch::Sender<u64>,
    flush: Box<Flush>,
    syncs: AtomicU64,
    /// A waiter whose flush failed gets the error instead of retrying
    /// (PostgreSQL: an unreachable database answers 503, never a hang).
    fail_fast: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims the leadership if nobody flushes: the target to flush to.
    fn lead(&self, state: &mut State) -> Option<u64> {
        if state.flushing {
            return None;
        }
        state.flushing = true;
        state.dirty = false;
        Some(state.issued)
    }

    /// Ends a leadership: on success every ticket ≤ `target` is durable.
    fn finish(
        &self,
        target: u64,
        flushed: std::result::Result<(), String>,
    ) -> std::result::Result<(), String> {
        let ok = match &flushed {
            Ok(()) => {
                self.syncs.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(error) => {
                tracing::error!(%error, "store flush failed; retrying");
                false
            }
        };
        {
            let mut state = self.state();
            state.flushing = false;
            if ok {
                state.done = state.done.max(target);
            } else {
                state.dirty = true;
            }
        }
        self.flushes.send_modify(|n| *n += 1);
        flushed
    }
}

pub struct GroupCommit {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl GroupCommit {
    /// Starts the committer; `flush` makes everything written so far
    /// durable (a sled flush, or a file's `fdatasync`).
    pub fn start<F>(flush: F, background_flush: Duration) -> Arc<Self>
    where
        F: Fn() -> std::result::Result<(), String> + Send + Sync + 'static,
    {
        GroupCommit::start_with(flush, background_flush, false)
    }

    /// [`GroupCommit::start`]; with `fail_fast`, a waiter whose flush failed
    /// gets [`Error::Unavailable`] (the writes stay pending and the
    /// background thread retries them) instead of retrying until it works.
    pub fn start_with<F>(flush: F, background_flush: Duration, fail_fast: bool) -> Arc<Self>
    where
        F: Fn() -> std::result::Result<(), String> + Send + Sync + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            flushes: watch::Sender::new(0),
            flush: Box::new(flush),
            syncs: AtomicU64::new(0),
            fail_fast,
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("mercato-flush".into())
                .spawn(move || background(&shared, background_flush))
                .expect("spawn the background flush thread")
        };
        Arc::new(GroupCommit {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Marks unsynced writes, flushed within the background interval.
    pub fn dirty(&self) {
        self.shared.state().dirty = true;
    }

    /// Waits until every write made before the call is durable.
    pub async fn sync(&self) -> Result<()> {
        let shared = &self.shared;
        let mut flushes = shared.flushes.subscribe();
        let ticket = {
            let mut state = shared.state();
            if state.stop {
                return Err(Error::Closed);
            }
            state.issued += 1;
            state.issued
        };
        loop {
            // Seen before the state is read, so a flush that ends after the
            // read wakes the wait below.
            flushes.borrow_and_update();
            let target = {
                let mut state = shared.state();
                if state.done >= ticket {
                    return Ok(());
                }
                shared.lead(&mut state)
            };
            match target {
                Some(target) => match lead(shared, target).await {
                    Ok(()) => {}
                    Err(error) if shared.fail_fast => return Err(Error::Unavailable(error)),
                    Err(_) => tokio::time::sleep(RETRY).await,
                },
                None => flushes.changed().await.map_err(|_| Error::Closed)?,
            }
        }
    }

    /// Flushes what is pending and stops the background thread.
    pub async fn close(&self) -> Result<()> {
        self.dirty();
        self.sync().await?;
        self.shared.state().stop = true;
        self.shared.wake.notify_all();
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .map_err(|_| Error::Closed)?
                .map_err(|_| Error::Closed)?;
        }
        Ok(())
    }

    pub fn syncs(&self) -> u64 {
        self.shared.syncs.load(Ordering::Relaxed)
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        self.shared.state().stop = true;
        self.shared.wake.notify_all();
    }
}

/// Flushes to `target` as the leader, on the calling task's own thread where
/// the runtime allows it (its other tasks move to another worker meanwhile),
/// else on the blocking pool; the leadership ends even if the caller is
/// cancelled. Whether the flush succeeded.
async fn lead(shared: &Arc<Shared>, target: u64) -> std::result::Result<(), String> {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_thread {
        tokio::task::block_in_place(|| shared.finish(target, (shared.flush)()))
    } else {
        let shared = shared.clone();
        tokio::task::spawn_blocking(move || shared.finish(target, (shared.flush)()))
            .await
            .unwrap_or_else(|_| Err("the flush task failed".into()))
    }
}

/// The background thread: flushes unsynced writes nobody waits for at least
/// every `interval`, until stopped.
fn background(shared: &Shared, interval: Duration) {
    loop {
        let target = {
            let state = shared.state();
            let mut state = shared
                .wake
                .wait_timeout_while(state, interval, |s| !s.stop)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            if state.stop {
                return;
            }
            if state.dirty {
                shared.lead(&mut state)
            } else {
                None
            }
        };
        if let Some(target) = target {
            let _ = shared.finish(target, (shared.flush)());
        }
    }
}
