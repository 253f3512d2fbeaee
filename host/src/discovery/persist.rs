//! The index on disk: the HNSW graph dumped by hnsw_rs beside a manifest
//! naming each graph point's key and vector digest, with checksums of every
//! file. At start the dump is verified before hnsw_rs sees it (the crate
//! exits the process on some corrupt input), reloaded, and reconciled with
//! the store's entries, which stay the source of truth: points whose entry
//! changed or went are tombstoned, entries the dump lacks are inserted. Any
//! mismatch (format, embedder, parameters, checksums) means a rebuild.
//!
//! Writing is crash-safe: a new dump goes to a fresh directory, synced, then
//! renamed over the old one.

use super::entry::Slot;
use super::graph::{HNSW_EF_CONSTRUCTION, HNSW_LAYERS, HNSW_M, Inner, new_inner};
use super::{Discovery, Entry};
use hnsw_rs::api::AnnT;
use hnsw_rs::hnswio::HnswIo;
use hnsw_rs::prelude::DistDot;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

const FORMAT: &str = "mercato-index/1";
const MANIFEST: &str = "manifest.json";
/// hnsw_rs's file name stem for the dump.
const BASENAME: &str = "graph";

#[derive(Serialize, Deserialize)]
struct Manifest {
    format: String,
    embedder: String,
    dimension: usize,
    hnsw: [usize; 3],
    /// By graph point id: the key it holds and its vector's digest, or
    /// nothing for a tombstone.
    points: Vec<Option<(String, String)>>,
    /// Dump files with their SHA-256.
    files: Vec<(String, String)>,
    /// Points the graph does not reach (scored exactly).
    orphans: Vec<usize>,
}

/// How the index came to be at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// Reloaded from the dump: its live points kept, its live points
    /// tombstoned (changed or gone from the store), and entries inserted.
    Reloaded {
        kept: usize,
        dropped: usize,
        inserted: usize,
    },
    /// Built from the entries (no usable dump: the reason).
    Rebuilt(String),
}

