//! The escrow index: every paid call's money in escrow until its dispute
//! window closes, by transaction and by the time it falls due.
//!
//! It is derived from the journal (a capture adds an escrow, a release or
//! refund takes it away), and it grows with the paid-call rate times the
//! dispute window (24 h by default): so it lives in two derived trees on
//! the host's own disk (the embedded store's database, or a replica's own
//! beside its artifact cache), and what a host keeps in memory does not
//! grow with its paid calls (docs/BENCHMARKS.md §12e). The journal replays
//! into memory at start, and the live escrows are then written to those
//! trees afresh: they are never the truth, only the journal is, so an index
//! a crash left behind is simply rebuilt. Where no derived tree opens, the
//! index stays in memory.

use super::compact::{Names, TxKey};
use crate::store;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// One transaction's money in escrow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escrowed {
    pub consumer_org_id: Arc<str>,
    pub provider_org_id: Arc<str>,
    pub cost_micros: u64,
    pub fee_micros: u64,
    pub release_at_ms: u64,
    pub allowance_id: Option<Arc<str>>,
    /// The UTC day of its capture.
    pub day: u64,
}

impl Escrowed {
    pub fn charged(&self) -> u64 {
        self.cost_micros + self.fee_micros
    }

    /// The record as the disk index keeps it: the four numbers, then the
    /// names, each after its length (an absent allowance has none).
    fn to_bytes(&self) -> Vec<u8> {
        let names = [
            Some(&self.consumer_org_id),
            Some(&self.provider_org_id),
            self.allowance_id.as_ref(),
        ];
        let mut bytes = Vec::with_capacity(32 + 3 * 4 + 64);
        for n in [
            self.cost_micros,
            self.fee_micros,
            self.release_at_ms,
            self.day,
        ] {
            bytes.extend_from_slice(&n.to_be_bytes());
        }
        for name in names.into_iter().flatten() {
            bytes.extend_from_slice(&(name.len() as u32).to_be_bytes());
            bytes.extend_from_slice(name.as_bytes());
        }
        bytes
    }

    fn from_bytes(bytes: &[u8]) -> Option<Escrowed> {
        let number = |at: usize| -> Option<u64> {
            Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
        };
        let (cost, fee, release, day) = (number(0)?, number(8)?, number(16)?, number(24)?);
        let mut rest = &bytes[32..];
        let mut names: Vec<Arc<str>> = Vec::with_capacity(3);
        // Bounded: at most three names.
        while !rest.is_empty() && names.len() < 3 {
            let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let name = std::str::from_utf8(rest.get(4..4 + len)?).ok()?;
            names.push(name.into());
            rest = &rest[4 + len..];
        }
        let mut names = names.into_iter();
        Some(Escrowed {
            consumer_org_id: names.next()?,
            provider_org_id: names.next()?,
            cost_micros: cost,
            fee_micros: fee,
            release_at_ms: release,
            allowance_id: names.next(),
            day,
        })
    }
}

/// A transaction key as the disk index writes it.
fn key_bytes(tx: &TxKey) -> Vec<u8> {
    match tx {
        TxKey::Issued(n) => {
            let mut bytes = vec![0];
            bytes.extend_from_slice(&n.to_be_bytes());
            bytes
        }
        TxKey::Other(text) => {
            let mut bytes = vec![1];
            bytes.extend_from_slice(text.as_bytes());
            bytes
        }
    }
}

fn key_of(bytes: &[u8]) -> Option<TxKey> {
    match bytes.split_first()? {
        (0, n) => Some(TxKey::Issued(u128::from_be_bytes(n.try_into().ok()?))),
        (1, text) => Some(TxKey::Other(std::str::from_utf8(text).ok()?.into())),
        _ => None,
    }
}

/// The due-time key: the release time (big-endian, so keys sort by it),
/// then the transaction.
fn due_key(release_at_ms: u64, tx: &TxKey) -> Vec<u8> {
    let mut bytes = release_at_ms.to_be_bytes().to_vec();
    bytes.extend_from_slice(&key_bytes(tx));
    bytes
}

fn corrupt(what: &str) -> store::Error {
    store::Error::Corrupt {
        tree: "escrow index",
        key: String::new(),
        reason: format!("an unreadable {what}"),
    }
}

/// Where the index lives.
enum Place {
    Memory {
        by_tx: HashMap<TxKey, Escrowed>,
        due: BTreeSet<(u64, TxKey)>,
        names: Names,
    },
    /// Two trees of the store's database: transaction → escrow, and
    /// due-time key → nothing.
    Disk { by_tx: sled::Tree, due: sled::Tree },
}

