//! What the journal records: each entry's ledger operations and why.

use super::books::Budget;
use crate::ledger::Op;
use serde::{Deserialize, Serialize};

/// What one journal entry records, beside its ledger operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// Outside money credited to an organisation.
    Deposit {
        /// The organisation.
        org_id: String,
        /// Micros.
        amount_micros: u64,
    },
    /// A call's charge captured into escrow.
    Capture {
        /// Transaction.
        transaction_id: String,
        /// Payer.
        consumer_org_id: String,
        /// Payee.
        provider_org_id: String,
        /// The provider's part.
        cost_micros: u64,
        /// The marketplace's part.
        fee_micros: u64,
        /// When the dispute window closes.
        release_at_ms: u64,
        /// The allowance the call spent from (an OAuth token's cap), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        allowance_id: Option<String>,
    },
    /// Funds held for a call in flight (journaled only on a shared store:
    /// the embedded one keeps holds in memory and journals them with their
    /// capture).
    Hold {
        /// Transaction.
        transaction_id: String,
        /// Payer.
        consumer_org_id: String,
        /// The allowance the call spends from, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        allowance_id: Option<String>,
    },
    /// A journaled hold released without a capture: the call failed, or
    /// it outlived its timeout (its replica died).
    Void {
        /// Transaction.
        transaction_id: String,
    },
    /// An organisation's new budget (journaled only on a shared store, so
    /// that every replica applies it at the same point).
    Budget {
        /// The organisation.
        org_id: String,
        /// Its budget.
        budget: Budget,
    },
    /// Escrow paid out to the provider and the fee account.
    Release {
        /// Transaction.
        transaction_id: String,
    },
    /// The consumer disputed: the escrow stays until a decision.
    Dispute {
        /// Transaction.
        transaction_id: String,
    },
    /// Escrow (or part of it) returned to the consumer; the rest paid out.
    Refund {
        /// Transaction.
        transaction_id: String,
        /// Returned to the consumer.
        refund_micros: u64,
    },
}

/// One journal entry: ledger operations applied atomically, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Position in the journal.
    pub seq: u64,
    /// When, Unix milliseconds.
    pub at_ms: u64,
    /// Why.
    pub event: Event,
    /// The ledger operations, applied all or none.
    pub ops: Vec<Op>,
    /// The transaction record written with it (a capture's), restored into
    /// the store at start if the store lost it in a crash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<(String, serde_json::Value)>,
}
