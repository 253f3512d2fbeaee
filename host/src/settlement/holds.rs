//! A call's money: funds held before it (within the consumer's budget),
//! the metered cost plus the fee captured into escrow after it, the rest
//! released; a hold dropped without a capture is voided.

use super::books::{Allowance, Books};
use super::service::Journal;
use super::shared::Turns;
use super::{Event, Result, Settlement};
use crate::ledger::{self, ESCROW, Op, org_account};
use crate::pricing;
use std::sync::{Arc, Mutex};

/// Funds held for one call. Dropping it without [`Settlement::capture`]
/// voids it.
pub struct Hold {
    pub(super) books: Arc<Mutex<Books>>,
    pub(super) transaction_id: String,
    pub(super) consumer_org_id: String,
    pub(super) amount: u64,
    pub(super) allowance_id: Option<String>,
    pub(super) settled: bool,
    /// Set when the hold is journaled (a shared store): a void is too.
    pub(super) turns: Option<Arc<Turns>>,
}

impl Hold {
    /// The amount held.
    pub fn amount(&self) -> u64 {
        self.amount
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let Some(turns) = &self.turns else {
            let mut books = self.books.lock().unwrap_or_else(|p| p.into_inner());
            books.drop_hold(&self.transaction_id, &self.consumer_org_id, self.amount);
            return;
        };
        // Journaled: voided in a turn. If that fails the hold stays until
        // a sweeper expires it (its funds are only held, never moved).
        let transaction_id = self.transaction_id.clone();
        let voided = turns.turn_blocking(|books, entries| {
            let id = hold_id(&transaction_id);
            if !books.holds_pending(&id) {
                return Ok(());
            }
            let event = Event::Void { transaction_id };
            let ops = vec![Op::Void { id }];
            entries.journal(books, event, ops, books_now(), None)?;
            Ok(())
        });
        if let Err(error) = voided {
            tracing::warn!(%error, transaction = %self.transaction_id, "a hold not voided; it expires at its timeout");
        }
    }
}

/// The wall clock, for an entry journaled where the caller gave no time.
fn books_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A captured charge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// The provider's part.
    pub cost_micros: u64,
    /// The marketplace's part.
    pub fee_micros: u64,
    /// What the consumer paid.
    pub charged_micros: u64,
    /// When the provider is paid, unless disputed.
    pub release_at_ms: u64,
    /// Alert percentages of the daily budget this charge crossed.
    pub alerts: Vec<u8>,
}

pub(super) fn hold_id(transaction_id: &str) -> String {
    format!("{transaction_id}:hold")
}

impl Settlement {
    /// Holds `amount` of `consumer`'s funds for a call, within its budget
    /// and, when the call spends through one, within `allowance`.
    pub async fn hold(
        &self,
        consumer_org_id: &str,
        transaction_id: &str,
        amount: u64,
        now_ms: u64,
        allowance: Option<&Allowance>,
    ) -> Result<Hold> {
        let (consumer, transaction) = (consumer_org_id.to_string(), transaction_id.to_string());
        let allowed = allowance.cloned();
        let timeout_ms = self.rules.hold_timeout_ms;
        self.book(move |books, journal| {
            let (consumer_org_id, transaction_id) = (consumer.as_str(), transaction.as_str());
            let allowance = allowed.as_ref();
            books.roll_day(now_ms);
            books.check_budget(consumer_org_id, amount)?;
            if let Some(allowance) = allowance {
                books.check_allowance(allowance, amount)?;
            }
            let op = Op::Hold {
                id: hold_id(transaction_id),
                debit: org_account(consumer_org_id),
                credit: ESCROW.into(),
                amount,
                timeout_at_ms: now_ms.saturating_add(timeout_ms),
            };
            if let Journal::Shared(entries) = journal {
                let event = Event::Hold {
                    transaction_id: transaction_id.into(),
                    consumer_org_id: consumer_org_id.into(),
                    allowance_id: allowance.map(|a| a.id.clone()),
                };
                entries.journal(books, event, vec![op], now_ms, None)?;
                return Ok(());
            }
            books.ledger.apply(&op)?;
            books.remember_hold(op);
            books.held_today(consumer_org_id, amount);
            if let Some(allowance) = allowance {
                books.held_through(&hold_id(transaction_id), &allowance.id, amount);
            }
            Ok(())
        })
        .await?;
        Ok(Hold {
            books: self.books.clone(),
            transaction_id: transaction_id.into(),
            consumer_org_id: consumer_org_id.into(),
            amount,
            allowance_id: allowance.map(|a| a.id.clone()),
            settled: false,
            turns: self.turns.clone(),
        })
    }

