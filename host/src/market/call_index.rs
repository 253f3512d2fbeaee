//! An organisation's calls, as consumer and as provider: the index of
//! transaction ids the pages list, kept beside the records and grouped per
//! short window of time under one key, so a busy organisation costs the
//! store one write per window instead of one per call (two index inserts
//! were a quarter of a free call's host CPU under load: docs/BENCHMARKS.md
//! §16).
//!
//! A key is `{side}/{org}/tx_{window}-{writer}-{drain}`: `window` is the
//! Unix millisecond prefix of a UUIDv7 transaction id (its first 12 hex
//! digits) floored to [`WINDOW_MS`], `writer` names the process and `drain`
//! counts its drains, so a key is written once and never read back to be
//! rewritten, and replicas on one database never touch each other's keys.
//! Such a key sorts after every transaction id of an earlier window and
//! before every id of its own (`-` sorts before any hex digit), so a page of
//! calls older than a transaction starts from that transaction's key, as it
//! did when every call had a key of its own. The value is the ids of the
//! window that drain wrote; keys of that earlier form (`{side}/{org}/{id}`,
//! value `null`) read as windows of one id.
//!
//! Ids wait in memory until [`CallIndex::drain`] writes them: from the call
//! path once the oldest has waited [`DRAIN_AFTER`], at every settlement tick
//! and when the market closes; every read merges what is still waiting.

use crate::store::{self, Store, Tree};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The width of a window of calls under one key, in milliseconds.
pub const WINDOW_MS: u64 = 16;

/// How long an id may wait in memory before a call drains the index.
pub const DRAIN_AFTER: Duration = Duration::from_millis(50);

/// Keys read from the store at a time by a page.
const KEYS_AT_A_TIME: usize = 256;

/// Most ids that may wait in memory. Only a store that refuses writes for a
/// while lets the waiting grow near it (a drain runs every 50 ms under load,
/// at every settlement tick otherwise); past it a call goes unlisted, with a
/// warning, rather than the host's memory growing without bound.
pub const MAX_WAITING: usize = 1 << 16;

/// What became of an id given to [`CallIndex::add`].
#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    /// Waiting; the oldest has not waited [`DRAIN_AFTER`] yet.
    Waiting,
    /// Waiting, and the oldest has waited long enough for the caller to
    /// drain.
    Due,
    /// Not listed: [`MAX_WAITING`] ids already wait.
    Refused,
}

/// The ids not yet written, by window (`{side}/{org}/tx_{window}`), in the
/// order their calls ended.
#[derive(Default)]
struct Waiting {
    ids: BTreeMap<String, Vec<String>>,
    /// How many ids `ids` holds.
    count: usize,
    /// When the oldest of them was added.
    since: Option<Instant>,
}

/// The index of an organisation's calls, with what waits to be written.
pub struct CallIndex {
    /// This process's part of every key it writes (8 hex digits).
    writer: String,
    waiting: Mutex<Waiting>,
    /// One drain at a time, and how many this process has made.
    draining: Mutex<u64>,
}

