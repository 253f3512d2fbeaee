//! The vectors of recent needs: an agent that asks for the same need again
//! (a retry, a loop, the next page of its plan) is answered without running
//! the sentence-embedding model a second time. Only for a slow embedder; a
//! need is kept by its SHA-256, least recently used first out.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Needs kept: about 1.6 KB each with 384-dimensional vectors, so a few MB.
pub const NEEDS_KEPT: usize = 2_048;

type Key = [u8; 32];

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
