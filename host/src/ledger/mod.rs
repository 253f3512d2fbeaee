//! The ledger: double-entry accounting in integer micros, pure.
//!
//! Owns: accounts and transfers, modelled on TigerBeetle's: every movement
//! debits one account and credits another by the same amount; a two-phase
//! transfer is first *pending* (a hold with a timeout), then *posted* (an
//! amount at most the hold, the rest released) or *voided*, exactly once.
//!
//! Does not know about: time (callers pass `now_ms`), storage (the
//! settlement module journals every [`Op`] before it reports it), HTTP.
//!
//! Invariants, checked on every operation and by a property test:
//! - Conservation: the posted balances of all accounts sum to zero, and so do
//!   the pending ones (the `world` account, where deposits come from, is the
//!   only one that may go below zero).
//! - An organisation account never goes below zero: a hold or transfer that
//!   would debit more than its available balance is refused.
//! - A transfer id is used once; a pending transfer is settled (posted,
//!   voided or expired) once.
//! - Arithmetic is checked; nothing silently wraps.

#[cfg(test)]
mod proptests;

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// The ledger's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an operation was refused (the ledger is unchanged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum Error {
    /// The debit would take an account below zero.
    #[error("account {account} has {available} micros available; {amount} needed")]
    InsufficientFunds {
        /// The account.
        account: String,
        /// What it has.
        available: u64,
        /// What was asked.
        amount: u64,
    },
    /// A transfer with this id exists.
    #[error("transfer {0} exists")]
    TransferExists(String),
    /// No transfer with this id.
    #[error("no transfer {0}")]
    UnknownTransfer(String),
    /// The transfer is not pending (already posted, voided or expired).
    #[error("transfer {id} is already {state:?}")]
    AlreadySettled {
        /// The transfer.
        id: String,
        /// Its state.
        state: State,
    },
    /// A post larger than the hold.
    #[error("cannot post {amount} micros against a hold of {held}")]
    PostExceedsHold {
        /// Asked.
        amount: u64,
        /// Held.
        held: u64,
    },
    /// Expiring a hold before its timeout.
    #[error("transfer {0} has not timed out")]
    NotExpired(String),
    /// Forgetting a transfer that is still pending.
    #[error("transfer {0} is still pending")]
    StillPending(String),
    /// Debit and credit are the same account, or the amount is zero.
    #[error("a transfer moves a positive amount between two different accounts")]
    Invalid,
    /// A sum would overflow.
    #[error("amount overflow")]
    Overflow,
}

/// An account id: `org:<org_id>`, [`ESCROW`], [`FEES`] or [`WORLD`].
pub type AccountId = String;

/// Where captured payments wait for their dispute window to close.
pub const ESCROW: &str = "escrow";
/// The marketplace's fee income.
pub const FEES: &str = "fees";
/// Outside money: deposits debit it. The only account that may go negative.
pub const WORLD: &str = "world";

/// The account of an organisation.
pub fn org_account(org_id: &str) -> AccountId {
    format!("org:{org_id}")
}

/// Totals of one account.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Posted debits.
    pub debits_posted: u64,
    /// Posted credits.
    pub credits_posted: u64,
    /// Debits held by pending transfers.
    pub debits_pending: u64,
    /// Credits promised by pending transfers.
    pub credits_pending: u64,
}

impl Account {
    /// What can be spent: posted credits less posted and pending debits.
    pub fn available(&self) -> i128 {
        i128::from(self.credits_posted)
            - i128::from(self.debits_posted)
            - i128::from(self.debits_pending)
    }
}

/// Where a transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    /// A hold, until `timeout_at_ms`.
    Pending {
        /// When it may be expired.
        timeout_at_ms: u64,
    },
    /// Moved (immediate transfers, and posted holds with the amount posted).
    Posted {
        /// Amount moved.
        amount: u64,
    },
    /// Released by the caller.
    Voided,
    /// Released after its timeout.
    Expired,
}

/// One transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// Debited account.
    pub debit: AccountId,
    /// Credited account.
    pub credit: AccountId,
    /// Amount held or moved.
    pub amount: u64,
    /// State.
    pub state: State,
}

/// One operation, as journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Moves `amount` now.
    Transfer {
        /// Transfer id.
        id: String,
        /// Debited account.
        debit: AccountId,
        /// Credited account.
        credit: AccountId,
        /// Micros.
        amount: u64,
    },
    /// Holds `amount` until posted, voided or expired.
    Hold {
        /// Transfer id.
        id: String,
        /// Debited account.
        debit: AccountId,
        /// Credited account.
        credit: AccountId,
        /// Micros.
        amount: u64,
        /// When it may be expired.
        timeout_at_ms: u64,
    },
    /// Posts `amount` (≤ the hold) of a pending transfer; releases the rest.
    Post {
        /// The pending transfer.
        id: String,
        /// Micros to move.
        amount: u64,
    },
    /// Releases a pending transfer.
    Void {
        /// The pending transfer.
        id: String,
    },
    /// Releases a pending transfer past its timeout.
    Expire {
        /// The pending transfer.
        id: String,
        /// The time it is expired at.
        now_ms: u64,
    },
}

