//! Why money did not move.

use crate::{ledger, store};

/// The settlement result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why money did not move.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The ledger refused (insufficient funds, double settlement, ...).
    #[error(transparent)]
    Ledger(#[from] ledger::Error),
    /// The hold is above the consumer's per-call limit.
    #[error("this call may cost up to {amount} micros; the per-call budget is {limit}")]
    OverPerCallLimit {
        /// The hold.
        amount: u64,
        /// The limit.
        limit: u64,
    },
    /// The daily budget cannot cover the hold: calls are paused until the
    /// next UTC day or a higher budget.
    #[error(
        "the daily budget of {limit} micros is exhausted ({spent} spent or held today); calls are \
         paused until 00:00 UTC or a higher budget"
    )]
    BudgetExhausted {
        /// The daily limit.
        limit: u64,
        /// Spent and held today.
        spent: u64,
        /// This refusal paused the consumer (the first of the day).
        newly_paused: bool,
    },
    /// The hold is above the per-call cap of the allowance the call spends
    /// from (an OAuth token's cap).
    #[error(
        "this call may cost up to {amount} micros; this token may spend at most {limit} a call"
    )]
    OverAllowancePerCall {
        /// The hold.
        amount: u64,
        /// The allowance's per-call cap.
        limit: u64,
    },
    /// The allowance's daily cap cannot cover the hold.
    #[error(
        "this token's daily cap of {limit} micros is reached ({spent} spent or held today); \
         ask for a token with a higher cap, or wait until 00:00 UTC"
    )]
    AllowanceExhausted {
        /// The daily cap.
        limit: u64,
        /// Spent and held today through the allowance.
        spent: u64,
    },
    /// A person paused the consumer's calls in its budget.
    #[error("calls are paused by this organisation's budget; unpause it to call again")]
    Paused,
    /// An amount that makes no sense (zero deposit, above the limit).
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    /// No such transaction in escrow.
    #[error("transaction {0} is not in escrow")]
    NotInEscrow(String),
    /// The journal on disk does not replay.
    /// The books changed but the database did not confirm the journal
    /// entry (it went away mid-operation): the entry is kept and written when
    /// it is back, so the operation will take effect; repeating it would
    /// repeat it.
    #[error(
        "the database did not confirm this operation ({0}); it is kept and takes effect when the \
         database is back: check before repeating it"
    )]
    Unconfirmed(String),
    #[error("the ledger journal does not replay at entry {seq}: {reason}")]
    Corrupt {
        /// The entry.
        seq: u64,
        /// Why.
        reason: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] store::Error),
}

impl Error {
    /// A journal sync's failure: the database being away after the books
    /// changed is [`Error::Unconfirmed`].
    pub(super) fn unconfirmed(error: store::Error) -> Error {
        match error {
            store::Error::Unavailable(reason) => Error::Unconfirmed(reason),
            other => Error::Store(other),
        }
    }
}
