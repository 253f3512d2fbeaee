//! Execution: the wasmtime sandbox every guest call runs in.
//!
//! Owns: the one `Engine`, the linker with exactly the imports Mercato grants,
//! compiling components and (de)serialising their artifacts, and running a call
//! in a fresh `Store` with fuel, an epoch deadline, memory limits and output
//! budgets. This is the only module that names `wasmtime`.
//!
//! Does not know about: HTTP, prices, organisations or storage. It takes bytes
//! and limits and returns descriptions, outputs, fuel used and named failures.
//!
//! Invariants:
//! - A guest reaches nothing but `mercato:agent/host` and WASI with nothing
//!   behind it (no preopens, no environment, no arguments, no sockets, stdio
//!   to nowhere). A component importing anything else is refused
//!   ([`Error::ForbiddenImports`]) before it is ever instantiated.
//! - Every call gets a fresh `Store` from the pooling allocator, at most
//!   `fuel` fuel, at most `memory_bytes_max` of linear memory, and ends by the
//!   deadline whatever the guest does (the epoch traps running code, a timer
//!   cancels a guest waiting in a host call).
//! - Every guest failure is a [`Failure`] variant; none is a host error.

mod bindings;
mod call;
mod engine;
mod error;
mod imports;
mod isolated;
mod state;
mod timing;

pub use call::{CallOutput, GuestError, Invocation};
pub use engine::{AgentDescription, CapabilityDescription, Compiled, ExampleDescription, Sandbox};
pub use error::{Error, Failure, Result};
pub use isolated::{EXIT_REFUSED, SUBCOMMAND, compile_child};
pub use state::{HOST_BYTE_FUEL, HOST_CALL_FUEL, RANDOM_WORD_FUEL};
pub use timing::Timing;

/// Limits that hold for every call, set once per process.
#[derive(Debug, Clone)]
pub struct SandboxLimits {
    /// Fuel a single call may use, whatever the caller pays for.
    pub fuel_per_call_max: u64,
    /// Linear memory a single call may grow to, in bytes.
    pub memory_bytes_max: u64,
    /// Wall-clock time a single call may take.
    pub deadline_ms: u64,
    /// Bytes a call may return as its output.
    pub output_bytes_max: u64,
    /// Bytes a call may stream through `emit`.
    pub emit_bytes_max: u64,
    /// Bytes of log lines a call may write (further lines are dropped).
    pub log_bytes_max: u64,
    /// Calls that may run at the same time (pool slots).
    pub concurrent_calls_max: u32,
    /// How long a call waits for a slot before it is refused as overloaded.
    pub queue_wait_ms: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            fuel_per_call_max: 5_000_000_000,
            memory_bytes_max: 64 << 20,
            deadline_ms: 5_000,
            output_bytes_max: 1 << 20,
            emit_bytes_max: 4 << 20,
            log_bytes_max: 64 << 10,
            concurrent_calls_max: 64,
            queue_wait_ms: 2_000,
        }
    }
}
