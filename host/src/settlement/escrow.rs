//! Escrow after a capture: released to the provider (and the fee to the
//! marketplace) when the dispute window closes, frozen by a dispute,
//! refunded in part or whole. Each step is one journal entry, durable
//! before it returns.

use super::{Error, EscrowState, Event, Result, Settlement, books};
use crate::ledger::{ESCROW, FEES, Op, org_account};

/// The most escrows one sweep releases: after a long stop the rest go at
/// the next sweeps.
pub const RELEASES_PER_SWEEP: usize = 10_000;

/// Escrows released under one hold of the books' lock (each a journal
/// entry and two writes to the escrow index): calls settle in between.
const RELEASES_PER_TURN: usize = 256;

impl Settlement {
    /// Releases the escrows whose window has closed, up to
    /// [`RELEASES_PER_SWEEP`], [`RELEASES_PER_TURN`] at a time: the
    /// provider is paid its cost, the marketplace its fee. Durable before it
    /// returns.
    pub async fn release_due(&self, now_ms: u64) -> Result<Vec<String>> {
        let mut released = Vec::new();
        // Bounded: every turn releases RELEASES_PER_TURN or ends the loop.
        while released.len() < RELEASES_PER_SWEEP {
            let turn = self
                .book(move |books, journal| {
                    let mut released = Vec::new();
                    for (tx, entry) in books.due(now_ms, RELEASES_PER_TURN)? {
                        let ops = payout_ops(&tx, &entry, entry.charged(), 0);
                        let event = Event::Release {
                            transaction_id: tx.clone(),
                        };
                        journal.append(books, event, ops, now_ms, None)?;
                        released.push(tx);
                    }
                    Ok(released)
                })
                .await;
            match turn {
                Ok(turn) => {
                    let last = turn.len() < RELEASES_PER_TURN;
                    released.extend(turn);
                    if last {
                        break;
                    }
                }
                Err(error) if released.is_empty() => return Err(error),
                // What earlier turns released is reported (once durable);
                // the rest waits for the next sweep.
                Err(error) => {
                    tracing::warn!(%error, "releasing escrows stopped part way");
                    break;
                }
            }
        }
        if !released.is_empty() {
            self.store
                .sync_journal()
                .await
                .map_err(Error::unconfirmed)?;
        }
        Ok(released)
    }

    /// Returns `refund_micros` of a transaction's escrow to its consumer and
    /// pays out the rest (fee first); durable before it returns.
    pub async fn refund(
        &self,
        transaction_id: &str,
        refund_micros: u64,
        now_ms: u64,
    ) -> Result<()> {
        let transaction_id = transaction_id.to_string();
        self.book(move |books, journal| {
            let transaction_id = transaction_id.as_str();
            let entry = books
                .escrowed(transaction_id)?
                .ok_or_else(|| Error::NotInEscrow(transaction_id.into()))?;
            let charged = entry.charged();
            if refund_micros > charged {
                return Err(Error::InvalidAmount(format!(
                    "a refund of at most {charged} micros"
                )));
            }
            let mut ops = Vec::new();
            if refund_micros > 0 {
                ops.push(Op::Transfer {
                    id: format!("{transaction_id}:refund"),
                    debit: ESCROW.into(),
                    credit: org_account(&entry.consumer_org_id),
                    amount: refund_micros,
                });
            }
            ops.extend(payout_ops(
                transaction_id,
                &entry,
                charged - refund_micros,
                1,
            ));
            let event = Event::Refund {
                transaction_id: transaction_id.into(),
                refund_micros,
            };
            journal.append(books, event, ops, now_ms, None)
        })
        .await?;
        self.store
            .sync_journal()
            .await
            .map_err(Error::unconfirmed)?;
        Ok(())
    }

