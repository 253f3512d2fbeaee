//! The PostgreSQL engine: the same trees and journal as the embedded one, in
//! tables (`schema.rs`), reached through connections on their own threads
//! (`pool.rs`).
//!
//! Durability: a plain write (`put`, `remove`) waits in the overlay
//! (`overlay.rs`) and is sent by the next flush; [`Postgres::sync`] and the
//! journal's flush send everything pending in one synchronous commit
//! (`flush.rs`), which also makes every earlier asynchronous commit durable
//! (the server's log is sequential). Writes that must be atomic in the
//! database (insert-if-absent, compare-and-swap, take, publish) are sent at
//! once, committed asynchronously, after any pending write of their keys.
//! Concurrent flushes share one commit through the same group commit as the
//! embedded engine.
//!
//! Many writers: any number of hosts (replicas) share one database. The
//! money journal is appended to in turns (`turn.rs`): a turn takes a
//! transaction-scoped advisory lock, reads what the others appended since
//! this host's last entry, and appends after them, so every replica applies
//! one order of entries. What this host remembers of records it did not
//! just write is trusted only briefly (`overlay.rs`).

mod database;
mod feed;
mod flush;
mod overlay;
mod pool;
mod schema;
mod turn;

use super::commit::GroupCommit;
use super::{Error, Raw, Result, Tree};
use overlay::Lookup;
use pool::{Conn, Pool};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use database::Database;
pub(super) use turn::Turn;

/// Connections in the pool.
const CONNECTIONS: usize = 8;
/// The page cache of the database for derived state.
const DERIVED_CACHE_BYTES: u64 = 32 << 20;

/// Settings of every pooled connection (the waits bound a journal turn's).
pub(super) const SESSION: &str = "SET synchronous_commit = off; SET statement_timeout = '30s'; \
                       SET lock_timeout = '5s'; SET idle_in_transaction_session_timeout = '5s'";

/// What the flush and the lock keeper share.
pub(super) struct Shared {
    pool: Pool,
    /// Journal records appended and not yet flushed, in order.
    pending: Mutex<Vec<Vec<u8>>>,
    /// The sequence number of the last journal record known written.
    last_seq: AtomicI64,
    /// Set while flushes fail because the database is away.
    degraded: AtomicBool,
    /// Writes not yet sent and records known without asking.
    overlay: overlay::Overlay,
    /// The connection journal turns run on (`turn.rs`).
    turn_connection: turn::TurnConnection,
    config: postgres::Config,
}

impl Shared {
    /// Whether new writes may be taken: the database took the last flush
    /// (during an outage writes are refused at once instead of piling up in
    /// memory).
    fn writable(&self) -> Result<()> {
        if self.degraded.load(Ordering::Acquire) {
            return Err(Error::Unavailable(
                "the database did not take the last flush; retrying".into(),
            ));
        }
        Ok(())
    }
}

pub(super) struct Postgres {
    shared: Arc<Shared>,
    commit: Arc<GroupCommit>,
    config: postgres::Config,
    /// This replica's name in the change feed.
    origin: String,
    /// Raised when another replica announces a change (its listener starts
    /// with the first follower).
    signal: std::sync::OnceLock<Arc<tokio::sync::Notify>>,
    /// Compiled artifacts, a cache of this host's own.
    artifacts: PathBuf,
    /// A database of this host's own for derived state (`derived/` in the
    /// cache directory, emptied when it closes), opened at first use.
    derived: std::sync::OnceLock<Option<sled::Db>>,
}