/// The escrow index (see the module's documentation).
pub struct Escrows(Place);

impl Default for Escrows {
    fn default() -> Escrows {
        Escrows(Place::Memory {
            by_tx: HashMap::new(),
            due: BTreeSet::new(),
            names: Names::default(),
        })
    }
}

impl Escrows {
    /// Adds an escrow (a capture).
    pub fn insert(&mut self, tx: TxKey, mut escrowed: Escrowed) -> store::Result<()> {
        match &mut self.0 {
            Place::Memory { by_tx, due, names } => {
                escrowed.consumer_org_id = names.get(&escrowed.consumer_org_id);
                escrowed.provider_org_id = names.get(&escrowed.provider_org_id);
                escrowed.allowance_id = escrowed.allowance_id.map(|a| names.get(&a));
                due.insert((escrowed.release_at_ms, tx.clone()));
                by_tx.insert(tx, escrowed);
            }
            Place::Disk { by_tx, due } => {
                by_tx.insert(key_bytes(&tx), escrowed.to_bytes())?;
                due.insert(due_key(escrowed.release_at_ms, &tx), &[])?;
            }
        }
        Ok(())
    }

    /// Takes an escrow away (a release or refund); `None` if it is not in
    /// escrow.
    pub fn remove(&mut self, tx: &TxKey) -> store::Result<Option<Escrowed>> {
        match &mut self.0 {
            Place::Memory { by_tx, due, .. } => {
                let removed = by_tx.remove(tx);
                if let Some(e) = &removed {
                    due.remove(&(e.release_at_ms, tx.clone()));
                }
                Ok(removed)
            }
            Place::Disk { by_tx, due } => {
                let Some(bytes) = by_tx.remove(key_bytes(tx))? else {
                    return Ok(None);
                };
                let escrowed = Escrowed::from_bytes(&bytes).ok_or_else(|| corrupt("escrow"))?;
                due.remove(due_key(escrowed.release_at_ms, tx))?;
                Ok(Some(escrowed))
            }
        }
    }

    /// The escrow of a transaction, if it is in escrow.
    pub fn get(&self, tx: &TxKey) -> store::Result<Option<Escrowed>> {
        match &self.0 {
            Place::Memory { by_tx, .. } => Ok(by_tx.get(tx).cloned()),
            Place::Disk { by_tx, .. } => by_tx
                .get(key_bytes(tx))?
                .map(|bytes| Escrowed::from_bytes(&bytes).ok_or_else(|| corrupt("escrow")))
                .transpose(),
        }
    }

    /// Up to `limit` escrows whose window has closed at `now_ms`, earliest
    /// first, but those in `frozen` (disputed).
    pub fn due(
        &self,
        now_ms: u64,
        frozen: &HashSet<TxKey>,
        limit: usize,
    ) -> store::Result<Vec<(TxKey, Escrowed)>> {
        match &self.0 {
            Place::Memory { by_tx, due, .. } => Ok(due
                .range(..(now_ms.saturating_add(1), TxKey::FIRST))
                .filter(|(_, tx)| !frozen.contains(tx))
                .filter_map(|(_, tx)| Some((tx.clone(), by_tx.get(tx)?.clone())))
                .take(limit)
                .collect()),
            Place::Disk { by_tx, due } => {
                let mut found = Vec::new();
                for key in due.range(..now_ms.saturating_add(1).to_be_bytes().to_vec()) {
                    let (key, _) = key?;
                    let tx = key
                        .get(8..)
                        .and_then(key_of)
                        .ok_or_else(|| corrupt("key"))?;
                    if frozen.contains(&tx) {
                        continue;
                    }
                    let bytes = by_tx
                        .get(key_bytes(&tx))?
                        .ok_or_else(|| corrupt("due key"))?;
                    let escrowed = Escrowed::from_bytes(&bytes).ok_or_else(|| corrupt("escrow"))?;
                    found.push((tx, escrowed));
                    if found.len() == limit {
                        break;
                    }
                }
                Ok(found)
            }
        }
    }