/// All accounts and transfers.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    accounts: BTreeMap<AccountId, Account>,
    transfers: HashMap<String, Transfer>,
}

fn add(a: u64, b: u64) -> Result<u64> {
    a.checked_add(b).ok_or(Error::Overflow)
}

fn sub(a: u64, b: u64) -> Result<u64> {
    a.checked_sub(b).ok_or(Error::Overflow)
}

impl Ledger {
    /// An account's totals (zero if it never moved).
    pub fn account(&self, id: &str) -> Account {
        self.accounts.get(id).copied().unwrap_or_default()
    }

    /// A transfer.
    pub fn transfer(&self, id: &str) -> Option<&Transfer> {
        self.transfers.get(id)
    }

    /// Every account, by id.
    pub fn accounts(&self) -> impl Iterator<Item = (&AccountId, &Account)> {
        self.accounts.iter()
    }

    /// Pending transfers whose timeout has passed at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> Vec<String> {
        self.transfers
            .iter()
            .filter(|(_, t)| matches!(t.state, State::Pending { timeout_at_ms } if timeout_at_ms <= now_ms))
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn check_new(&self, id: &str, debit: &str, credit: &str, amount: u64) -> Result<()> {
        if self.transfers.contains_key(id) {
            return Err(Error::TransferExists(id.into()));
        }
        if amount == 0 || debit == credit {
            return Err(Error::Invalid);
        }
        if debit != WORLD {
            let available = self.account(debit).available();
            if available < i128::from(amount) {
                return Err(Error::InsufficientFunds {
                    account: debit.into(),
                    available: u64::try_from(available.max(0)).unwrap_or(0),
                    amount,
                });
            }
        }
        Ok(())
    }

    fn pending(&self, id: &str) -> Result<&Transfer> {
        let transfer = self
            .transfers
            .get(id)
            .ok_or_else(|| Error::UnknownTransfer(id.into()))?;
        match transfer.state {
            State::Pending { .. } => Ok(transfer),
            state => Err(Error::AlreadySettled {
                id: id.into(),
                state,
            }),
        }
    }

    /// Applies one operation, or refuses it and changes nothing.
    pub fn apply(&mut self, op: &Op) -> Result<()> {
        match op {
            Op::Transfer {
                id,
                debit,
                credit,
                amount,
            } => self.open(
                id,
                debit,
                credit,
                *amount,
                State::Posted { amount: *amount },
            )?,
            Op::Hold {
                id,
                debit,
                credit,
                amount,
                timeout_at_ms,
            } => self.open(
                id,
                debit,
                credit,
                *amount,
                State::Pending {
                    timeout_at_ms: *timeout_at_ms,
                },
            )?,
            Op::Post { id, amount } => {
                let t = self.pending(id)?.clone();
                if *amount > t.amount {
                    return Err(Error::PostExceedsHold {
                        amount: *amount,
                        held: t.amount,
                    });
                }
                let debit = self.account(&t.debit);
                let credit = self.account(&t.credit);
                let debit = Account {
                    debits_pending: sub(debit.debits_pending, t.amount)?,
                    debits_posted: add(debit.debits_posted, *amount)?,
                    ..debit
                };
                let credit = Account {
                    credits_pending: sub(credit.credits_pending, t.amount)?,
                    credits_posted: add(credit.credits_posted, *amount)?,
                    ..credit
                };
                self.accounts.insert(t.debit.clone(), debit);
                self.accounts.insert(t.credit.clone(), credit);
                self.set_state(id, State::Posted { amount: *amount });
            }
            Op::Void { id } => self.release(id, State::Voided)?,
            Op::Expire { id, now_ms } => {
                if let State::Pending { timeout_at_ms } = self.pending(id)?.state
                    && timeout_at_ms > *now_ms
                {
                    return Err(Error::NotExpired(id.clone()));
                }
                self.release(id, State::Expired)?;
            }
        }
        Ok(())
    }

    /// Records a new transfer: posted at once, or pending (a hold).
    fn open(
        &mut self,
        id: &str,
        debit: &str,
        credit: &str,
        amount: u64,
        state: State,
    ) -> Result<()> {
        self.check_new(id, debit, credit, amount)?;
        let (d, c) = (self.account(debit), self.account(credit));
        let (d, c) = if matches!(state, State::Pending { .. }) {
            (
                Account {
                    debits_pending: add(d.debits_pending, amount)?,
                    ..d
                },
                Account {
                    credits_pending: add(c.credits_pending, amount)?,
                    ..c
                },
            )
        } else {
            (
                Account {
                    debits_posted: add(d.debits_posted, amount)?,
                    ..d
                },
                Account {
                    credits_posted: add(c.credits_posted, amount)?,
                    ..c
                },
            )
        };
        self.accounts.insert(debit.to_string(), d);
        self.accounts.insert(credit.to_string(), c);
        self.transfers.insert(
            id.to_string(),
            Transfer {
                debit: debit.to_string(),
                credit: credit.to_string(),
                amount,
                state,
            },
        );
        Ok(())
    }