    /// Captures `cost` plus the fee from a hold into escrow, releasing the
    /// rest, and writes `writes` (the transaction record) in the same atomic
    /// step. The caller syncs before reporting it.
    pub async fn capture(
        &self,
        mut hold: Hold,
        provider_org_id: &str,
        cost_micros: u64,
        now_ms: u64,
        release_at_ms: u64,
        record: (String, serde_json::Value),
    ) -> Result<Captured> {
        let fee_micros = pricing::fee_micros(cost_micros, self.rules.fee_bps);
        let mut captured = Captured {
            cost_micros,
            fee_micros,
            charged_micros: cost_micros.saturating_add(fee_micros),
            release_at_ms,
            alerts: Vec::new(),
        };
        let id = hold_id(&hold.transaction_id);
        // From here the hold is settled one way or the other: captured, or
        // (embedded) released if the capture cannot be written, or (shared)
        // left to expire.
        hold.settled = true;
        let event = Event::Capture {
            transaction_id: hold.transaction_id.clone(),
            consumer_org_id: hold.consumer_org_id.clone(),
            provider_org_id: provider_org_id.into(),
            cost_micros,
            fee_micros,
            release_at_ms,
            allowance_id: hold.allowance_id.clone(),
        };
        let consumer = hold.consumer_org_id.clone();
        let charged = captured.charged_micros;
        let held = hold.amount;
        captured.alerts = self
            .book(move |books, journal| {
                let post = Op::Post {
                    id: id.clone(),
                    amount: charged,
                };
                let hold_op = books
                    .hold_op(&id)
                    .ok_or_else(|| ledger::Error::UnknownTransfer(id.clone()))?;
                let ops = match journal {
                    // Journaled already: the capture posts it.
                    Journal::Shared(_) => vec![post],
                    // In memory: journaled with its capture as [Hold, Post].
                    Journal::Embedded(_) => {
                        books.forget_hold(&id, &consumer, held)?;
                        vec![hold_op, post]
                    }
                };
                let spent_before = books.spent(&consumer);
                journal.append(books, event, ops, now_ms, Some(record))?;
                Ok(books
                    .budgets
                    .get(&consumer)
                    .map(|budget| budget.crossed(spent_before, books.spent(&consumer)))
                    .unwrap_or_default())
            })
            .await?;
        Ok(captured)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::settlement::{Error, Rules};
    use crate::store::Store;
    use std::time::Duration;

    pub const NOW: u64 = 1_764_892_800_000;

    /// Settlement on an embedded store in `dir`: no fee, a one-hour
    /// dispute window.
    pub fn open(dir: &std::path::Path) -> (Store, Settlement) {
        let store = Store::open(dir, Duration::from_secs(60)).expect("store");
        let rules = Rules {
            fee_bps: 0,
            dispute_window_ms: 3_600_000,
            hold_timeout_ms: 60_000,
        };
        let settlement = Settlement::open(store.clone(), rules, NOW).expect("books");
        (store, settlement)
    }

    fn allowance(per_call: Option<u64>, daily: Option<u64>) -> Allowance {
        Allowance {
            id: "gr_1".into(),
            per_call_max_micros: per_call,
            daily_max_micros: daily,
        }
    }

    #[tokio::test]
    async fn an_allowance_caps_holds_and_its_spending_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, settlement) = open(dir.path());
        settlement
            .deposit("org_c", 1_000_000, "d1", NOW)
            .await
            .expect("deposit");
        let cap = allowance(Some(5_000), Some(8_000));
        // Above the per-call cap: refused, nothing held.
        assert!(matches!(
            settlement
                .hold("org_c", "tx0", 6_000, NOW, Some(&cap))
                .await,
            Err(Error::OverAllowancePerCall {
                amount: 6_000,
                limit: 5_000
            })
        ));
        let hold = settlement
            .hold("org_c", "tx1", 5_000, NOW, Some(&cap))
            .await
            .expect("hold");
        assert_eq!(settlement.allowance_spend("gr_1", NOW).held_micros, 5_000);
        // Held plus another hold would pass the daily cap.
        assert!(matches!(
            settlement
                .hold("org_c", "tx2", 4_000, NOW, Some(&cap))
                .await,
            Err(Error::AllowanceExhausted {
                limit: 8_000,
                spent: 5_000
            })
        ));
        // The organisation itself (no allowance) is not held to it.
        drop(
            settlement
                .hold("org_c", "tx3", 9_000, NOW, None)
                .await
                .expect("hold"),
        );
        settlement
            .capture(
                hold,
                "org_p",
                3_000,
                NOW,
                NOW + 3_600_000,
                ("tx1".into(), serde_json::json!({})),
            )
            .await
            .expect("capture");
        settlement.sync().await.expect("sync");
        let spend = settlement.allowance_spend("gr_1", NOW);
        assert_eq!(
            (spend.today_micros, spend.held_micros, spend.total_micros),
            (3_000, 0, 3_000)
        );
        // The settled hold is forgotten by the ledger; the deposit is kept
        // (its id is the depositor's idempotency key).
        assert_eq!(settlement.lock().ledger.transfers_kept(), 1);
        // A dropped hold gives its room back.
        drop(
            settlement
                .hold("org_c", "tx4", 5_000, NOW, Some(&cap))
                .await
                .expect("hold"),
        );
        assert_eq!(settlement.allowance_spend("gr_1", NOW).held_micros, 0);

        drop(settlement);
        store.close().await.expect("close");
        drop(store);
        let (_store, reopened) = open(dir.path());
        // Replayed, the journal leaves the same: only the deposit.
        assert_eq!(reopened.lock().ledger.transfers_kept(), 1);
        let spend = reopened.allowance_spend("gr_1", NOW);
        assert_eq!((spend.today_micros, spend.total_micros), (3_000, 3_000));
        assert!(matches!(
            reopened
                .hold(
                    "org_c",
                    "tx5",
                    5_001,
                    NOW,
                    Some(&allowance(None, Some(8_000)))
                )
                .await,
            Err(Error::AllowanceExhausted { spent: 3_000, .. })
        ));
        // The next UTC day starts from zero; the total stays.
        let tomorrow = NOW + 86_400_000;
        let spend = reopened.allowance_spend("gr_1", tomorrow);
        assert_eq!((spend.today_micros, spend.total_micros), (0, 3_000));
    }
}