impl Postgres {
    /// Connects, migrates and reads the journal (on a thread of its own:
    /// the client may not run inside an async task).
    pub(super) fn connect(
        database: &Database,
        cache_dir: &Path,
        background_flush: Duration,
    ) -> Result<(Postgres, Vec<Vec<u8>>)> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| Postgres::connect_here(database, cache_dir, background_flush))
                .join()
                .unwrap_or(Err(Error::Closed))
        })
    }

    fn connect_here(
        database: &Database,
        cache_dir: &Path,
        background_flush: Duration,
    ) -> Result<(Postgres, Vec<Vec<u8>>)> {
        let mut setup = pool::connect(&database.config, "")?;
        schema::migrate(&mut setup)?;
        let journal = turn::read_after(&mut setup, 0).map_err(pool::classify)?;
        drop(setup);
        let last_seq = journal.last().map_or(0, |(seq, _)| *seq as i64);
        let journal = journal.into_iter().map(|(_, record)| record).collect();
        let artifacts = cache_dir.join("artifacts");
        std::fs::create_dir_all(&artifacts)?;
        super::embedded::owner_only(cache_dir)?;
        let shared = Arc::new(Shared {
            pool: Pool::start(database.config.clone(), CONNECTIONS, SESSION),
            pending: Mutex::new(Vec::new()),
            last_seq: AtomicI64::new(last_seq),
            degraded: AtomicBool::new(false),
            overlay: overlay::Overlay::default(),
            turn_connection: Default::default(),
            config: database.config.clone(),
        });
        let flushed = shared.clone();
        let commit = GroupCommit::start_with(
            move || flushed.flush().map_err(|e| e.to_string()),
            background_flush,
            true,
        );
        Ok((
            Postgres {
                shared,
                commit,
                config: database.config.clone(),
                origin: format!("{:016x}", rand::random::<u64>()),
                signal: std::sync::OnceLock::new(),
                artifacts,
                derived: std::sync::OnceLock::new(),
            },
            journal,
        ))
    }

    /// In this host's own database, beside the artifact cache.
    pub(super) fn derived_tree(&self, name: &str) -> Option<sled::Tree> {
        let dir = self.artifacts.parent()?;
        let db = self.derived.get_or_init(|| {
            sled::Config::new()
                .path(dir.join("derived"))
                .cache_capacity(DERIVED_CACHE_BYTES)
                .temporary(true)
                .open()
                .inspect_err(|error| tracing::warn!(%error, "no database for derived state"))
                .ok()
        });
        db.as_ref()?
            .open_tree(name)
            .inspect_err(|error| tracing::warn!(%error, name, "no derived tree on disk"))
            .ok()
    }

    fn run<R, F>(&self, job: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Conn) -> std::result::Result<R, postgres::Error> + Send + 'static,
    {
        self.shared.pool.run(job)
    }

    /// A write that must be atomic in the database, sent at once after
    /// any pending write of `keys` (so it can never be overtaken by one).
    fn direct<R, F>(&self, keys: &[(Tree, &str)], job: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Conn) -> std::result::Result<R, postgres::Error> + Send + 'static,
    {
        self.shared.writable()?;
        let overlay = &self.shared.overlay;
        let _sending = overlay.sending();
        if keys
            .iter()
            .any(|(tree, key)| overlay.is_pending(*tree, key))
        {
            self.shared.drain_sending()?;
        }
        let outcome = self.run(job);
        self.commit.dirty();
        outcome
    }

    /// A write sent by the next flush.
    fn behind(&self, tree: Tree, key: &str, value: Option<Vec<u8>>) -> Result<()> {
        self.shared.writable()?;
        self.shared.overlay.write(tree, key, value)?;
        self.commit.dirty();
        Ok(())
    }

    fn artifact_path(&self, key: &str) -> PathBuf {
        self.artifacts
            .join(hex::encode(Sha256::digest(key.as_bytes())))
    }

    pub(super) fn append_journal(&self, record: &[u8]) -> Result<()> {
        self.shared.writable()?;
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record.to_vec());
        self.commit.dirty();
        Ok(())
    }

    /// Starts a turn at the journal after record `after` (`turn.rs`).
    pub(super) fn begin_turn(&self, after: u64) -> Result<(turn::Turn, turn::Records)> {
        self.shared.writable()?;
        self.shared.begin_turn(after)
    }

    /// The journal's records after `after`, without a turn.
    pub(super) fn journal_after(&self, after: u64) -> Result<turn::Records> {
        self.shared.journal_after(after)
    }

    /// Records that `subject` changed and tells the other replicas.
    pub(super) fn announce(&self, subject: &str) -> Result<()> {
        self.shared.announce(&self.origin, subject)
    }

    /// Other replicas' changes after `after`, and the last number read.
    pub(super) fn changes_after(&self, after: u64) -> Result<(Vec<String>, u64)> {
        self.shared.changes_after(&self.origin, after)
    }

    /// Records that this replica is alive; how many are.
    pub(super) fn beat(&self) -> Result<u32> {
        self.shared.beat(&self.origin)
    }

    pub(super) fn changes_head(&self) -> Result<u64> {
        self.shared.changes_head()
    }

    /// Raised when another replica announces a change.
    pub(super) fn change_signal(&self) -> Arc<tokio::sync::Notify> {
        self.signal
            .get_or_init(|| {
                let signal = feed::signal();
                feed::listen(self.config.clone(), Arc::downgrade(&signal));
                signal
            })
            .clone()
    }

    /// Journal records appended in turns are durable when their turn
    /// returns (a turn that appends what must be durable commits
    /// synchronously); only records appended outside turns (a migration)
    /// wait for a flush.
    pub(super) async fn sync_journal(&self) -> Result<()> {
        let pending = !self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty();
        if pending {
            self.commit.sync().await
        } else {
            Ok(())
        }
    }

    pub(super) async fn sync(&self) -> Result<()> {
        self.commit.sync().await
    }

    pub(super) async fn close(&self) -> Result<()> {
        let mut flushed = self.commit.close().await;
        // A connection the server cut (it restarted) fails a flush once;
        // the pool reconnects meanwhile, so the last flush is tried again.
        for _ in 0..3 {
            if !matches!(flushed, Err(Error::Unavailable(_))) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            flushed = self.commit.close().await;
        }
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || shared.pool.close())
            .await
            .map_err(|_| Error::Closed)?;
        flushed
    }

    pub(super) fn syncs(&self) -> u64 {
        self.commit.syncs()
    }

    pub(super) fn get(&self, tree: Tree, key: &str) -> Result<Option<Vec<u8>>> {
        if tree == Tree::Artifacts {
            return match std::fs::read(self.artifact_path(key)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            };
        }
        let since = match self.shared.overlay.lookup(tree, key) {
            Lookup::Known(value) => return Ok(value.map(|v| v.to_vec())),
            unknown => unknown,
        };
        let bytes = key.as_bytes().to_vec();
        let value: Option<Vec<u8>> = self.shared.pool.run_again(move |conn| {
            let sql = conn.prepared("SELECT value FROM records WHERE tree = $1 AND key = $2")?;
            let row = conn.client.query_opt(&sql, &[&tree.name(), &bytes])?;
            Ok(row.map(|r| r.get(0)))
        })?;
        self.shared
            .overlay
            .remember(tree, key, value.as_deref(), since);
        Ok(value)
    }

    /// Many keys' records: pending writes from the overlay, the rest in a
    /// round trip per thousand keys (not remembered: a start-up read).
    pub(super) fn get_many(&self, tree: Tree, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        if tree == Tree::Artifacts {
            return keys.iter().map(|k| self.get(tree, k)).collect();
        }
        let mut values: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        let mut asked: Vec<usize> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            match self.shared.overlay.lookup(tree, key) {
                Lookup::Known(value) => values[i] = value.map(|v| v.to_vec()),
                Lookup::Unknown { .. } => asked.push(i),
            }
        }
        for chunk in asked.chunks(1_000) {
            let wanted: Vec<Vec<u8>> = chunk.iter().map(|i| keys[*i].as_bytes().to_vec()).collect();
            let rows: Vec<(Vec<u8>, Vec<u8>)> = self.shared.pool.run_again(move |conn| {
                let sql = conn
                    .prepared("SELECT key, value FROM records WHERE tree = $1 AND key = ANY($2)")?;
                let rows = conn.client.query(&sql, &[&tree.name(), &wanted])?;
                Ok(rows.into_iter().map(|r| (r.get(0), r.get(1))).collect())
            })?;
            let found: std::collections::HashMap<Vec<u8>, Vec<u8>> = rows.into_iter().collect();
            for i in chunk {
                values[*i] = found.get(keys[*i].as_bytes()).cloned();
            }
        }
        Ok(values)
    }

    pub(super) fn put(&self, tree: Tree, key: &str, value: &[u8]) -> Result<()> {
        if tree == Tree::Artifacts {
            let path = self.artifact_path(key);
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, value)?;
            std::fs::rename(&tmp, &path)?;
            return Ok(());
        }
        self.behind(tree, key, Some(value.to_vec()))
    }

    pub(super) fn contains(&self, tree: Tree, key: &str) -> Result<bool> {
        if tree == Tree::Artifacts {
            return Ok(self.artifact_path(key).exists());
        }
        Ok(self.get(tree, key)?.is_some())
    }

    pub(super) fn insert_new(&self, tree: Tree, key: &str, value: Vec<u8>) -> Result<bool> {
        if let Lookup::Known(Some(_)) = self.shared.overlay.lookup_own(tree, key) {
            return Ok(false);
        }
        let (bytes, kept) = (key.as_bytes().to_vec(), value.clone());
        let outcome = self.direct(&[(tree, key)], move |conn| {
            let sql = conn.prepared(
                "INSERT INTO records (tree, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )?;
            Ok(conn.client.execute(&sql, &[&tree.name(), &bytes, &value])? == 1)
        });
        match outcome {
            Ok(true) => self.shared.overlay.settled(tree, key, Some(kept)),
            Ok(false) => {}
            Err(_) => self.shared.overlay.forget(tree, key),
        }
        outcome
    }

    pub(super) fn compare_and_swap(
        &self,
        tree: Tree,
        key: &str,
        expected: Vec<u8>,
        new: Vec<u8>,
    ) -> Result<bool> {
        if let Lookup::Known(current) = self.shared.overlay.lookup_own(tree, key)
            && current.as_deref() != Some(&expected)
        {
            return Ok(false);
        }
        let (bytes, kept) = (key.as_bytes().to_vec(), new.clone());
        let outcome = self.direct(&[(tree, key)], move |conn| {
            let sql = conn.prepared(
                "UPDATE records SET value = $4 WHERE tree = $1 AND key = $2 AND value = $3",
            )?;
            Ok(conn
                .client
                .execute(&sql, &[&tree.name(), &bytes, &expected, &new])?
                == 1)
        });
        match outcome {
            Ok(true) => self.shared.overlay.settled(tree, key, Some(kept)),
            _ => self.shared.overlay.forget(tree, key),
        }
        outcome
    }

    pub(super) fn scan_prefix(&self, tree: Tree, prefix: &str) -> Result<Vec<Raw>> {
        self.shared.drain()?;
        let (from, to) = (prefix.as_bytes().to_vec(), super::prefix_end(prefix));
        self.shared.pool.run_again(move |conn| {
            let sql = conn.prepared(
                "SELECT key, value FROM records WHERE tree = $1 AND key >= $2 AND key < $3 \
                 ORDER BY key",
            )?;
            let rows = conn.client.query(&sql, &[&tree.name(), &from, &to])?;
            Ok(rows.iter().map(raw).collect())
        })
    }

    pub(super) fn count_prefix(&self, tree: Tree, prefix: &str) -> Result<usize> {
        self.shared.drain()?;
        let (from, to) = (prefix.as_bytes().to_vec(), super::prefix_end(prefix));
        self.shared.pool.run_again(move |conn| {
            let sql = conn.prepared(
                "SELECT count(*) FROM records WHERE tree = $1 AND key >= $2 AND key < $3",
            )?;
            let n: i64 = conn
                .client
                .query_one(&sql, &[&tree.name(), &from, &to])?
                .get(0);
            Ok(n as usize)
        })
    }

    pub(super) fn page_before(
        &self,
        tree: Tree,
        prefix: &str,
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<Raw>> {
        self.shared.drain()?;
        let (from, to) = (prefix.as_bytes().to_vec(), end.to_vec());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.shared.pool.run_again(move |conn| {
            let sql = conn.prepared(
                "SELECT key, value FROM records WHERE tree = $1 AND key >= $2 AND key < $3 \
                 ORDER BY key DESC LIMIT $4",
            )?;
            let rows = conn
                .client
                .query(&sql, &[&tree.name(), &from, &to, &limit])?;
            Ok(rows.iter().map(raw).collect())
        })
    }

    pub(super) fn put_agent_version(
        &self,
        agent_name: &str,
        expected: Option<Vec<u8>>,
        agent: Vec<u8>,
        version_key: &str,
        version: Vec<u8>,
    ) -> Result<bool> {
        let (name, vkey) = (
            agent_name.as_bytes().to_vec(),
            version_key.as_bytes().to_vec(),
        );
        let kept = (agent.clone(), version.clone());
        let keys = [(Tree::Agents, agent_name), (Tree::Versions, version_key)];
        let outcome = self.direct(&keys, move |conn| {
            let mut tx = conn.client.transaction()?;
            let current: Option<Vec<u8>> = tx
                .query_opt(
                    "SELECT value FROM records WHERE tree = $1 AND key = $2 FOR UPDATE",
                    &[&Tree::Agents.name(), &name],
                )?
                .map(|r| r.get(0));
            if current != expected {
                return Ok(false);
            }
            let agent_written = match expected {
                // Two first publishes of one name: the loser inserts nothing.
                None => tx.execute(
                    "INSERT INTO records (tree, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                    &[&Tree::Agents.name(), &name, &agent],
                )?,
                Some(_) => tx.execute(
                    "UPDATE records SET value = $3 WHERE tree = $1 AND key = $2",
                    &[&Tree::Agents.name(), &name, &agent],
                )?,
            };
            let version_written = tx.execute(
                "INSERT INTO records (tree, key, value) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                &[&Tree::Versions.name(), &vkey, &version],
            )?;
            if agent_written != 1 || version_written != 1 {
                return Ok(false);
            }
            tx.commit()?;
            Ok(true)
        });
        let overlay = &self.shared.overlay;
        match outcome {
            Ok(true) => {
                overlay.settled(Tree::Agents, agent_name, Some(kept.0));
                overlay.settled(Tree::Versions, version_key, Some(kept.1));
            }
            _ => {
                overlay.forget(Tree::Agents, agent_name);
                overlay.forget(Tree::Versions, version_key);
            }
        }
        outcome
    }

    pub(super) fn take(&self, tree: Tree, key: &str) -> Result<Option<Vec<u8>>> {
        if let Lookup::Known(None) = self.shared.overlay.lookup_own(tree, key) {
            return Ok(None);
        }
        let bytes = key.as_bytes().to_vec();
        let outcome = self.direct(&[(tree, key)], move |conn| {
            let sql =
                conn.prepared("DELETE FROM records WHERE tree = $1 AND key = $2 RETURNING value")?;
            Ok(conn
                .client
                .query_opt(&sql, &[&tree.name(), &bytes])?
                .map(|r| r.get(0)))
        });
        match outcome {
            Ok(_) => self.shared.overlay.settled(tree, key, None),
            Err(_) => self.shared.overlay.forget(tree, key),
        }
        outcome
    }

    pub(super) fn remove(&self, tree: Tree, key: &str) -> Result<()> {
        if tree == Tree::Artifacts {
            return match std::fs::remove_file(self.artifact_path(key)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
                _ => Ok(()),
            };
        }
        self.behind(tree, key, None)
    }

    pub(super) fn ping(&self) -> Result<()> {
        self.shared
            .pool
            .run_again(|conn| conn.client.batch_execute("SELECT 1"))
    }

    pub(super) fn size_on_disk(&self) -> u64 {
        self.run(|conn| {
            let n: i64 = conn
                .client
                .query_one("SELECT pg_database_size(current_database())", &[])?
                .get(0);
            Ok(n.max(0) as u64)
        })
        .unwrap_or(0)
    }
}

fn raw(row: &postgres::Row) -> Raw {
    let key: Vec<u8> = row.get(0);
    (String::from_utf8_lossy(&key).into_owned(), row.get(1))
}
