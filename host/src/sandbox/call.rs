//! Running one guest call: a fresh store, fuel, deadline, and the mapping of
//! whatever happened to a named outcome.

use super::engine::EPOCH_TICK;
use super::state::{CallState, HostFuelExhausted};
use super::timing::{Timed, Timing};
use super::{Compiled, Failure, Sandbox};
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;
use tokio::sync::mpsc::Sender;
use wasmtime::{CallHook, Store, Trap};

/// Fuel a guest burns between yields to the async runtime, so a busy guest
/// shares its worker thread (about 0.1 ms of straight-line code).
const FUEL_YIELD_INTERVAL: u64 = 100_000;

/// A guest's own refusal: the call ran and the capability answered an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestError {
    /// The capability found the input unacceptable.
    InvalidInput(String),
    /// The agent has no capability of that name.
    UnknownCapability(String),
    /// The capability failed for a reason of its own.
    Failed(String),
}

impl GuestError {
    /// What the guest said (at most [`ERROR_MESSAGE_BYTES_MAX`] bytes).
    pub fn message(&self) -> &str {
        match self {
            GuestError::InvalidInput(m)
            | GuestError::UnknownCapability(m)
            | GuestError::Failed(m) => m,
        }
    }

    /// Which kind of error it was: `invalid_input`, `unknown_capability`, `failed`.
    pub fn kind(&self) -> &'static str {
        match self {
            GuestError::InvalidInput(_) => "invalid_input",
            GuestError::UnknownCapability(_) => "unknown_capability",
            GuestError::Failed(_) => "failed",
        }
    }
}

/// What a call that ran to completion produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutput {
    /// Output JSON text (not yet checked against any schema).
    Output(String),
    /// The guest answered an error.
    Refused(GuestError),
}

/// The record of one call: what it produced and what it used.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The result, or why there is none.
    pub result: Result<CallOutput, Failure>,
    /// Fuel the guest burned (all of it when it ran out).
    pub fuel_used: u64,
    /// Wall time from slot to result.
    pub duration: Duration,
    /// Where that time went.
    pub timing: Timing,
}

impl Sandbox {
    /// Invokes `capability` with JSON `input`, giving the guest at most `fuel`
    /// (capped by `fuel_per_call_max`). `emitter` receives streamed chunks.
    pub async fn invoke(
        &self,
        compiled: &Compiled,
        label: &str,
        capability: &str,
        input: &str,
        fuel: u64,
        emitter: Option<Sender<String>>,
    ) -> Invocation {
        let fuel = fuel.min(self.limits.fuel_per_call_max);
        let _slot = match self.slot().await {
            Ok(slot) => slot,
            Err(failure) => {
                return Invocation {
                    result: Err(failure),
                    fuel_used: 0,
                    duration: Duration::ZERO,
                    timing: Timing::default(),
                };
            }
        };
        let started = Instant::now();
        let mut store = self.store(label, fuel, emitter);
        let call = async {
            let agent = compiled.pre.instantiate_async(&mut store).await?;
            agent
                .mercato_agent_capabilities()
                .call_invoke(&mut store, capability, input)
                .await
        };
        let mut call = Timed::new(call);
        let ran = tokio::time::timeout(self.deadline_with_grace(), &mut call).await;
        let timing = call.timing();
        drop(call);
        let timing = Timing {
            consumer_wait: store.data().consumer_wait(),
            ..timing
        };
        // The guest's own fuel plus what its host calls cost (the call hook
        // took that out of the store's fuel as each host call returned).
        // Work of a host call the deadline cut short is owed as well.
        let fuel_used = fuel
            .saturating_sub(store.get_fuel().unwrap_or(0))
            .saturating_add(store.data().meter.take());
        let result = self
            .settle(ran, &store, fuel)
            .and_then(|answer| {
                if fuel_used > fuel {
                    return Err(Failure::FuelExhausted { fuel });
                }
                Ok(answer)
            })
            .and_then(|answer| match answer {
                Ok(output) if output.len() as u64 > self.limits.output_bytes_max => {
                    Err(Failure::OutputTooLarge {
                        bytes_max: self.limits.output_bytes_max,
                    })
                }
                Ok(output) => Ok(CallOutput::Output(output)),
                Err(error) => Ok(CallOutput::Refused(guest_error(error))),
            });
        let fuel_used = if matches!(result, Err(Failure::FuelExhausted { .. })) {
            fuel
        } else {
            fuel_used.min(fuel)
        };
        Invocation {
            result,
            fuel_used,
            duration: started.elapsed(),
            timing,
        }
    }

