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
//! One writer: the books are replayed from the journal and then kept in the
//! host's memory, so two hosts writing to one database would each trust
//! their own. A host holds a session advisory lock for as long as it runs; a
//! second one is refused at start. If the lock's connection breaks (the
//! server restarted), writes stop until the lock is taken again and the
//! journal shows nobody else wrote meanwhile.

mod database;
mod flush;
mod overlay;
mod pool;
mod schema;
mod writer;

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

/// Advisory lock held by the host writing to the database ("mercato2").
pub(super) const WRITER_LOCK: i64 = 0x6d65_7263_6174_6f32;

/// Connections in the pool.
const CONNECTIONS: usize = 8;

/// Attempts at the writer lock at start, [`LOCK_CHECK`] apart.
const LOCK_ATTEMPTS: u32 = 6;

/// How often the writer lock's connection is checked.
pub(super) const LOCK_CHECK: Duration = Duration::from_millis(500);

/// Settings of every pooled connection.
const SESSION: &str = "SET synchronous_commit = off; SET statement_timeout = '30s'";

/// What the flush and the lock keeper share.
pub(super) struct Shared {
    pool: Pool,
    /// Journal records appended and not yet flushed, in order.
    pending: Mutex<Vec<Vec<u8>>>,
    /// The sequence number of the last journal record known written.
    last_seq: AtomicI64,
    /// Set while this host does not hold the writer lock.
    fenced: AtomicBool,
    /// Set for good when another host wrote to the journal meanwhile.
    superseded: AtomicBool,
    stop: AtomicBool,
    /// Set while flushes fail because the database is away.
    degraded: AtomicBool,
    /// Writes not yet sent and records known without asking.
    overlay: overlay::Overlay,
}

impl Shared {
    /// Whether new writes may be taken: this host holds the writer lock and
    /// the database took the last flush (during an outage writes are refused
    /// at once instead of piling up in memory).
    fn writable(&self) -> Result<()> {
        if self.degraded.load(Ordering::Acquire) {
            return Err(Error::Unavailable(
                "the database did not take the last flush; retrying".into(),
            ));
        }
        self.lock_held()
    }

    /// Whether this host holds the writer lock.
    fn lock_held(&self) -> Result<()> {
        if self.superseded.load(Ordering::Acquire) {
            return Err(Error::Unavailable(
                "another host wrote to this database while this one had lost its writer lock; \
                 restart this host"
                    .into(),
            ));
        }
        if self.fenced.load(Ordering::Acquire) {
            return Err(Error::Unavailable(
                "this host is retaking its writer lock".into(),
            ));
        }
        Ok(())
    }
}

pub(super) struct Postgres {
    shared: Arc<Shared>,
    commit: Arc<GroupCommit>,
    lock_keeper: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Compiled artifacts, a cache of this host's own.
    artifacts: PathBuf,
}

impl Postgres {
    /// Connects, migrates, takes the writer lock and reads the journal (on
    /// a thread of its own: the client may not run inside an async task).
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
        drop(setup);
        let mut lock = pool::connect(&database.config, "")?;
        // A host that just stopped may still be leaving (its session ends
        // a moment after its process): wait a little before refusing.
        let mut locked = false;
        for attempt in 0..LOCK_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(LOCK_CHECK);
            }
            locked = lock
                .query_one("SELECT pg_try_advisory_lock($1)", &[&WRITER_LOCK])
                .map_err(pool::classify)?
                .get(0);
            if locked {
                break;
            }
        }
        if !locked {
            return Err(Error::Postgres(format!(
                "another mercato host is writing to {}: one host per database until replicas \
                 share the books (stop the other host first)",
                database.shown()
            )));
        }
        let rows = lock
            .query("SELECT seq, record FROM journal ORDER BY seq", &[])
            .map_err(pool::classify)?;
        let mut journal = Vec::with_capacity(rows.len());
        let mut last_seq = 0i64;
        for row in rows {
            let seq: i64 = row.get(0);
            if seq != last_seq + 1 {
                return Err(Error::Postgres(format!(
                    "the journal skips from entry {last_seq} to {seq}"
                )));
            }
            last_seq = seq;
            journal.push(row.get::<_, Vec<u8>>(1));
        }
        let artifacts = cache_dir.join("artifacts");
        std::fs::create_dir_all(&artifacts)?;
        super::embedded::owner_only(cache_dir)?;
        let shared = Arc::new(Shared {
            pool: Pool::start(database.config.clone(), CONNECTIONS, SESSION),
            pending: Mutex::new(Vec::new()),
            last_seq: AtomicI64::new(last_seq),
            fenced: AtomicBool::new(false),
            superseded: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            degraded: AtomicBool::new(false),
            overlay: overlay::Overlay::default(),
        });
        let flushed = shared.clone();
        let commit = GroupCommit::start_with(
            move || flushed.flush().map_err(|e| e.to_string()),
            background_flush,
            true,
        );
        let keeper = {
            let shared = shared.clone();
            let config = database.config.clone();
            std::thread::Builder::new()
                .name("mercato-pg-lock".into())
                .spawn(move || writer::keep_lock(&shared, &config, lock))?
        };
        Ok((
            Postgres {
                shared,
                commit,
                lock_keeper: Mutex::new(Some(keeper)),
                artifacts,
            },
            journal,
        ))
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

    pub(super) async fn sync_journal(&self) -> Result<()> {
        self.commit.sync().await
    }

    pub(super) async fn sync(&self) -> Result<()> {
        self.commit.sync().await
    }

    pub(super) async fn close(&self) -> Result<()> {
        let flushed = self.commit.close().await;
        self.shared.stop.store(true, Ordering::Release);
        let keeper = self
            .lock_keeper
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(keeper) = keeper {
                let _ = keeper.join();
            }
            shared.pool.close();
        })
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
        let evictions = match self.shared.overlay.lookup(tree, key) {
            Lookup::Known(value) => return Ok(value.map(|v| v.to_vec())),
            Lookup::Unknown { evictions } => evictions,
        };
        let bytes = key.as_bytes().to_vec();
        let value: Option<Vec<u8>> = self.shared.pool.run_again(move |conn| {
            let sql = conn.prepared("SELECT value FROM records WHERE tree = $1 AND key = $2")?;
            let row = conn.client.query_opt(&sql, &[&tree.name(), &bytes])?;
            Ok(row.map(|r| r.get(0)))
        })?;
        self.shared
            .overlay
            .remember(tree, key, value.as_deref(), evictions);
        Ok(value)
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
        if let Lookup::Known(Some(_)) = self.shared.overlay.lookup(tree, key) {
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
        if let Lookup::Known(current) = self.shared.overlay.lookup(tree, key)
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
        if let Lookup::Known(None) = self.shared.overlay.lookup(tree, key) {
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