    /// Moves the index to two trees of the store's database, emptied first
    /// (whatever they held is rebuilt from the journal replayed into memory).
    pub fn move_to_disk(&mut self, by_tx: sled::Tree, due: sled::Tree) -> store::Result<()> {
        by_tx.clear()?;
        due.clear()?;
        if let Place::Memory { by_tx: kept, .. } = &self.0 {
            let (mut escrows, mut times) = (sled::Batch::default(), sled::Batch::default());
            for (tx, escrowed) in kept {
                escrows.insert(key_bytes(tx), escrowed.to_bytes());
                times.insert(due_key(escrowed.release_at_ms, tx), &[]);
            }
            by_tx.apply_batch(escrows)?;
            due.apply_batch(times)?;
        }
        self.0 = Place::Disk { by_tx, due };
        Ok(())
    }

    /// Whether the index lives on disk.
    #[cfg(test)]
    pub fn on_disk(&self) -> bool {
        matches!(self.0, Place::Disk { .. })
    }

    /// Forgets organisation names no escrow in memory holds any longer.
    pub fn forget_unheld_names(&mut self) {
        if let Place::Memory { names, .. } = &mut self.0 {
            names.forget_unheld();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escrowed(release_at_ms: u64, allowance: Option<&str>) -> Escrowed {
        Escrowed {
            consumer_org_id: "org_buyer".into(),
            provider_org_id: "org_seller".into(),
            cost_micros: 1_000,
            fee_micros: 50,
            release_at_ms,
            allowance_id: allowance.map(Into::into),
            day: release_at_ms / 86_400_000,
        }
    }

    #[test]
    fn an_escrow_reads_back_as_written() {
        for e in [escrowed(7, None), escrowed(u64::MAX, Some("gr_1"))] {
            assert_eq!(Escrowed::from_bytes(&e.to_bytes()), Some(e.clone()));
            let bytes = e.to_bytes();
            for cut in 0..bytes.len() {
                // Cut short, a record does not read, unless the cut fell
                // exactly before its allowance (then read without it).
                match Escrowed::from_bytes(&bytes[..cut]) {
                    None => {}
                    Some(read) => assert!(
                        e.allowance_id.is_some() && read.allowance_id.is_none(),
                        "cut at {cut}"
                    ),
                }
            }
        }
        for tx in [
            TxKey::of("tx_019af0c2b3d47c1e9a5b6c7d8e9f0a1b"),
            TxKey::of("odd"),
        ] {
            assert_eq!(key_of(&key_bytes(&tx)), Some(tx));
        }
    }

    /// The same steps on both places give the same answers; the disk one
    /// keeps what it was moved with.
    #[test]
    fn memory_and_disk_agree() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tx = |n: u128| TxKey::Issued(n);
        let mut memory = Escrows::default();
        let mut disk = Escrows::default();
        disk.insert(tx(99), escrowed(1, None)).unwrap();
        let stale = db.open_tree("due").unwrap();
        stale.insert(due_key(0, &tx(42)), &[]).unwrap();
        disk.move_to_disk(db.open_tree("by_tx").unwrap(), stale)
            .unwrap();
        assert!(disk.on_disk());
        memory.insert(tx(99), escrowed(1, None)).unwrap();
        for (n, release) in [(1, 300), (2, 100), (3, 200), (4, 100)] {
            for index in [&mut memory, &mut disk] {
                index
                    .insert(tx(n), escrowed(release, (n == 3).then_some("gr_1")))
                    .unwrap();
            }
        }
        let frozen: HashSet<TxKey> = [tx(4)].into();
        for index in [&memory, &disk] {
            let due: Vec<(TxKey, u64)> = index
                .due(200, &frozen, usize::MAX)
                .unwrap()
                .into_iter()
                .map(|(tx, e)| (tx, e.release_at_ms))
                .collect();
            assert_eq!(due, [(tx(99), 1), (tx(2), 100), (tx(3), 200)]);
            let first: Vec<TxKey> = index
                .due(200, &frozen, 2)
                .unwrap()
                .into_iter()
                .map(|(tx, _)| tx)
                .collect();
            assert_eq!(first, [tx(99), tx(2)]);
            assert_eq!(
                index.get(&tx(3)).unwrap().unwrap().allowance_id.as_deref(),
                Some("gr_1")
            );
        }
        for index in [&mut memory, &mut disk] {
            assert_eq!(index.remove(&tx(2)).unwrap().unwrap().release_at_ms, 100);
            assert_eq!(index.remove(&tx(2)).unwrap(), None);
            assert_eq!(index.get(&tx(2)).unwrap(), None);
            let left: Vec<TxKey> = index
                .due(u64::MAX, &HashSet::new(), usize::MAX)
                .unwrap()
                .into_iter()
                .map(|(tx, _)| tx)
                .collect();
            assert_eq!(left, [tx(99), tx(4), tx(3), tx(1)]);
        }
    }
}
