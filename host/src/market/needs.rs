//! The sentence-embedding model's share of the host, for discovery.
//!
//! - The vectors of recent needs: an agent that asks for the same need again
//!   (a retry, a loop, the next page of its plan) is answered without
//!   running the model a second time. A need is kept by its SHA-256, least
//!   recently used first out.
//! - Turns at the model: a need costs the model tens of milliseconds of both
//!   cores, and `/v1/discover` is open to anyone, so one asker (an
//!   organisation, or an address when the caller gives no key) has at most
//!   [`ASKER_WAITING_MAX`] needs embedded or waiting at once, and the host
//!   [`WAITING_MAX`] in all; past either the need is refused with a time to
//!   retry, so a flood of new needs waits on its sender, not on everyone.
//!
//! Only for a slow embedder (the built-in one takes microseconds).

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Needs kept: 1.5 KB a vector at 384 dimensions, one for the need and one
/// per sentence of a need of several (six at most), so a few
/// MB and at most about 21 MB.
pub const NEEDS_KEPT: usize = 2_048;

type Key = [u8; 32];

/// Needs one asker may have embedded or waiting for the model at once.
pub const ASKER_WAITING_MAX: usize = 2;
/// Needs embedded or waiting for the model at once, all askers together.
pub const WAITING_MAX: usize = 64;

/// Who waits for the model.
#[derive(Default)]
pub struct ModelTurns {
    waiting: Mutex<HashMap<String, usize>>,
}

/// Why a need may not wait for the model.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The asker already has its share waiting.
    Asker,
    /// The host has every turn taken.
    Host,
}

/// A need's place at the model, given back when dropped.
pub struct Turn<'a> {
    turns: &'a ModelTurns,
    asker: String,
}

impl ModelTurns {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.waiting.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for one of `asker`'s needs, if it and the host have room.
    pub fn enter(&self, asker: &str) -> Result<Turn<'_>, Refused> {
        let mut waiting = self.lock();
        if waiting.values().sum::<usize>() >= WAITING_MAX {
            return Err(Refused::Host);
        }
        let mine = waiting.entry(asker.to_string()).or_default();
        if *mine >= ASKER_WAITING_MAX {
            return Err(Refused::Asker);
        }
        *mine += 1;
        Ok(Turn {
            turns: self,
            asker: asker.to_string(),
        })
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut waiting = self.turns.lock();
        if let Some(mine) = waiting.get_mut(&self.asker) {
            *mine -= 1;
            if *mine == 0 {
                waiting.remove(&self.asker);
            }
        }
    }
}

#[derive(Default)]
struct Kept {
    /// A need's vector and when it was last used.
    by_need: HashMap<Key, (u64, Arc<[f32]>)>,
    /// Last use → need, oldest first.
    by_use: BTreeMap<u64, Key>,
    clock: u64,
}

/// The cache.
pub struct NeedVectors {
    kept: Mutex<Kept>,
    capacity: usize,
}

impl NeedVectors {
    pub fn new(capacity: usize) -> NeedVectors {
        NeedVectors {
            kept: Mutex::new(Kept::default()),
            capacity: capacity.max(1),
        }
    }

    fn key(need: &str) -> Key {
        Sha256::digest(need.as_bytes()).into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The vector of `need`, if kept (it becomes the most recently used).
    pub fn get(&self, need: &str) -> Option<Arc<[f32]>> {
        let key = Self::key(need);
        let mut kept = self.lock();
        kept.clock += 1;
        let now = kept.clock;
        let (used, vector) = kept.by_need.get_mut(&key)?;
        let before = std::mem::replace(used, now);
        let vector = vector.clone();
        kept.by_use.remove(&before);
        kept.by_use.insert(now, key);
        Some(vector)
    }

    /// Keeps `need`'s vector, forgetting the least recently used past the
    /// capacity.
    pub fn put(&self, need: &str, vector: Arc<[f32]>) {
        let key = Self::key(need);
        let mut kept = self.lock();
        kept.clock += 1;
        let now = kept.clock;
        if let Some((before, _)) = kept.by_need.insert(key, (now, vector)) {
            kept.by_use.remove(&before);
        }
        kept.by_use.insert(now, key);
        while kept.by_need.len() > self.capacity {
            let Some((_, oldest)) = kept.by_use.pop_first() else {
                break;
            };
            kept.by_need.remove(&oldest);
        }
    }

    /// Needs kept now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().by_need.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector(x: f32) -> Arc<[f32]> {
        Arc::from(vec![x, 0.0])
    }

    #[test]
    fn the_least_recently_used_need_goes_first() {
        let cache = NeedVectors::new(2);
        cache.put("a", vector(1.0));
        cache.put("b", vector(2.0));
        // "a" used again: "b" is now the oldest.
        assert_eq!(cache.get("a").as_deref(), Some(&[1.0, 0.0][..]));
        cache.put("c", vector(3.0));
        assert_eq!(cache.len(), 2);
        assert!(cache.get("b").is_none());
        assert_eq!(cache.get("a").as_deref(), Some(&[1.0, 0.0][..]));
        assert_eq!(cache.get("c").as_deref(), Some(&[3.0, 0.0][..]));
        // Putting a kept need again replaces it without growing.
        cache.put("c", vector(4.0));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get("c").as_deref(), Some(&[4.0, 0.0][..]));
        assert!(cache.get("A").is_none(), "needs are kept as written");
    }

    #[test]
    fn an_asker_waits_for_at_most_its_share_and_the_host_for_its_turns() {
        let turns = ModelTurns::default();
        let first = turns.enter("org:a").expect("a's first");
        let second = turns.enter("org:a").expect("a's second");
        assert_eq!(turns.enter("org:a").err(), Some(Refused::Asker));
        // Another asker is not held back by a's share.
        let other = turns.enter("ip:192.0.2.1").expect("another asker");
        drop(first);
        let again = turns.enter("org:a").expect("a's turn came back");
        drop((second, other, again));
        assert!(turns.lock().is_empty(), "every turn given back");
        // The host's turns: WAITING_MAX in all, whoever asks.
        let held: Vec<Turn<'_>> = (0..WAITING_MAX)
            .map(|i| turns.enter(&format!("ip:{i}")).expect("room"))
            .collect();
        assert_eq!(turns.enter("org:b").err(), Some(Refused::Host));
        drop(held);
        assert!(turns.enter("org:b").is_ok());
    }

    #[test]
    fn it_never_holds_more_than_its_capacity() {
        let cache = NeedVectors::new(3);
        for i in 0..100 {
            cache.put(&format!("need {i}"), vector(i as f32));
            assert!(cache.len() <= 3);
        }
        let kept = cache.lock();
        assert_eq!(kept.by_use.len(), kept.by_need.len());
        drop(kept);
        for i in 97..100 {
            assert!(cache.get(&format!("need {i}")).is_some(), "{i}");
        }
    }
}
