//! Per-call guest state: the WASI context with nothing behind it, the memory
//! limiter, the `mercato:agent/host` implementation with its byte budgets,
//! and the meter that turns the host work a guest asks for into fuel.

use super::bindings::mercato::agent::host::{Host, LogLevel};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::Sender;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Raised from `emit` when the stream passes its budget; it traps the guest.
#[derive(Debug, thiserror::Error)]
#[error("emitted output passed its byte budget")]
pub struct EmitBudgetExceeded;

/// Raised when the host work a guest asked for passes the call's fuel; it
/// traps the guest, and the call ends as `fuel_exhausted`.
#[derive(Debug, thiserror::Error)]
#[error("host calls used up the call's fuel")]
pub struct HostFuelExhausted;

/// Fuel every host call costs, WASI ones included: the host work of one
/// call (a lookup in the resource table, locking, a channel send) is worth
/// about this many guest instructions, so a guest pays for making the host
/// work even with empty lines, chunks or reads. The price stays
/// deterministic: it depends only on what the guest asked for.
pub const HOST_CALL_FUEL: u64 = 1_000;
/// Fuel per byte a `log` or `emit` call passes to the host.
pub const HOST_BYTE_FUEL: u64 = 1;
/// Fuel per word (4 bytes or fewer) of `wasi:random` output the host
/// generates: a ChaCha block and a copy cost the host about as much as a
/// dozen guest instructions per word.
pub const RANDOM_WORD_FUEL: u64 = 12;
/// Each log line and each emitted chunk counts at least this many bytes
/// against its budget, so empty ones are bounded in number too.
pub const HOST_CALL_BYTES_MIN: u64 = 64;

/// The most random bytes one `wasi:random` call may ask for (std asks
/// for a few dozen; wasmtime's default of 64 MiB let one call cost the host
/// 64 MiB before the guest's memory limit could refuse it).
pub const RANDOM_BYTES_MAX: u64 = 64 << 10;

/// Tables a guest may grow to, in elements (the pooling allocator is sized
/// to the same figure, so this is the cap a guest meets).
pub const TABLE_ELEMENTS_MAX: usize = 100_000;
/// A single log line is cut to this many bytes.
const LOG_LINE_BYTES_MAX: usize = 2_048;

/// Fuel the host's work for a call has cost since it was last taken out of
/// the store's fuel (by the call hook, as each host call returns). Shared
/// with the generators behind `wasi:random`, which have no store to charge.
#[derive(Debug, Default)]
pub struct Meter(AtomicU64);

impl Meter {
    fn add(&self, fuel: u64) {
        self.0.fetch_add(fuel, Ordering::Relaxed);
    }

    /// The fuel owed since the last call, leaving nothing owed.
    pub fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
}

/// The generator behind a guest's `wasi:random`: ChaCha seeded from the
/// operating system, charging each word it makes to the call's meter.
struct MeteredRng {
    inner: wasi_rand::rngs::StdRng,
    meter: Arc<Meter>,
}

impl MeteredRng {
    fn new(meter: Arc<Meter>) -> Self {
        use wasi_rand::SeedableRng;
        MeteredRng {
            inner: wasi_rand::rngs::StdRng::from_rng(&mut wasi_rand::rng()),
            meter,
        }
    }
}

impl wasi_rand::TryRng for MeteredRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        self.meter.add(RANDOM_WORD_FUEL);
        self.inner.try_next_u32()
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.meter.add(2 * RANDOM_WORD_FUEL);
        self.inner.try_next_u64()
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), Self::Error> {
        self.meter.add(
            (dest.len() as u64)
                .div_ceil(4)
                .saturating_mul(RANDOM_WORD_FUEL),
        );
        self.inner.try_fill_bytes(dest)
    }
}

/// Refuses memory growth past the call's limit and remembers that it did, so
/// the trap that follows (an allocator giving up) is reported as `memory_limit`.
pub struct Limiter {
    pub memory_bytes_max: usize,
    pub memory_refused: bool,
    /// Table growth is billed here, per element granted.
    meter: Arc<Meter>,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes_max {
            self.memory_refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > TABLE_ELEMENTS_MAX {
            return Ok(false);
        }
        self.meter.add(desired.saturating_sub(current) as u64);
        Ok(true)
    }
}

/// Everything a `Store` holds for one call.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: Limiter,
    /// Where `emit` chunks go; `None` drops them (still counted). Bounded:
    /// a consumer that does not read holds the guest in `emit`.
    emitter: Option<Sender<String>>,
    emitted_bytes: u64,
    emit_bytes_max: u64,
    pub emit_refused: bool,
    logged_bytes: u64,
    log_bytes_max: u64,
    /// Host work not yet taken out of the store's fuel.
    pub meter: Arc<Meter>,
    /// Fuel the host work cost so far.
    pub host_fuel: u64,
    pub host_fuel_exhausted: bool,
    /// Time the guest spent held in `emit` by a consumer not reading its
    /// stream, and since when it is held now.
    consumer_wait: Duration,
    waiting_since: Option<Instant>,
    /// Names the guest in log lines.
    label: String,
}