    /// Asks a negotiating component to answer a proposal (JSON in, JSON
    /// out), with at most `fuel`. `None` when the component does not
    /// negotiate.
    pub async fn negotiate(
        &self,
        compiled: &Compiled,
        capability: &str,
        proposal: &str,
        fuel: u64,
    ) -> Option<Result<String, Failure>> {
        let pre = compiled.negotiator.as_ref()?;
        let fuel = fuel.min(self.limits.fuel_per_call_max);
        let _slot = match self.slot().await {
            Ok(slot) => slot,
            Err(failure) => return Some(Err(failure)),
        };
        let mut store = self.store("negotiator", fuel, None);
        let call = async {
            let agent = pre.instantiate_async(&mut store).await?;
            agent
                .mercato_agent_negotiator()
                .call_negotiate(&mut store, capability, proposal)
                .await
        };
        let ran = tokio::time::timeout(self.deadline_with_grace(), call).await;
        Some(self.settle(ran, &store, fuel).and_then(|answer| {
            if answer.len() as u64 > self.limits.output_bytes_max {
                Err(Failure::OutputTooLarge {
                    bytes_max: self.limits.output_bytes_max,
                })
            } else {
                Ok(answer)
            }
        }))
    }

    /// Waits for a call slot, at most `queue_wait_ms`.
    pub(super) async fn slot(&self) -> Result<OwnedSemaphorePermit, Failure> {
        let wait = Duration::from_millis(self.limits.queue_wait_ms);
        match tokio::time::timeout(wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Failure::Overloaded),
        }
    }

    /// A fresh store for one call: limits, fuel, and the epoch deadline.
    pub(super) fn store(
        &self,
        label: &str,
        fuel: u64,
        emitter: Option<Sender<String>>,
    ) -> Store<CallState> {
        let limits = &self.limits;
        let state = CallState::new(
            label.to_string(),
            limits.memory_bytes_max,
            limits.emit_bytes_max,
            limits.log_bytes_max,
            emitter,
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        // As each host call returns, the host work it asked for (WASI
        // included) comes out of the guest's fuel; past it, the guest traps.
        store.call_hook(|mut store, hook| {
            if !matches!(hook, CallHook::ReturningFromHost) {
                return Ok(());
            }
            let fuel = store.get_fuel()?;
            match store.data_mut().charge(fuel) {
                Some(left) if left == fuel => Ok(()),
                Some(left) => store.set_fuel(left),
                None => {
                    store.set_fuel(0)?;
                    Err(wasmtime::Error::new(HostFuelExhausted))
                }
            }
        });
        // Fuel, the yield interval and the deadline are valid settings for an
        // engine built by `engine_config`; a failure here is a host bug that
        // would surface as every call failing, which the tests catch.
        let _ = store.set_fuel(fuel);
        let _ = store.fuel_async_yield_interval(Some(FUEL_YIELD_INTERVAL));
        store.epoch_deadline_trap();
        let ticks = limits
            .deadline_ms
            .div_ceil(EPOCH_TICK.as_millis() as u64)
            .max(1);
        store.set_epoch_deadline(ticks);
        store
    }

    /// The outer timer: the epoch traps running code at the deadline; this
    /// catches a guest parked in a host call (a sleep) a little later.
    pub(super) fn deadline_with_grace(&self) -> Duration {
        Duration::from_millis(self.limits.deadline_ms) + 4 * EPOCH_TICK
    }

    /// Turns what a guest call did into its result or a named failure.
    pub(super) fn settle<R>(
        &self,
        ran: Result<wasmtime::Result<R>, tokio::time::error::Elapsed>,
        store: &Store<CallState>,
        fuel: u64,
    ) -> Result<R, Failure> {
        let error = match ran {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => error,
            Err(_elapsed) => {
                return Err(Failure::DeadlineExceeded {
                    deadline_ms: self.limits.deadline_ms,
                });
            }
        };
        let state = store.data();
        if state.emit_refused {
            return Err(Failure::OutputTooLarge {
                bytes_max: self.limits.emit_bytes_max,
            });
        }
        if state.host_fuel_exhausted {
            return Err(Failure::FuelExhausted { fuel });
        }
        match error.downcast_ref::<Trap>() {
            Some(Trap::OutOfFuel) => Err(Failure::FuelExhausted { fuel }),
            Some(Trap::Interrupt) => Err(Failure::DeadlineExceeded {
                deadline_ms: self.limits.deadline_ms,
            }),
            _ if state.limiter.memory_refused => Err(Failure::MemoryLimit {
                memory_bytes_max: self.limits.memory_bytes_max,
            }),
            Some(trap) => Err(Failure::Trapped {
                trap: trap_name(*trap),
            }),
            None => {
                tracing::debug!(error = %format!("{error:#}"), "guest call failed without a trap");
                Err(Failure::Trapped {
                    trap: "host_call_refused".into(),
                })
            }
        }
    }
}

