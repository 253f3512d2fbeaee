//! Settlement: the ledger made durable, and the money rules of a call.
//!
//! Owns: the journal of ledger operations (the only way money moves, each
//! entry on disk before the response that reports it, group-committed),
//! holds for calls in flight, capture (cost + marketplace fee, the rest
//! released), escrow until the dispute window closes, releases to providers,
//! refunds, deposits, budgets (per-call and daily limits, automatic pause),
//! and balances.
//!
//! Does not know about: HTTP, the sandbox, or what a capability is. The
//! market asks for a hold before a call and captures or drops it after.
//!
//! Invariants:
//! - The books are the journal replayed: at start every entry is applied
//!   in order; an entry that does not apply stops the start. The escrow
//!   index, on disk on the embedded store, is rebuilt at every start from
//!   the replay and is never read as the truth.
//! - On the embedded store a hold lives in memory only: it reserves funds
//!   against concurrent calls and is journaled together with its capture
//!   (`[Hold, Post]` in one entry), so a crash can never leave a hold
//!   pending. A hold that is dropped without a capture (a failed or
//!   cancelled call) is voided.
//! - On a shared store (replicas on PostgreSQL) every entry, holds and
//!   voids included, is appended in a turn after the other replicas'
//!   entries, which are applied first (`shared`): every replica's books are
//!   the same sequence. A hold a dead replica left is expired at its
//!   timeout by a journaled entry.
//! - Journal entries are appended to the journal file under the books' lock,
//!   so their order on disk is the order they were applied in, and a sync
//!   (one group-committed `fdatasync`) covers every entry applied before it.
//!   A capture's transaction record travels inside its entry: written to the
//!   store unsynced, and restored from the journal at start if a crash lost it.
//! - Free calls (price and rate zero) never reach this module.
//!
//! The rooms: `service` (the books opened, deposits, the journal synced),
//! `holds` (a call's hold and capture), `escrow` (release, dispute,
//! refund), `accounts` (budgets, balances, the audit), `books` (the
//! state the journal replays into), `escrows` (the escrow index, on disk
//! on the embedded store), `compact` (the books' compact keys: transaction
//! ids as numbers, organisation ids shared), `shared`
//! (turns at a shared journal), `journal` and `error`.

mod accounts;
mod books;
mod compact;
mod error;
mod escrow;
mod escrows;
mod holds;
mod journal;
mod service;
mod shared;

pub use accounts::Audit;
pub use books::{Allowance, AllowanceSpend, Balance, Budget, EscrowState};
pub use error::{Error, Result};
pub use holds::{Captured, Hold};
pub use journal::{Event, JournalEntry};
pub use service::{DEPOSIT_MICROS_MAX, Rules, Settlement};