impl CallState {
    pub fn new(
        label: String,
        memory_bytes_max: u64,
        emit_bytes_max: u64,
        log_bytes_max: u64,
        emitter: Option<Sender<String>>,
    ) -> Self {
        let meter = Arc::new(Meter::default());
        // No preopens, no environment, no arguments, no network; stdin is
        // empty and stdout/stderr go nowhere.
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            // The host builds random bytes before the guest's memory limit
            // can refuse them: a request past this traps instead.
            .max_random_size(RANDOM_BYTES_MAX)
            .secure_random(MeteredRng::new(meter.clone()))
            .insecure_random(MeteredRng::new(meter.clone()))
            .build();
        CallState {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter {
                memory_bytes_max: usize::try_from(memory_bytes_max).unwrap_or(usize::MAX),
                memory_refused: false,
                meter: meter.clone(),
            },
            emitter,
            emitted_bytes: 0,
            emit_bytes_max,
            emit_refused: false,
            logged_bytes: 0,
            log_bytes_max,
            meter,
            host_fuel: 0,
            host_fuel_exhausted: false,
            consumer_wait: Duration::ZERO,
            waiting_since: None,
            label,
        }
    }
}

impl WasiView for CallState {
    /// Every WASI host call asks for the context once: that is where it is
    /// charged its [`HOST_CALL_FUEL`].
    fn ctx(&mut self) -> WasiCtxView<'_> {
        self.meter.add(HOST_CALL_FUEL);
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl CallState {
    /// Charges one host call of `bytes` to the call's meter.
    fn host_call(&self, bytes: usize) {
        self.meter
            .add(HOST_CALL_FUEL.saturating_add((bytes as u64).saturating_mul(HOST_BYTE_FUEL)));
    }

    /// Takes what the host work cost out of the store's `fuel`: the new fuel,
    /// or `None` when the work cost more than was left.
    pub fn charge(&mut self, fuel: u64) -> Option<u64> {
        let owed = self.meter.take();
        self.host_fuel = self.host_fuel.saturating_add(owed);
        let left = fuel.checked_sub(owed);
        if left.is_none() {
            self.host_fuel_exhausted = true;
        }
        left
    }

    /// How long the guest was held in `emit` by a consumer not reading.
    pub fn consumer_wait(&self) -> Duration {
        self.consumer_wait + self.waiting_since.map_or(Duration::ZERO, |t| t.elapsed())
    }
}

impl Host for CallState {
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        self.host_call(message.len());
        let mut line = message;
        if line.len() > LOG_LINE_BYTES_MAX {
            let mut cut = LOG_LINE_BYTES_MAX;
            while !line.is_char_boundary(cut) {
                cut -= 1;
            }
            line.truncate(cut);
        }
        self.logged_bytes = self
            .logged_bytes
            .saturating_add((line.len() as u64).max(HOST_CALL_BYTES_MIN));
        if self.logged_bytes > self.log_bytes_max {
            return Ok(());
        }
        let guest = &self.label;
        match level {
            LogLevel::Debug => tracing::debug!(target: "mercato::guest", %guest, "{line}"),
            LogLevel::Info => tracing::info!(target: "mercato::guest", %guest, "{line}"),
            LogLevel::Warn => tracing::warn!(target: "mercato::guest", %guest, "{line}"),
            LogLevel::Error => tracing::error!(target: "mercato::guest", %guest, "{line}"),
        }
        Ok(())
    }

    async fn emit(&mut self, chunk: String) -> wasmtime::Result<()> {
        self.host_call(chunk.len());
        self.emitted_bytes = self
            .emitted_bytes
            .saturating_add((chunk.len() as u64).max(HOST_CALL_BYTES_MIN));
        if self.emitted_bytes > self.emit_bytes_max {
            self.emit_refused = true;
            return Err(wasmtime::Error::new(EmitBudgetExceeded));
        }
        if let Some(emitter) = self.emitter.clone() {
            // Backpressure: the guest waits (its deadline still runs) while
            // the consumer's stream is full. A consumer that went away no
            // longer wants chunks; the call goes on.
            let sent = match emitter.try_send(chunk) {
                Err(tokio::sync::mpsc::error::TrySendError::Full(chunk)) => {
                    self.waiting_since = Some(Instant::now());
                    let sent = emitter.send(chunk).await;
                    if let Some(since) = self.waiting_since.take() {
                        self.consumer_wait += since.elapsed();
                    }
                    sent.is_ok()
                }
                sent => sent.is_ok(),
            };
            if !sent {
                self.emitter = None;
            }
        }
        Ok(())
    }
}
