//! Compact keys for what the books keep per paid call until its dispute
//! window closes: a transaction id as 16 bytes instead of a heap string,
//! and organisation and allowance ids shared, one copy each, by every
//! escrow that names them (docs/BENCHMARKS.md §14).

use std::collections::HashSet;
use std::sync::Arc;

/// A transaction id as the books key it: `tx_` and 32 hexadecimal digits
/// (what the market issues) as a number, anything else as written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TxKey {
    Issued(u128),
    Other(Box<str>),
}

impl TxKey {
    /// The key every other orders after.
    pub const FIRST: TxKey = TxKey::Issued(0);

    pub fn of(transaction_id: &str) -> TxKey {
        transaction_id
            .strip_prefix("tx_")
            .filter(|hex| {
                hex.len() == 32
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
            .and_then(|hex| u128::from_str_radix(hex, 16).ok())
            .map_or_else(|| TxKey::Other(transaction_id.into()), TxKey::Issued)
    }

    /// The id as it was written.
    pub fn id(&self) -> String {
        match self {
            TxKey::Issued(n) => format!("tx_{n:032x}"),
            TxKey::Other(text) => text.to_string(),
        }
    }
}

/// One shared copy of each organisation or allowance id that an escrow
/// names; a name no escrow holds any longer is forgotten.
#[derive(Default)]
pub struct Names(HashSet<Arc<str>>);

impl Names {
    pub fn get(&mut self, name: &str) -> Arc<str> {
        if let Some(known) = self.0.get(name) {
            return known.clone();
        }
        let name: Arc<str> = name.into();
        self.0.insert(name.clone());
        name
    }

    /// Forgets the names nothing else holds any longer (called once a day:
    /// a sweep, since copies handed out for a release may outlive it).
    pub fn forget_unheld(&mut self) {
        self.0.retain(|name| Arc::strong_count(name) > 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_id_reads_back_as_written() {
        for id in [
            "tx_019af0c2b3d47c1e9a5b6c7d8e9f0a1b",
            "tx_00000000000000000000000000000000",
            "tx_ffffffffffffffffffffffffffffffff",
            // Not what the market issues: kept as text, never confused.
            "tx_019AF0C2B3D47C1E9A5B6C7D8E9F0A1B",
            "tx_019af0c2b3d47c1e9a5b6c7d8e9f0a1",
            "tx_+19af0c2b3d47c1e9a5b6c7d8e9f0a1b",
            "019af0c2b3d47c1e9a5b6c7d8e9f0a1b",
            "",
        ] {
            assert_eq!(TxKey::of(id).id(), id);
        }
        assert!(matches!(
            TxKey::of("tx_019af0c2b3d47c1e9a5b6c7d8e9f0a1b"),
            TxKey::Issued(_)
        ));
        assert!(matches!(
            TxKey::of("tx_019AF0C2B3D47C1E9A5B6C7D8E9F0A1B"),
            TxKey::Other(_)
        ));
        assert_ne!(
            TxKey::of("tx_019af0c2b3d47c1e9a5b6c7d8e9f0a1b"),
            TxKey::of("tx_019AF0C2B3D47C1E9A5B6C7D8E9F0A1B")
        );
        for id in ["tx_00000000000000000000000000000000", "", "tx_x"] {
            assert!(TxKey::FIRST <= TxKey::of(id), "{id}");
        }
    }

    #[test]
    fn a_name_is_kept_once() {
        let mut names = Names::default();
        let a = names.get("org_a");
        let again = names.get("org_a");
        assert!(Arc::ptr_eq(&a, &again));
        assert_eq!(&*names.get("org_b"), "org_b");
        assert_eq!(names.0.len(), 2);
        names.forget_unheld();
        assert_eq!(names.0.len(), 1, "org_b is held by nobody");
        drop(again);
        names.forget_unheld();
        assert_eq!(names.0.len(), 1, "org_a is still held");
        drop(a);
        names.forget_unheld();
        assert!(names.0.is_empty());
    }
}