impl Default for CallIndex {
    fn default() -> Self {
        // The random tail of a UUIDv7: unique enough among the processes
        // that ever wrote to one store.
        let id = uuid::Uuid::now_v7().simple().to_string();
        CallIndex {
            writer: id[id.len() - 8..].to_owned(),
            waiting: Mutex::new(Waiting::default()),
            draining: Mutex::new(0),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The Unix milliseconds a `tx_<uuidv7>` id was issued at.
fn issued_ms(id: &str) -> Option<u64> {
    let hex = id.strip_prefix("tx_")?.get(..12)?;
    u64::from_str_radix(hex, 16).ok()
}

/// `tx_` and the 12 hex digits of the window that holds `ms`.
fn window_name(ms: u64) -> String {
    format!("tx_{:012x}", ms - ms % WINDOW_MS)
}

/// The first id of the window after the one that holds what `rest` (a key
/// less its prefix) indexes: every id of a later window sorts at or after
/// it. `None` for a key of an id that is not a UUIDv7 transaction id.
fn next_window(rest: &str) -> Option<String> {
    let id = rest.split_once('-').map_or(rest, |(window, _)| window);
    let ms = issued_ms(id)?;
    Some(window_name(ms - ms % WINDOW_MS + WINDOW_MS))
}

impl CallIndex {
    /// The window `id` waits under, with `prefix` (`{side}/{org}/`).
    fn window_of(prefix: &str, id: &str) -> String {
        match issued_ms(id) {
            Some(ms) => format!("{prefix}{}", window_name(ms)),
            // Not a UUIDv7 id: a key of its own, as before windows.
            None => format!("{prefix}{id}"),
        }
    }

    /// The key a drain writes a window's ids under.
    fn key(&self, window: &str, drain: u64) -> String {
        let is_window = window
            .rsplit_once('/')
            .is_some_and(|(_, rest)| rest.len() == 15 && issued_ms(rest).is_some());
        if is_window {
            format!("{window}-{}-{drain:08x}", self.writer)
        } else {
            window.to_owned()
        }
    }

    /// Lists the call `id` under `org_id` as `side`.
    pub fn add(&self, side: &str, org_id: &str, id: &str) -> Added {
        let window = Self::window_of(&format!("{side}/{org_id}/"), id);
        let mut waiting = lock(&self.waiting);
        if waiting.count >= MAX_WAITING {
            return Added::Refused;
        }
        waiting.ids.entry(window).or_default().push(id.to_owned());
        waiting.count += 1;
        if waiting.since.get_or_insert_with(Instant::now).elapsed() >= DRAIN_AFTER {
            Added::Due
        } else {
            Added::Waiting
        }
    }

    /// Writes every id waiting to `store`, under a key of this drain per
    /// window. Ids stay waiting (and listed) until their key is written; on
    /// an error the rest wait for the next drain.
    pub fn drain(&self, store: &Store) -> store::Result<()> {
        self.drain_turn(store, lock(&self.draining))
    }

    /// [`CallIndex::drain`], unless another drain is under way (which
    /// takes what waits): a call never waits for another's drain.
    pub fn try_drain(&self, store: &Store) -> store::Result<()> {
        match self.draining.try_lock() {
            Ok(turn) => self.drain_turn(store, turn),
            Err(std::sync::TryLockError::Poisoned(p)) => self.drain_turn(store, p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => Ok(()),
        }
    }

    fn drain_turn(&self, store: &Store, mut drains: MutexGuard<'_, u64>) -> store::Result<()> {
        let taken: Vec<(String, Vec<String>)> = lock(&self.waiting)
            .ids
            .iter()
            .map(|(window, ids)| (window.clone(), ids.clone()))
            .collect();
        if taken.is_empty() {
            return Ok(());
        }
        *drains += 1;
        let mut outcome = Ok(());
        let mut written = Vec::with_capacity(taken.len());
        for (window, mut ids) in taken {
            let count = ids.len();
            ids.sort_unstable();
            ids.dedup();
            if let Err(e) = store.put(Tree::ByOrg, &self.key(&window, *drains), &Some(ids)) {
                outcome = Err(e);
                break;
            }
            written.push((window, count));
        }
        // Only the ids written leave: a call that ended meanwhile appended
        // after them.
        let mut waiting = lock(&self.waiting);
        for (window, count) in written {
            if let Some(ids) = waiting.ids.get_mut(&window) {
                let gone = count.min(ids.len());
                ids.drain(..gone);
                if ids.is_empty() {
                    waiting.ids.remove(&window);
                }
                waiting.count -= gone;
            }
        }
        waiting.since = (!waiting.ids.is_empty()).then(Instant::now);
        outcome
    }

    /// Up to `limit` ids of `org_id`'s calls as `side`, newest first, older
    /// than the transaction `before` when given.
    pub fn page(
        &self,
        store: &Store,
        side: &str,
        org_id: &str,
        before: Option<&str>,
        limit: usize,
    ) -> store::Result<Vec<String>> {
        let prefix = format!("{side}/{org_id}/");
        let older = |id: &String| before.is_none_or(|b| id.as_str() < b);
        let mut found: BTreeSet<String> = lock(&self.waiting)
            .ids
            .range(prefix.clone()..)
            .take_while(|(key, _)| key.starts_with(&prefix))
            .flat_map(|(_, ids)| ids.iter().filter(|id| older(id)).cloned())
            .collect();
        let mut end = before.map(|b| format!("{prefix}{b}"));
        'keys: loop {
            let keys = store.page_before::<Option<Vec<String>>>(
                Tree::ByOrg,
                &prefix,
                end.as_deref(),
                KEYS_AT_A_TIME,
            )?;
            let done = keys.len() < KEYS_AT_A_TIME;
            for (key, ids) in keys {
                let rest = &key[prefix.len()..];
                // Keys come newest window first, and every id of a window
                // is under that window's keys: once `limit` ids are known
                // from windows after this key's, nothing older can enter.
                let settled = match next_window(rest) {
                    Some(next) => found.range(next..).nth(limit.saturating_sub(1)).is_some(),
                    None => false,
                };
                if limit == 0 || settled {
                    break 'keys;
                }
                let ids = ids.unwrap_or_else(|| vec![rest.to_owned()]);
                found.extend(ids.into_iter().filter(|id| older(id)));
                end = Some(key);
            }
            if done {
                break;
            }
        }
        Ok(found.into_iter().rev().take(limit).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id_at(ms: u64, n: u32) -> String {
        format!("tx_{ms:012x}7000{n:016x}")
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), Duration::from_millis(50)).expect("store");
        (dir, store)
    }

    #[test]
    fn window_keys_sort_between_the_ids_of_their_window_and_the_one_before() {
        let index = CallIndex::default();
        let window = CallIndex::window_of("c/o/", &id_at(1_000_005, 1));
        let key = index.key(&window, 7);
        let key = &key["c/o/".len()..];
        assert!(key.starts_with(&window_name(1_000_000)));
        assert!(key < id_at(1_000_000, 0).as_str(), "{key}");
        assert!(key > id_at(999_999, u32::MAX).as_str(), "{key}");
        // Each drain writes a key of its own.
        assert_ne!(index.key(&window, 8), index.key(&window, 7));
        assert_eq!(
            next_window(key).as_deref(),
            Some(window_name(1_000_016).as_str())
        );
        let odd = CallIndex::window_of("p/", "not-a-tx");
        assert_eq!(index.key(&odd, 1), "p/not-a-tx");
    }

    #[test]
    fn pages_read_waiting_written_and_single_keys_in_order() {
        let (_dir, store) = store();
        let index = CallIndex::default();
        // Calls before windows: a key each, value null.
        let old: Vec<String> = (0..5).map(|n| id_at(1_000 + n, 0)).collect();
        for id in &old {
            store
                .put(Tree::ByOrg, &format!("consumer/org_a/{id}"), &())
                .expect("put");
        }
        // 300 calls in windows, ending out of order within each window, by
        // two writers; half drained, half waiting.
        let other = CallIndex::default();
        let mut ids: Vec<String> = Vec::new();
        for n in 0..300u32 {
            let ms = 2_000 + u64::from(n / 7) * 3;
            let id = id_at(ms, 300 - n);
            let writer = if n % 3 == 0 { &other } else { &index };
            writer.add("consumer", "org_a", &id);
            writer.add("provider", "org_b", &id);
            ids.push(id);
            if n == 150 {
                index.drain(&store).expect("drain");
                other.drain(&store).expect("drain");
            }
        }
        other.drain(&store).expect("drain");
        // Another organisation's calls are not listed.
        index.add("consumer", "org_z", &id_at(2_500, 1));
        let mut expected: Vec<String> = old.iter().chain(&ids).cloned().collect();
        expected.sort_unstable();
        expected.reverse();

        let all = index
            .page(&store, "consumer", "org_a", None, 2_000)
            .expect("page");
        assert_eq!(all, expected);
        // Pages by cursor, of every size, meet the whole listing.
        for limit in [1, 7, 64, 299] {
            let mut paged = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page = index
                    .page(&store, "consumer", "org_a", cursor.as_deref(), limit)
                    .expect("page");
                if page.is_empty() {
                    break;
                }
                assert!(page.len() <= limit);
                cursor = page.last().cloned();
                paged.extend(page);
            }
            assert_eq!(paged, expected, "pages of {limit}");
        }
        // Drained everything: the same listing from the store alone.
        index.drain(&store).expect("drain");
        assert!(lock(&index.waiting).ids.is_empty());
        let fresh = CallIndex::default();
        assert_eq!(
            fresh
                .page(&store, "consumer", "org_a", None, 2_000)
                .expect("page"),
            expected
        );
        assert_eq!(
            fresh
                .page(&store, "provider", "org_b", None, 2_000)
                .expect("page")
                .len(),
            300
        );
        // A busy organisation: one key per window and writer, not per call.
        let keys = store
            .page_before::<Option<Vec<String>>>(Tree::ByOrg, "consumer/org_a/", None, 2_000)
            .expect("keys");
        assert!(keys.len() < 150, "{} keys for 305 calls", keys.len());
    }

    #[test]
    fn what_waits_is_bounded_and_a_drain_makes_room() {
        let (_dir, store) = store();
        let index = CallIndex::default();
        for n in 0..MAX_WAITING as u32 {
            let added = index.add("consumer", "org_a", &id_at(5_000 + u64::from(n / 64), n));
            assert_ne!(added, Added::Refused, "id {n}");
        }
        let over = id_at(9_000_000, 0);
        assert_eq!(index.add("consumer", "org_a", &over), Added::Refused);
        let listed = index
            .page(&store, "consumer", "org_a", None, 1)
            .expect("page");
        assert_ne!(listed, vec![over.clone()], "a refused id is not listed");
        index.drain(&store).expect("drain");
        assert_eq!(lock(&index.waiting).count, 0);
        assert_ne!(index.add("consumer", "org_a", &over), Added::Refused);
        let listed = index
            .page(&store, "consumer", "org_a", None, 1)
            .expect("page");
        assert_eq!(listed, vec![over]);
    }
}
