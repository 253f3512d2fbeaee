//! Attestation: what must hold before a capability is listed, run the same
//! way by the host on upload and by `mercato attest` in a provider's CI.
//!
//! Owns: batteries (per-category cases as data files), checks on outputs, the
//! plan and run of every case (the provider's worked examples, the category
//! battery, and on an upgrade the previous version's examples), resource
//! profiles (fuel and wall time per case, latency with a 2× margin),
//! determinism (each case runs twice), schema compatibility with the version
//! an upgrade replaces, the report, and its JUnit rendering.
//!
//! Does not know about: storage, HTTP or signing (the market stores reports
//! and signs them with the marketplace key), or `wasmtime` (cases run through
//! [`crate::sandbox::Sandbox`]).
//!
//! Invariants: the verdict is `pass` only if every structure and
//! compatibility check and every case of every capability passed, and every
//! capability in a category with a battery had at least one applicable case.

mod battery;
mod check;
pub mod junit;
mod report;
mod run;

pub use battery::{Batteries, Battery, BatteryError, Case};
pub use check::{Assertion, Check};
pub use report::{CapabilityReport, CaseReport, CheckResult, FORMAT, Report};
pub use run::{Attester, Subject};
