//! Copying a marketplace from one store to another (`mercato store
//! migrate`): every record but compiled artifacts (a cache each host
//! rebuilds), then the money journal in order.

use super::{Error, Result, Store, Tree};

/// What a copy moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    /// Records, over every tree.
    pub records: usize,
    /// Journal entries.
    pub journal_entries: usize,
}

/// Copies `from` (with the journal records it was opened with) into `to`,
/// which must hold nothing yet; durable when it returns.
pub async fn copy(from: &Store, journal: &[Vec<u8>], to: &Store) -> Result<Copied> {
    let occupied: Vec<&str> = Tree::ALL
        .iter()
        .filter(|tree| to.len(**tree) > 0)
        .map(|tree| tree.name())
        .collect();
    if !occupied.is_empty() || !to.journal_snapshot().is_empty() {
        return Err(Error::Postgres(format!(
            "the target already holds a marketplace (records in {}): migrate into an empty database",
            if occupied.is_empty() {
                "the journal".to_string()
            } else {
                occupied.join(", ")
            }
        )));
    }
    let mut records = 0;
    for tree in Tree::ALL.into_iter().filter(|t| *t != Tree::Artifacts) {
        for (key, value) in from.scan_prefix_bytes(tree, "")? {
            to.put_bytes(tree, &key, &value)?;
            records += 1;
        }
    }
    for record in journal {
        to.append_journal(record)?;
    }
    to.sync_journal().await?;
    to.sync().await?;
    Ok(Copied {
        records,
        journal_entries: journal.len(),
    })
}