/// A vector's digest: its exact bytes, so a changed embedding is noticed.
fn digest(vector: &[f32]) -> String {
    let mut hasher = Sha256::new();
    for x in vector {
        hasher.update(x.to_le_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Discovery {
    /// Writes the index to `dir` (replacing what is there), crash-safe.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let _one_at_a_time = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = dir.with_extension("new");
        if fresh.exists() {
            std::fs::remove_dir_all(&fresh)?;
        }
        std::fs::create_dir_all(&fresh)?;
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let dumped = inner
            .hnsw
            .file_dump(&fresh, BASENAME)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let orphans = inner.orphans.clone();
        let points = inner
            .slots
            .iter()
            .enumerate()
            .map(|(id, s)| {
                s.as_ref()
                    .map(|s| (s.key.clone(), digest(inner.vector(id))))
            })
            .collect();
        drop(inner);
        let mut files = Vec::new();
        for suffix in ["hnsw.graph", "hnsw.data"] {
            let name = format!("{dumped}.{suffix}");
            let path = fresh.join(&name);
            std::fs::File::open(&path)?.sync_all()?;
            files.push((name, file_sha256(&path)?));
        }
        let manifest = Manifest {
            format: FORMAT.into(),
            embedder: self.embedder.name().into(),
            dimension: self.embedder.dimension(),
            hnsw: [HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_LAYERS],
            points,
            files,
            orphans,
        };
        let mut file = std::fs::File::create(fresh.join(MANIFEST))?;
        file.write_all(&serde_json::to_vec(&manifest).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        sync_dir(&fresh)?;
        // Swap: the old dump stays whole until the new one is in place.
        let old = dir.with_extension("old");
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        if dir.exists() {
            std::fs::rename(dir, &old)?;
        }
        std::fs::rename(&fresh, dir)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        Ok(())
    }

    /// Restores the index of `entries` (with their vectors) from the dump in
    /// `dir` when it is usable, else builds it; either way the result ranks
    /// exactly these entries.
    pub fn restore(&self, dir: &Path, entries: Vec<(Entry, Vec<f32>)>) -> Restored {
        // A rebuild still running would replace what is restored here.
        self.settle();
        let dimension = self.embedder.dimension();
        let mut entries: Vec<(Entry, Vec<f32>)> = entries
            .into_iter()
            .filter(|(entry, vector)| {
                let fits = vector.len() == dimension;
                if !fits {
                    tracing::error!(key = %entry.key, "discovery: a vector of the wrong dimension is not indexed");
                }
                fits
            })
            .collect();
        // One order whatever the caller's (rebuilds insert alike), one entry a key.
        entries.sort_by(|a, b| a.0.key.cmp(&b.0.key));
        entries.dedup_by(|later, earlier| later.0.key == earlier.0.key);
        let restored = match self.reload(dir, &mut entries) {
            Ok(restored) => restored,
            Err(reason) => {
                let inner = Inner::build(
                    entries
                        .drain(..)
                        .map(|(entry, vector)| (Slot::new(entry), vector))
                        .collect(),
                );
                *self.inner.write().unwrap_or_else(|p| p.into_inner()) = inner;
                Restored::Rebuilt(reason)
            }
        };
        for (entry, vector) in entries {
            self.upsert(entry, vector);
        }
        restored
    }

    /// Reloads a verified dump and takes from `entries` those it holds.
    fn reload(&self, dir: &Path, entries: &mut Vec<(Entry, Vec<f32>)>) -> Result<Restored, String> {
        let bytes = std::fs::read(dir.join(MANIFEST)).map_err(|e| format!("no dump: {e}"))?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| format!("manifest: {e}"))?;
        if manifest.format != FORMAT
            || manifest.embedder != self.embedder.name()
            || manifest.dimension != self.embedder.dimension()
            || manifest.hnsw != [HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_LAYERS]
        {
            return Err("the dump was made with another format, embedder or parameters".into());
        }
        let mut basename = None;
        for (name, sha256) in &manifest.files {
            let actual = file_sha256(&dir.join(name)).map_err(|e| format!("{name}: {e}"))?;
            if &actual != sha256 {
                return Err(format!("{name}: checksum mismatch"));
            }
            basename = name.strip_suffix(".hnsw.graph").or(basename);
        }
        let basename = basename.ok_or("the manifest names no graph")?;
        // hnsw_rs ties the index's lifetime to its loader: the loader (a
        // path and options) lives for the process. Reloads happen at start.
        let loader: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir, basename)));
        let mut hnsw = loader
            .load_hnsw::<f32, DistDot>()
            .map_err(|e| format!("reload: {e}"))?;
        if hnsw.get_nb_point() != manifest.points.len() {
            return Err("the graph and the manifest disagree on the point count".into());
        }
        hnsw.set_searching_mode(true);

        let mut wanted: HashMap<String, (Entry, Vec<f32>)> = entries
            .drain(..)
            .map(|(e, v)| (e.key.clone(), (e, v)))
            .collect();
        let mut inner: Inner = new_inner(0);
        inner.hnsw = hnsw;
        inner.orphans = manifest.orphans;
        let (mut kept, mut dropped) = (0, 0);
        for point in manifest.points {
            // Tombstones stay tombstones (until a rebuild).
            let was_live = point.is_some();
            let matched = point.and_then(|(key, vector_digest)| {
                let (_, vector) = wanted.get(&key)?;
                (digest(vector) == vector_digest)
                    .then(|| wanted.remove(&key))
                    .flatten()
            });
            match matched {
                Some((entry, vector)) => {
                    inner.place(Slot::new(entry), &vector);
                    kept += 1;
                }
                None => {
                    inner.slots.push(None);
                    inner.tombstones += 1;
                    dropped += usize::from(was_live);
                }
            }
        }
        *self.inner.write().unwrap_or_else(|p| p.into_inner()) = inner;
        let mut rest: Vec<(Entry, Vec<f32>)> = wanted.into_values().collect();
        rest.sort_by(|a, b| a.0.key.cmp(&b.0.key));
        let inserted = rest.len();
        *entries = rest;
        Ok(Restored::Reloaded {
            kept,
            dropped,
            inserted,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Embedder, Facts, HashEmbedder, Hit, Query, Retention};
    use super::*;
    use std::sync::Arc;

    const WORDS: &[&str] = &[
        "invoice",
        "weather",
        "translate",
        "summary",
        "image",
        "payment",
        "calendar",
        "email",
        "shipping",
        "stock",
        "currency",
        "recipe",
        "flight",
        "hotel",
        "music",
        "news",
    ];

    fn entry(i: usize, text: &str) -> Entry {
        Entry {
            key: format!("agent-{}.cap-{i}", i % 40),
            agent: format!("agent-{}", i % 40),
            name: format!("cap-{i}"),
            description: text.to_string(),
            category: ["data", "text", "media"][i % 3].into(),
            tags: Vec::new(),
            fields: Vec::new(),
            facts: Facts {
                expected_cost_micros: (i as u64 % 7) * 100,
                latency_ms_max: 100,
                uptime: 0.99,
                retention: Retention::None,
                encryption: true,
                jurisdictions: vec!["EU".into()],
                rating: None,
            },
        }
    }

    fn entries(n: usize) -> Vec<(Entry, Vec<f32>)> {
        let embedder = HashEmbedder::default();
        (0..n)
            .map(|i| {
                let text = format!(
                    "{} {} for {} number {i}",
                    WORDS[i % WORDS.len()],
                    WORDS[(i / 3 + 5) % WORDS.len()],
                    WORDS[(i * 7 + 2) % WORDS.len()]
                );
                let e = entry(i, &text);
                let v = embedder.embed(&e.text());
                (e, v)
            })
            .collect()
    }

    /// A small exact-scan threshold: unfiltered queries walk the graph.
    fn discovery() -> Discovery {
        Discovery::new(Arc::new(HashEmbedder::default())).with_exact_scan_max(50)
    }

    fn answers(d: &Discovery) -> Vec<Vec<(String, u32)>> {
        let mut all = Vec::new();
        for need in [
            "weather for flight",
            "invoice payment",
            "music news",
            "image",
        ] {
            for max_price_micros in [None, Some(300)] {
                let hits = d
                    .search(&Query {
                        need: need.into(),
                        max_price_micros,
                        limit: Some(10),
                        ..Query::default()
                    })
                    .expect("search");
                all.push(
                    hits.iter()
                        .map(|h: &Hit| (h.key.clone(), h.score.to_bits()))
                        .collect(),
                );
            }
        }
        all
    }

    #[test]
    fn a_saved_index_reloads_with_the_same_answers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = dir.path().join("index");
        let first = discovery();
        assert!(matches!(
            first.restore(&index, entries(400)),
            Restored::Rebuilt(_)
        ));
        first.save(&index).expect("save");
        // Saving again replaces the dump whole.
        first.save(&index).expect("save again");
        let second = discovery();
        assert_eq!(
            second.restore(&index, entries(400)),
            Restored::Reloaded {
                kept: 400,
                dropped: 0,
                inserted: 0
            }
        );
        assert_eq!(answers(&second), answers(&first));
        assert!(!dir.path().join("index.new").exists());
        assert!(!dir.path().join("index.old").exists());
    }

    /// The store is the truth: a dump older than the catalog is reconciled
    /// (changed and removed entries dropped, new ones inserted).
    #[test]
    fn a_stale_dump_is_reconciled_with_the_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = dir.path().join("index");
        let first = discovery();
        first.restore(&index, entries(200));
        first.save(&index).expect("save");

        let mut now = entries(200);
        now.remove(10); // delisted
        let changed = entry(20, "a completely new text about volcano tours");
        let vector = HashEmbedder::default().embed(&changed.text());
        now[19] = (changed, vector); // index 20 after the removal shifted it
        let added = entry(999, "glacier hiking permits");
        let vector = HashEmbedder::default().embed(&added.text());
        now.push((added, vector));

        let second = discovery();
        assert_eq!(
            second.restore(&index, now.clone()),
            Restored::Reloaded {
                kept: 198,
                dropped: 2,
                inserted: 2
            }
        );
        assert_eq!(second.len(), 200);
        let top = |need: &str| {
            second
                .search(&Query {
                    need: need.into(),
                    limit: Some(1),
                    ..Query::default()
                })
                .expect("search")
                .first()
                .map(|h| h.key.clone())
        };
        assert_eq!(top("volcano tours").as_deref(), Some("agent-20.cap-20"));
        assert_eq!(
            top("glacier hiking permits").as_deref(),
            Some("agent-39.cap-999")
        );
        assert!(second.keys_with_prefix("agent-10.cap-10").is_empty());
        // Saved and reloaded again: nothing left to reconcile.
        second.save(&index).expect("save");
        let third = discovery();
        assert_eq!(
            third.restore(&index, now),
            Restored::Reloaded {
                kept: 200,
                dropped: 0,
                inserted: 0
            }
        );
        assert_eq!(answers(&third), answers(&second));
    }

    /// A damaged or foreign dump is never handed to hnsw_rs: the index is
    /// rebuilt, with the same answers.
    #[test]
    fn a_damaged_or_foreign_dump_means_a_rebuild() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = dir.path().join("index");
        let first = discovery();
        first.restore(&index, entries(100));
        first.save(&index).expect("save");
        let graph = std::fs::read_dir(&index)
            .expect("dir")
            .map(|e| e.expect("entry").path())
            .find(|p| p.to_string_lossy().ends_with(".hnsw.graph"))
            .expect("graph file");
        let mut bytes = std::fs::read(&graph).expect("read");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&graph, &bytes).expect("write");
        let second = discovery();
        match second.restore(&index, entries(100)) {
            Restored::Rebuilt(reason) => assert!(reason.contains("checksum"), "{reason}"),
            other => panic!("reloaded a damaged dump: {other:?}"),
        }
        assert_eq!(answers(&second), answers(&first));

        second.save(&index).expect("save");
        let other = Discovery::new(Arc::new(HashEmbedder::new(128)));
        match other.restore(&index, Vec::new()) {
            Restored::Rebuilt(reason) => assert!(reason.contains("embedder"), "{reason}"),
            other => panic!("reloaded a foreign dump: {other:?}"),
        }
    }
}