    /// Freezes a transaction's escrow for a dispute (it is not released when
    /// the window closes); durable before it returns.
    pub async fn freeze(&self, transaction_id: &str, now_ms: u64) -> Result<()> {
        let transaction_id = transaction_id.to_string();
        self.book(move |books, journal| {
            let transaction_id = transaction_id.as_str();
            if books.escrowed(transaction_id)?.is_none() {
                return Err(Error::NotInEscrow(transaction_id.into()));
            }
            let event = Event::Dispute {
                transaction_id: transaction_id.into(),
            };
            journal.append(books, event, Vec::new(), now_ms, None)
        })
        .await?;
        self.store
            .sync_journal()
            .await
            .map_err(Error::unconfirmed)?;
        Ok(())
    }

    /// Where a transaction's money stands.
    pub fn escrow_state(&self, transaction_id: &str) -> Result<Option<EscrowState>> {
        Ok(self.lock().state_of(transaction_id)?)
    }
}

/// Pays `amount` out of a transaction's escrow: the fee first, the rest to
/// the provider.
fn payout_ops(transaction_id: &str, entry: &books::Escrowed, amount: u64, round: u8) -> Vec<Op> {
    let fee = entry.fee_micros.min(amount);
    let provider = amount - fee;
    let mut ops = Vec::new();
    if fee > 0 {
        ops.push(Op::Transfer {
            id: format!("{transaction_id}:fee:{round}"),
            debit: ESCROW.into(),
            credit: FEES.into(),
            amount: fee,
        });
    }
    if provider > 0 {
        ops.push(Op::Transfer {
            id: format!("{transaction_id}:payout:{round}"),
            debit: ESCROW.into(),
            credit: org_account(&entry.provider_org_id),
            amount: provider,
        });
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::super::holds::tests::{NOW, open};
    use crate::store::Store;

    const HOUR: u64 = 3_600_000;

    /// Captures a call of `cost` by org_c to org_p, due at `release_at_ms`.
    async fn paid(
        settlement: &super::Settlement,
        tx: &str,
        cost: u64,
        at: u64,
        release_at_ms: u64,
    ) {
        let hold = settlement
            .hold("org_c", tx, cost, at, None)
            .await
            .expect("hold");
        settlement
            .capture(
                hold,
                "org_p",
                cost,
                at,
                release_at_ms,
                (tx.into(), serde_json::json!({})),
            )
            .await
            .expect("capture");
    }

    /// Releases what is due at `now_ms`.
    async fn released(settlement: &super::Settlement, now_ms: u64) -> Vec<String> {
        settlement.release_due(now_ms).await.expect("release")
    }

    /// Settlement in `dir` with org_c funded.
    async fn funded(dir: &std::path::Path) -> (Store, super::Settlement) {
        let (store, settlement) = open(dir);
        settlement
            .deposit("org_c", 1_000_000, "d1", NOW)
            .await
            .expect("deposit");
        (store, settlement)
    }

    async fn restart(
        dir: &std::path::Path,
        store: Store,
        settlement: super::Settlement,
    ) -> (Store, super::Settlement) {
        drop(settlement);
        store.close().await.expect("close");
        drop(store);
        open(dir)
    }

    /// The escrow index lives in the store's database on the embedded
    /// store; it answers as the books in memory did, and after a restart
    /// it is rebuilt from the journal (what a crash left in it is not read).
    #[tokio::test]
    async fn escrows_wait_on_disk_and_are_rebuilt_from_the_journal() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, settlement) = funded(dir.path()).await;
        assert!(settlement.lock().escrows_on_disk());
        paid(&settlement, "tx_a", 1_000, NOW, NOW + HOUR).await;
        paid(&settlement, "tx_b", 2_000, NOW, NOW + 2 * HOUR).await;
        paid(&settlement, "tx_c", 4_000, NOW, NOW + HOUR).await;
        settlement.freeze("tx_c", NOW).await.expect("dispute");
        let state = settlement
            .escrow_state("tx_b")
            .expect("read")
            .expect("in escrow");
        assert_eq!(
            (state.charged_micros, state.release_at_ms, state.disputed),
            (2_000, NOW + 2 * HOUR, false)
        );
        assert!(
            settlement
                .escrow_state("tx_c")
                .expect("read")
                .expect("in escrow")
                .disputed
        );
        assert_eq!(settlement.escrow_state("tx_none").expect("read"), None);

        // Something a crash might have left in the index: not an escrow.
        let stale = store.derived_tree("escrow-due").expect("embedded");
        let mut key = (NOW - HOUR).to_be_bytes().to_vec();
        key.extend_from_slice(b"\x01tx_ghost");
        stale.insert(key, &[]).expect("insert");
        drop(stale);
        let (store, settlement) = restart(dir.path(), store, settlement).await;
        assert!(settlement.lock().escrows_on_disk());
        let balance = settlement.balance("org_c", NOW);
        assert_eq!(
            (balance.escrowed_out_micros, balance.spent_today_micros),
            (7_000, 7_000)
        );

        // At the first window's close only tx_a is due (tx_c is disputed).
        assert_eq!(released(&settlement, NOW + HOUR).await, ["tx_a"]);
        assert_eq!(settlement.escrow_state("tx_a").expect("read"), None);
        assert!(released(&settlement, NOW + HOUR).await.is_empty());
        settlement
            .refund("tx_c", 4_000, NOW + HOUR)
            .await
            .expect("refund");
        assert!(matches!(
            settlement.refund("tx_c", 1, NOW + HOUR).await,
            Err(super::Error::NotInEscrow(_))
        ));
        assert_eq!(released(&settlement, NOW + 3 * HOUR).await, ["tx_b"]);
        let balance = settlement.balance("org_p", NOW + 3 * HOUR);
        assert_eq!(
            (balance.available_micros, balance.escrowed_in_micros),
            (3_000, 0)
        );
        let (_store, settlement) = restart(dir.path(), store, settlement).await;
        assert!(released(&settlement, u64::MAX).await.is_empty());
        assert_eq!(settlement.balance("org_c", NOW).escrowed_out_micros, 0);
    }

    /// A sweep releases in turns at the books (the lock let go between
    /// them) until nothing more is due; a disputed escrow stays.
    #[tokio::test]
    async fn a_sweep_releases_past_one_turn() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_store, settlement) = funded(dir.path()).await;
        let calls = super::RELEASES_PER_TURN * 2 + 3;
        for n in 0..calls {
            paid(&settlement, &format!("tx_{n}"), 10, NOW, NOW + HOUR).await;
        }
        settlement.freeze("tx_7", NOW).await.expect("dispute");
        let paid_out = released(&settlement, NOW + HOUR).await;
        assert_eq!(paid_out.len(), calls - 1);
        assert!(!paid_out.contains(&"tx_7".to_string()));
        assert!(released(&settlement, NOW + HOUR).await.is_empty());
        let balance = settlement.balance("org_p", NOW + HOUR);
        assert_eq!(balance.available_micros, 10 * (calls as u64 - 1));
    }

    /// A day starts once: a clock a moment behind (another replica's, or a
    /// call that read the time before midnight) does not start the previous
    /// day again and forget today's spending.
    #[tokio::test]
    async fn the_day_only_moves_forward() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_store, settlement) = funded(dir.path()).await;
        let tomorrow = NOW + 86_400_000;
        paid(&settlement, "tx_a", 1_000, NOW, NOW + HOUR).await;
        paid(&settlement, "tx_b", 2_000, tomorrow, tomorrow + HOUR).await;
        assert_eq!(
            settlement.balance("org_c", tomorrow).spent_today_micros,
            2_000
        );
        assert_eq!(
            settlement.balance("org_c", tomorrow - 1).spent_today_micros,
            2_000
        );
        assert_eq!(
            settlement.balance("org_c", tomorrow).spent_today_micros,
            2_000
        );
    }
}
