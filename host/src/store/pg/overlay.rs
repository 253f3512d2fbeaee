//! What this host knows of the records without asking PostgreSQL: writes not
//! yet sent (write-behind) and records read or written lately (a cache).
//!
//! A call that moves no money writes its record and index keys here and
//! answers without waiting for the database; the committer sends them within
//! `background_flush_ms`, and [`super::Postgres::sync`] sends them before it
//! returns, so the store's promise ("not durable until `sync`") is the
//! embedded one's. Reads of a key answer from here when it is known. A write
//! stays here, unevictable, until its own statement has committed.
//!
//! Other replicas write to the same database, so a record this host read
//! or wrote earlier is trusted only for [`TRUSTED`] (a key revoked on one
//! replica stops working on every other within it), except in the trees
//! whose records never change once written. Its own pending writes are
//! always trusted: they are newer than anything in the database. Writes
//! that must be atomic look only at those ([`Overlay::lookup_own`]).

use super::super::{Error, Result, Tree};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a record known from an earlier read or a settled write is
/// answered without asking the database.
pub(super) const TRUSTED: Duration = Duration::from_millis(250);

/// Whether a tree's records never change once written (components by
/// digest, published versions, vectors by text digest): known, they are
/// trusted for as long as they are kept.
fn immutable(tree: Tree) -> bool {
    matches!(tree, Tree::Components | Tree::Versions | Tree::Vectors)
}

/// Records kept at most (pending writes and cached reads together).
const ENTRIES_MAX: usize = 50_000;

/// Bytes of values kept at most.
const BYTES_MAX: usize = 64 << 20;

/// Values larger than this are not kept once written (components).
const VALUE_BYTES_CACHED_MAX: usize = 256 << 10;

/// Writes waiting for the database at most: past it (the database is away
/// for long) writes are refused as unavailable instead of piling up.
const PENDING_MAX: usize = 20_000;

type Key = (Tree, String);

struct Entry {
    /// The record, or `None` when it is known absent (removed).
    value: Option<Arc<Vec<u8>>>,
    /// The write's number while it waits for the database.
    pending: Option<u64>,
    /// When it was learnt.
    at: Instant,
    /// The overlay's write count when it was learnt.
    written: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry>,
    pending: usize,
    bytes: usize,
    /// Bumped whenever entries are evicted: a read that started before
    /// may not cache what it read (a write may have come and gone).
    evictions: u64,
    writes: u64,
}

/// A pending write as sent to the database.
pub(super) struct Write {
    pub tree: Tree,
    pub key: String,
    pub value: Option<Arc<Vec<u8>>>,
    number: u64,
}

/// What the overlay knows of a key.
pub(super) enum Lookup {
    /// The record (or its absence), as this host last wrote or read it.
    Known(Option<Arc<Vec<u8>>>),
    /// Ask the database; cache the answer with [`Overlay::remember`].
    Unknown { evictions: u64, writes: u64 },
}

#[derive(Default)]
pub(super) struct Overlay {
    state: Mutex<State>,
    /// Held while writes go to the database (a flush, a drain, a write that
    /// must reach it at once): one at a time, so that a pending write can
    /// never land after a later direct write of the same key.
    sending: Mutex<()>,
}

fn size(value: &Option<Arc<Vec<u8>>>) -> usize {
    value.as_ref().map_or(0, |v| v.len())
}

impl State {
    fn set(&mut self, key: Key, entry: Entry) {
        self.bytes += size(&entry.value);
        self.pending += usize::from(entry.pending.is_some());
        if let Some(old) = self.entries.insert(key, entry) {
            self.bytes -= size(&old.value);
            self.pending -= usize::from(old.pending.is_some());
        }
    }

    fn drop_key(&mut self, key: &Key) {
        if let Some(old) = self.entries.remove(key) {
            self.bytes -= size(&old.value);
            self.pending -= usize::from(old.pending.is_some());
        }
    }

    /// Evicts settled entries until well under the bounds.
    fn trim(&mut self) {
        if self.entries.len() <= ENTRIES_MAX && self.bytes <= BYTES_MAX {
            return;
        }
        let (entries_goal, bytes_goal) = (ENTRIES_MAX * 3 / 4, BYTES_MAX * 3 / 4);
        let mut freed = 0usize;
        let mut count = self.entries.len();
        let bytes = self.bytes;
        self.entries.retain(|_, entry| {
            let over = count > entries_goal || bytes - freed > bytes_goal;
            if over && entry.pending.is_none() {
                freed += size(&entry.value);
                count -= 1;
                false
            } else {
                true
            }
        });
        self.bytes -= freed;
        self.evictions += 1;
    }
}