    /// Applies every operation or none.
    pub fn apply_all(&mut self, ops: &[Op]) -> Result<()> {
        if let [op] = ops {
            return self.apply(op);
        }
        let mut scratch = self.clone_touched(ops);
        for op in ops {
            scratch.apply(op)?;
        }
        self.accounts.extend(scratch.accounts);
        self.transfers.extend(scratch.transfers);
        Ok(())
    }

    /// Checks that every operation would apply, in order, changing nothing.
    pub fn check_all(&self, ops: &[Op]) -> Result<()> {
        let mut scratch = self.clone_touched(ops);
        for op in ops {
            scratch.apply(op)?;
        }
        Ok(())
    }

    /// Removes a pending transfer as if it had never been made: for holds
    /// that live in memory only and are journaled with their settlement.
    pub fn forget_pending(&mut self, id: &str) -> Result<()> {
        self.release(id, State::Voided)?;
        self.transfers.remove(id);
        Ok(())
    }

    /// Forgets a transfer that is no longer pending (posted, voided or
    /// expired): its effect stays in the accounts, only its record goes, so
    /// its id is no longer refused as existing. For transfers whose ids are
    /// unique by construction and whose second application is refused
    /// elsewhere (a call's hold, payouts, fees and refunds, which settlement
    /// guards by its escrow index); externally named ones (deposits, whose
    /// ids are idempotency keys) are kept. Without it the ledger would keep
    /// a record of every transfer it ever applied.
    pub fn forget_settled(&mut self, id: &str) -> Result<()> {
        match self.transfers.get(id).map(|t| t.state) {
            None => Err(Error::UnknownTransfer(id.into())),
            Some(State::Pending { .. }) => Err(Error::StillPending(id.into())),
            Some(_) => {
                self.transfers.remove(id);
                Ok(())
            }
        }
    }

    /// How many transfers the ledger keeps a record of.
    pub fn transfers_kept(&self) -> usize {
        self.transfers.len()
    }

    /// A ledger holding only what `ops` can touch (for all-or-nothing batches).
    fn clone_touched(&self, ops: &[Op]) -> Ledger {
        let mut out = Ledger::default();
        let mut account = |id: &str| {
            if let Some(a) = self.accounts.get(id) {
                out.accounts.insert(id.to_string(), *a);
            }
        };
        let mut transfer_ids = Vec::new();
        for op in ops {
            match op {
                Op::Transfer { debit, credit, .. } | Op::Hold { debit, credit, .. } => {
                    account(debit);
                    account(credit);
                }
                Op::Post { id, .. } | Op::Void { id } | Op::Expire { id, .. } => {
                    if let Some(t) = self.transfers.get(id) {
                        account(&t.debit);
                        account(&t.credit);
                    }
                    transfer_ids.push(id.clone());
                }
            }
        }
        for op in ops {
            if let Op::Transfer { id, .. } | Op::Hold { id, .. } = op
                && let Some(t) = self.transfers.get(id)
            {
                out.transfers.insert(id.clone(), t.clone());
            }
        }
        for id in transfer_ids {
            if let Some(t) = self.transfers.get(&id) {
                out.transfers.insert(id, t.clone());
            }
        }
        out
    }

    fn release(&mut self, id: &str, state: State) -> Result<()> {
        let t = self.pending(id)?.clone();
        let debit = self.account(&t.debit);
        let credit = self.account(&t.credit);
        let debit = Account {
            debits_pending: sub(debit.debits_pending, t.amount)?,
            ..debit
        };
        let credit = Account {
            credits_pending: sub(credit.credits_pending, t.amount)?,
            ..credit
        };
        self.accounts.insert(t.debit.clone(), debit);
        self.accounts.insert(t.credit.clone(), credit);
        self.set_state(id, state);
        Ok(())
    }

    fn set_state(&mut self, id: &str, state: State) {
        if let Some(t) = self.transfers.get_mut(id) {
            t.state = state;
        }
    }

    /// Checks conservation and non-negativity; `Err` names the broken rule.
    /// Cheap enough for tests and start-up, not for every call.
    pub fn check_invariants(&self) -> std::result::Result<(), String> {
        let (mut posted, mut pending) = (0i128, 0i128);
        for (id, a) in &self.accounts {
            posted += i128::from(a.credits_posted) - i128::from(a.debits_posted);
            pending += i128::from(a.credits_pending) - i128::from(a.debits_pending);
            if id != WORLD && a.available() < 0 {
                return Err(format!("{id} is overdrawn: {a:?}"));
            }
        }
        if posted != 0 || pending != 0 {
            return Err(format!("not conserved: posted {posted}, pending {pending}"));
        }
        Ok(())
    }
}