/// The most of a guest's error message that is kept (the rest is cut).
pub const ERROR_MESSAGE_BYTES_MAX: usize = 4_096;

/// A guest's message, cut to [`ERROR_MESSAGE_BYTES_MAX`] bytes at a
/// character boundary, without control characters other than newlines.
fn bounded_message(message: String) -> String {
    let mut kept = String::with_capacity(message.len().min(ERROR_MESSAGE_BYTES_MAX));
    for c in message.chars() {
        if c.is_control() && c != '\n' {
            continue;
        }
        if kept.len() + c.len_utf8() > ERROR_MESSAGE_BYTES_MAX {
            break;
        }
        kept.push(c);
    }
    kept
}

fn guest_error(error: super::bindings::mercato::agent::types::Error) -> GuestError {
    use super::bindings::mercato::agent::types::Error as Wit;
    match error {
        Wit::InvalidInput(m) => GuestError::InvalidInput(bounded_message(m)),
        Wit::UnknownCapability(m) => GuestError::UnknownCapability(bounded_message(m)),
        Wit::Failed(m) => GuestError::Failed(bounded_message(m)),
    }
}

/// A stable snake_case name for a trap, for error details and metrics.
fn trap_name(trap: Trap) -> String {
    match trap {
        Trap::StackOverflow => "stack_overflow",
        Trap::MemoryOutOfBounds => "memory_out_of_bounds",
        Trap::UnreachableCodeReached => "unreachable",
        Trap::IntegerDivisionByZero => "integer_division_by_zero",
        Trap::IntegerOverflow => "integer_overflow",
        Trap::IndirectCallToNull | Trap::TableOutOfBounds | Trap::BadSignature => {
            "bad_indirect_call"
        }
        Trap::AllocationTooLarge => "allocation_too_large",
        _ => "other",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_message_is_cut_to_its_budget_at_a_character_boundary() {
        let long = "é".repeat(ERROR_MESSAGE_BYTES_MAX);
        let kept = bounded_message(long);
        assert_eq!(kept.len(), ERROR_MESSAGE_BYTES_MAX);
        assert!(kept.chars().all(|c| c == 'é'));
        assert_eq!(bounded_message("a\u{0}b\nc\u{1b}".into()), "ab\nc");
    }
}