impl Overlay {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the right to send writes to the database.
    pub fn sending(&self) -> MutexGuard<'_, ()> {
        self.sending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What is known of a key: a pending write, or a record learnt lately
    /// (or ever, in a tree whose records never change).
    pub fn lookup(&self, tree: Tree, key: &str) -> Lookup {
        let state = self.state();
        match state.entries.get(&(tree, key.to_string())) {
            Some(entry)
                if entry.pending.is_some() || immutable(tree) || entry.at.elapsed() < TRUSTED =>
            {
                Lookup::Known(entry.value.clone())
            }
            _ => Lookup::Unknown {
                evictions: state.evictions,
                writes: state.writes,
            },
        }
    }

    /// A pending write of this host's, if any: what an atomic write may
    /// trust without asking the database.
    pub fn lookup_own(&self, tree: Tree, key: &str) -> Lookup {
        let state = self.state();
        match state.entries.get(&(tree, key.to_string())) {
            Some(entry) if entry.pending.is_some() => Lookup::Known(entry.value.clone()),
            _ => Lookup::Unknown {
                evictions: state.evictions,
                writes: state.writes,
            },
        }
    }

    /// Caches what the database answered, unless this host wrote the key
    /// since the read began (its entry is newer) or evicted anything since.
    pub fn remember(&self, tree: Tree, key: &str, value: Option<&[u8]>, since: Lookup) {
        let Lookup::Unknown { evictions, writes } = since else {
            return;
        };
        if value.is_some_and(|v| v.len() > VALUE_BYTES_CACHED_MAX) {
            return;
        }
        let mut state = self.state();
        let key = (tree, key.to_string());
        if state.evictions != evictions
            || state
                .entries
                .get(&key)
                .is_some_and(|e| e.pending.is_some() || e.written > writes)
        {
            return;
        }
        let written = state.writes;
        state.set(
            key,
            Entry {
                value: value.map(|v| Arc::new(v.to_vec())),
                pending: None,
                at: Instant::now(),
                written,
            },
        );
        state.trim();
    }

    /// A write to send later (`None` removes the record).
    pub fn write(&self, tree: Tree, key: &str, value: Option<Vec<u8>>) -> Result<()> {
        let mut state = self.state();
        if state.pending >= PENDING_MAX {
            return Err(Error::Unavailable(format!(
                "{PENDING_MAX} writes are waiting for the database"
            )));
        }
        state.writes += 1;
        let number = state.writes;
        state.set(
            (tree, key.to_string()),
            Entry {
                value: value.map(Arc::new),
                pending: Some(number),
                at: Instant::now(),
                written: number,
            },
        );
        Ok(())
    }

    /// Records what a write sent at once left in the database.
    pub fn settled(&self, tree: Tree, key: &str, value: Option<Vec<u8>>) {
        let mut state = self.state();
        let key = (tree, key.to_string());
        state.writes += 1;
        let written = state.writes;
        match value {
            Some(v) if v.len() > VALUE_BYTES_CACHED_MAX => state.drop_key(&key),
            value => state.set(
                key,
                Entry {
                    value: value.map(Arc::new),
                    pending: None,
                    at: Instant::now(),
                    written,
                },
            ),
        }
        state.trim();
    }

    /// Forgets a key (after a write whose outcome in the database is unknown).
    pub fn forget(&self, tree: Tree, key: &str) {
        let mut state = self.state();
        state.writes += 1;
        state.drop_key(&(tree, key.to_string()));
    }

    pub fn has_pending(&self) -> bool {
        self.state().pending > 0
    }

    pub fn is_pending(&self, tree: Tree, key: &str) -> bool {
        self.state()
            .entries
            .get(&(tree, key.to_string()))
            .is_some_and(|e| e.pending.is_some())
    }

    /// The pending writes, to send (they stay pending until [`Overlay::sent`]).
    pub fn pending(&self) -> Vec<Write> {
        self.state()
            .entries
            .iter()
            .filter_map(|((tree, key), entry)| {
                entry.pending.map(|number| Write {
                    tree: *tree,
                    key: key.clone(),
                    value: entry.value.clone(),
                    number,
                })
            })
            .collect()
    }

