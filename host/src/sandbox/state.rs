//! Per-call guest state: the WASI context with nothing behind it, the memory
//! limiter, and the `mercato:agent/host` implementation with its byte budgets.

use super::engine::bindings::mercato::agent::host::{Host, LogLevel};
use tokio::sync::mpsc::UnboundedSender;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Raised from `emit` when the stream passes its budget; it traps the guest.
#[derive(Debug, thiserror::Error)]
#[error("emitted output passed its byte budget")]
pub struct EmitBudgetExceeded;

/// Raised from a host call when the host work it would cost passes the
/// call's fuel; it traps the guest, and the call ends as `fuel_exhausted`.
#[derive(Debug, thiserror::Error)]
#[error("host calls used up the call's fuel")]
pub struct HostFuelExhausted;

/// Fuel a `log` or `emit` call costs on top of its bytes: the host work of
/// one call (locking, formatting, a channel send) is worth about this many
/// guest instructions, so a guest pays for making the host work even with
/// empty lines or chunks. The price stays deterministic: it depends only on
/// what the guest asked for.
pub const HOST_CALL_FUEL: u64 = 1_000;
/// Fuel per byte a `log` or `emit` call passes to the host.
pub const HOST_BYTE_FUEL: u64 = 1;
/// Each log line and each emitted chunk counts at least this many bytes
/// against its budget, so empty ones are bounded in number too.
pub const HOST_CALL_BYTES_MIN: u64 = 64;

/// The most random bytes one `wasi:random` call may ask for (std asks
/// for a few dozen; wasmtime's default of 64 MiB let one call cost the host
/// 64 MiB before the guest's memory limit could refuse it).
pub const RANDOM_BYTES_MAX: u64 = 64 << 10;

/// Tables a guest may grow to, in elements.
const TABLE_ELEMENTS_MAX: usize = 100_000;
/// A single log line is cut to this many bytes.
const LOG_LINE_BYTES_MAX: usize = 2_048;

/// Refuses memory growth past the call's limit and remembers that it did, so
/// the trap that follows (an allocator giving up) is reported as `memory_limit`.
pub struct Limiter {
    pub memory_bytes_max: usize,
    pub memory_refused: bool,
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
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= TABLE_ELEMENTS_MAX)
    }
}

/// Everything a `Store` holds for one call.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub limiter: Limiter,
    /// Where `emit` chunks go; `None` drops them (still counted).
    emitter: Option<UnboundedSender<String>>,
    emitted_bytes: u64,
    emit_bytes_max: u64,
    pub emit_refused: bool,
    logged_bytes: u64,
    log_bytes_max: u64,
    /// Fuel the host calls (`log`, `emit`) cost so far, and the call's fuel.
    pub host_fuel: u64,
    fuel_max: u64,
    pub host_fuel_exhausted: bool,
    /// Names the guest in log lines.
    label: String,
}

impl CallState {
    pub fn new(
        label: String,
        memory_bytes_max: u64,
        emit_bytes_max: u64,
        log_bytes_max: u64,
        fuel_max: u64,
        emitter: Option<UnboundedSender<String>>,
    ) -> Self {
        // No preopens, no environment, no arguments, no network; stdin is
        // empty and stdout/stderr go nowhere.
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            // The host builds random bytes before the guest's memory limit
            // can refuse them: a request past this traps instead.
            .max_random_size(RANDOM_BYTES_MAX)
            .build();
        CallState {
            wasi,
            table: ResourceTable::new(),
            limiter: Limiter {
                memory_bytes_max: usize::try_from(memory_bytes_max).unwrap_or(usize::MAX),
                memory_refused: false,
            },
            emitter,
            emitted_bytes: 0,
            emit_bytes_max,
            emit_refused: false,
            logged_bytes: 0,
            log_bytes_max,
            host_fuel: 0,
            fuel_max,
            host_fuel_exhausted: false,
            label,
        }
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl CallState {
    /// Charges one host call of `bytes` to the call's fuel.
    fn host_call(&mut self, bytes: usize) -> wasmtime::Result<()> {
        let cost = HOST_CALL_FUEL.saturating_add((bytes as u64).saturating_mul(HOST_BYTE_FUEL));
        self.host_fuel = self.host_fuel.saturating_add(cost);
        if self.host_fuel > self.fuel_max {
            self.host_fuel_exhausted = true;
            return Err(wasmtime::Error::new(HostFuelExhausted));
        }
        Ok(())
    }
}

impl Host for CallState {
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        self.host_call(message.len())?;
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

    fn emit(&mut self, chunk: String) -> wasmtime::Result<()> {
        self.host_call(chunk.len())?;
        self.emitted_bytes = self
            .emitted_bytes
            .saturating_add((chunk.len() as u64).max(HOST_CALL_BYTES_MIN));
        if self.emitted_bytes > self.emit_bytes_max {
            self.emit_refused = true;
            return Err(wasmtime::Error::new(EmitBudgetExceeded));
        }
        if let Some(emitter) = &self.emitter {
            // A caller that went away no longer wants chunks; the call goes on.
            let _ = emitter.send(chunk);
        }
        Ok(())
    }
}
