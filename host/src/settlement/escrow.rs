//! Escrow after a capture: released to the provider (and the fee to the
//! marketplace) when the dispute window closes, frozen by a dispute,
//! refunded in part or whole. Each step is one journal entry, durable
//! before it returns.

use super::{Error, EscrowState, Event, Result, Settlement, books};
use crate::ledger::{ESCROW, FEES, Op, org_account};

impl Settlement {
    /// Releases every escrow whose window has closed: the provider is paid
    /// its cost, the marketplace its fee. Durable before it returns.
    pub async fn release_due(&self, now_ms: u64) -> Result<Vec<String>> {
        let released = self
            .book(move |books, journal| {
                let mut released = Vec::new();
                for (tx, entry) in books.due(now_ms) {
                    let ops = payout_ops(&tx, &entry, entry.charged(), 0);
                    let event = Event::Release {
                        transaction_id: tx.clone(),
                    };
                    journal.append(books, event, ops, now_ms, None)?;
                    released.push(tx);
                }
                Ok(released)
            })
            .await?;
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
                .escrowed(transaction_id)
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
            if books.escrowed(transaction_id).is_none() {
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
    pub fn escrow_state(&self, transaction_id: &str) -> Option<EscrowState> {
        self.lock().state_of(transaction_id)
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