    /// Marks writes committed: settled, unless written again meanwhile.
    pub fn sent(&self, writes: &[Write]) {
        let mut state = self.state();
        for write in writes {
            let key = (write.tree, write.key.clone());
            let Some(entry) = state.entries.get_mut(&key) else {
                continue;
            };
            if entry.pending != Some(write.number) {
                continue;
            }
            entry.pending = None;
            entry.at = Instant::now();
            let large = size(&entry.value) > VALUE_BYTES_CACHED_MAX;
            state.pending -= 1;
            if large {
                state.drop_key(&key);
            }
        }
        state.trim();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(overlay: &Overlay, key: &str) -> Option<Option<Vec<u8>>> {
        match overlay.lookup(Tree::Meta, key) {
            Lookup::Known(v) => Some(v.map(|v| v.to_vec())),
            Lookup::Unknown { .. } => None,
        }
    }

    /// A write is answered from the overlay at once and stays pending until
    /// its own statement is sent; written again meanwhile, it stays pending.
    #[test]
    fn writes_stay_pending_until_their_own_version_is_sent() {
        let overlay = Overlay::default();
        overlay
            .write(Tree::Meta, "a", Some(b"1".to_vec()))
            .expect("write");
        overlay.write(Tree::Meta, "b", None).expect("write");
        assert_eq!(value(&overlay, "a"), Some(Some(b"1".to_vec())));
        assert_eq!(value(&overlay, "b"), Some(None), "a removal is known");
        let sent = overlay.pending();
        assert_eq!(sent.len(), 2);
        overlay
            .write(Tree::Meta, "a", Some(b"2".to_vec()))
            .expect("write");
        overlay.sent(&sent);
        assert!(
            overlay.is_pending(Tree::Meta, "a"),
            "the newer write is still to send"
        );
        assert!(!overlay.is_pending(Tree::Meta, "b"));
        assert_eq!(value(&overlay, "a"), Some(Some(b"2".to_vec())));
        let again = overlay.pending();
        assert_eq!(again.len(), 1);
        overlay.sent(&again);
        assert!(!overlay.has_pending());
    }

    /// A read never overwrites what this host wrote, nor caches across an
    /// eviction; eviction keeps every pending write.
    #[test]
    fn reads_never_shadow_writes_and_eviction_keeps_pending_ones() {
        let overlay = Overlay::default();
        let before = overlay.lookup(Tree::Meta, "k");
        assert!(matches!(before, Lookup::Unknown { .. }), "unknown at first");
        overlay
            .write(Tree::Meta, "k", Some(b"new".to_vec()))
            .expect("write");
        overlay.remember(Tree::Meta, "k", Some(b"old"), before);
        assert_eq!(value(&overlay, "k"), Some(Some(b"new".to_vec())));

        for n in 0..ENTRIES_MAX + 10 {
            let since = overlay.lookup(Tree::Orgs, &format!("o{n}"));
            overlay.remember(Tree::Orgs, &format!("o{n}"), Some(b"x"), since);
        }
        assert!(overlay.state().entries.len() <= ENTRIES_MAX);
        assert!(
            overlay.is_pending(Tree::Meta, "k"),
            "pending writes are never evicted"
        );
        let (evictions, writes) = {
            let state = overlay.state();
            (state.evictions, state.writes)
        };
        let stale = Lookup::Unknown {
            evictions: evictions - 1,
            writes,
        };
        overlay.remember(Tree::Meta, "late", Some(b"x"), stale);
        assert_eq!(
            value(&overlay, "late"),
            None,
            "a read from before an eviction is not cached"
        );
    }

    /// A record learnt from the database is trusted only briefly (another
    /// replica may change it), except in a tree whose records never change;
    /// a read that began before this host's own write is not cached.
    #[test]
    fn learnt_records_are_trusted_briefly_and_never_over_newer_writes() {
        let overlay = Overlay::default();
        let since = overlay.lookup(Tree::Orgs, "o");
        overlay.remember(Tree::Orgs, "o", Some(b"v1"), since);
        let since = overlay.lookup(Tree::Versions, "a@1.0.0");
        overlay.remember(Tree::Versions, "a@1.0.0", Some(b"v"), since);
        assert!(matches!(
            overlay.lookup(Tree::Orgs, "o"),
            Lookup::Known(Some(_))
        ));
        assert!(
            matches!(overlay.lookup_own(Tree::Orgs, "o"), Lookup::Unknown { .. }),
            "an atomic write trusts only pending writes"
        );
        std::thread::sleep(TRUSTED + Duration::from_millis(20));
        assert!(matches!(
            overlay.lookup(Tree::Orgs, "o"),
            Lookup::Unknown { .. }
        ));
        assert!(matches!(
            overlay.lookup(Tree::Versions, "a@1.0.0"),
            Lookup::Known(Some(_))
        ));

        let since = overlay.lookup(Tree::Orgs, "p");
        overlay.settled(Tree::Orgs, "p", Some(b"new".to_vec()));
        overlay.remember(Tree::Orgs, "p", Some(b"old"), since);
        assert_eq!(
            match overlay.lookup(Tree::Orgs, "p") {
                Lookup::Known(v) => v.map(|v| v.to_vec()),
                Lookup::Unknown { .. } => None,
            },
            Some(b"new".to_vec())
        );
    }

    /// Writes pile up only to a bound while the database is away.
    #[test]
    fn pending_writes_are_bounded() {
        let overlay = Overlay::default();
        for n in 0..PENDING_MAX {
            overlay
                .write(Tree::Invocations, &format!("t{n}"), Some(vec![1]))
                .expect("write");
        }
        let refused = overlay.write(Tree::Invocations, "one more", Some(vec![1]));
        assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
    }
}
