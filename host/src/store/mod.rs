//! Persistence: the one module that names `sled`.
//!
//! Owns: the data directory's database, its trees, the money journal
//! (`journal.wal`, an append-only file of checksummed records with one
//! `fdatasync` per group), and durability (group commit for both). Everything else passes and receives plain bytes or serde values,
//! so a PostgreSQL backend can sit beside this one later.
//!
//! Invariants:
//! - [`Store::sync`] returns only after everything written before the call is
//!   on disk. Concurrent callers share one flush (group commit): one fdatasync
//!   costs about 4 ms here, so a flush per request would cap throughput.
//! - Writes that do not call `sync` (invocation records of calls) reach disk
//!   within `background_flush_ms` through the same committer.
//! - Publishing an agent version is one transaction over the agent and version
//!   trees, guarded by compare-and-swap on the agent record.

mod commit;
mod wal;

use commit::GroupCommit;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use wal::Wal;

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A storage failure. Internal to the operator; clients see a generic 500.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sled::Error),
    /// A record did not decode (corruption or a version mismatch).
    #[error("record {key} in {tree} does not decode: {reason}")]
    Corrupt {
        /// Tree.
        tree: &'static str,
        /// Key.
        key: String,
        /// Why.
        reason: String,
    },
    /// Encoding a record failed.
    #[error("encoding: {0}")]
    Encode(#[from] serde_json::Error),
    /// The data directory could not be used.
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
    /// The committer is gone (shutting down).
    #[error("the store is shutting down")]
    Closed,
}

/// The named trees. Keys are UTF-8 strings; values JSON (or raw bytes for
/// components and artifacts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tree {
    /// `org_id` → organisation.
    Orgs,
    /// hex SHA-256 of an API key → `org_id`.
    ApiKeys,
    /// Component bytes by hex SHA-256.
    Components,
    /// `sha256:fingerprint` → artifact bytes prefixed by their own SHA-256.
    Artifacts,
    /// Agent name → agent record (owner, versions).
    Agents,
    /// `agent@version` → version record (capabilities, terms).
    Versions,
    /// `transaction_id` → invocation record.
    Invocations,
    /// Settings such as the admin token hash.
    Meta,
    /// `org_id/key_id` → an organisation's registered public key.
    SigningKeys,
    /// `agent@version` → the signed attestation report (also of refused uploads).
    Reports,
    /// `org_id` → budget.
    Budgets,
    /// `org_id:scope:key` → the first response to an idempotent request.
    Idempotency,
    /// `negotiation_id` → negotiation (rounds, status).
    Negotiations,
    /// `contract_id` → signed contract.
    Contracts,
    /// `transaction_id:side` → rating.
    Ratings,
    /// `org_id:event_id` → an event of the organisation's feed (alerts).
    Events,
    /// `approval_id` → a call waiting for an approver.
    Approvals,
    /// hex SHA-256 of an approver token → `org_id`.
    ApproverKeys,
    /// `embedder:sha256(text)` → the text's vector (little-endian f32s).
    Vectors,
    /// `consumer/org_id/transaction_id`, `provider/org_id/transaction_id`
    /// and `contract/org_id/contract_id` → nothing: an organisation's calls
    /// and contracts, newest last (the ids are UUIDv7).
    ByOrg,
    /// `org_id/upload_id` and `refused/upload_id` → an upload's outcome.
    Uploads,
    /// OAuth: `client/{id}`, `grant/{id}`, `org/{org_id}/{grant_id}` (an
    /// organisation's grants), `code/{sha256}`, `access/{sha256}` and
    /// `refresh/{sha256}` → their records (codes and tokens only as hashes).
    Oauth,
}

impl Tree {
    const ALL: [Tree; 22] = [
        Tree::Orgs,
        Tree::ApiKeys,
        Tree::Components,
        Tree::Artifacts,
        Tree::Agents,
        Tree::Versions,
        Tree::Invocations,
        Tree::Meta,
        Tree::SigningKeys,
        Tree::Reports,
        Tree::Budgets,
        Tree::Idempotency,
        Tree::Negotiations,
        Tree::Contracts,
        Tree::Ratings,
        Tree::Events,
        Tree::Approvals,
        Tree::ApproverKeys,
        Tree::Vectors,
        Tree::ByOrg,
        Tree::Uploads,
        Tree::Oauth,
    ];

    fn name(self) -> &'static str {
        match self {
            Tree::Orgs => "orgs",
            Tree::ApiKeys => "api_keys",
            Tree::Components => "components",
            Tree::Artifacts => "artifacts",
            Tree::Agents => "agents",
            Tree::Versions => "versions",
            Tree::Invocations => "invocations",
            Tree::Meta => "meta",
            Tree::SigningKeys => "signing_keys",
            Tree::Reports => "reports",
            Tree::Budgets => "budgets",
            Tree::Idempotency => "idempotency",
            Tree::Negotiations => "negotiations",
            Tree::Contracts => "contracts",
            Tree::ByOrg => "by_org",
            Tree::Uploads => "uploads",
            Tree::Oauth => "oauth",
            Tree::Ratings => "ratings",
            Tree::Events => "events",
            Tree::Approvals => "approvals",
            Tree::ApproverKeys => "approver_keys",
            Tree::Vectors => "vectors",
        }
    }
}

/// The embedded store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    trees: Arc<[sled::Tree; Tree::ALL.len()]>,
    commit: Arc<GroupCommit>,
    wal: Arc<Wal>,
    journal: Arc<std::sync::Mutex<Option<Vec<Vec<u8>>>>>,
}

/// Makes the data directory the owner's alone: every directory in it 0700,
/// every file 0600 (it holds keys, the books and replayed outputs). Files
/// written later sit inside a 0700 directory whatever their own mode.
fn owner_only(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut stack = vec![dir.to_path_buf()];
        // Bounded: the data directory holds a few dozen entries.
        while let Some(dir) = stack.pop() {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let kind = entry.file_type()?;
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_file() {
                    std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o600))?;
                }
            }
        }
    }
    Ok(())
}

/// Pages of the store kept in memory unless configured (`store_cache_mb`).
pub const CACHE_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

impl Store {
    /// Opens (or creates) the store in `dir` and starts its committer, which
    /// flushes unsynced writes at least every `background_flush`.
    pub fn open(dir: &Path, background_flush: Duration) -> Result<Self> {
        Store::open_with_cache(dir, background_flush, CACHE_BYTES_DEFAULT)
    }

    /// [`Store::open`] with at most `cache_bytes` of pages kept in memory
    /// (sled's own default is 1 GiB, which a busy host fills with the
    /// records it has just written and never gives back).
    pub fn open_with_cache(
        dir: &Path,
        background_flush: Duration,
        cache_bytes: u64,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let db = sled::Config::new()
            .path(dir.join("db"))
            .cache_capacity(cache_bytes)
            .open()?;
        let mut trees = Vec::with_capacity(Tree::ALL.len());
        for tree in Tree::ALL {
            trees.push(db.open_tree(tree.name())?);
        }
        let trees: [sled::Tree; Tree::ALL.len()] = trees.try_into().map_err(|_| Error::Closed)?;
        let flushed = db.clone();
        let commit = GroupCommit::start(
            move || flushed.flush().map(|_| ()).map_err(|e| e.to_string()),
            background_flush,
        );
        let (wal, journal) = Wal::open(&dir.join("journal.wal"))?;
        owner_only(dir)?;
        Ok(Store {
            db,
            trees: Arc::new(trees),
            commit,
            wal: Arc::new(wal),
            journal: Arc::new(std::sync::Mutex::new(Some(journal))),
        })
    }

    /// The journal's records as read at open, once (settlement replays them).
    pub fn take_journal(&self) -> Vec<Vec<u8>> {
        self.journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default()
    }

    /// Appends a record to the money journal (durable at [`Store::sync_journal`]).
    pub fn append_journal(&self, record: &[u8]) -> Result<()> {
        self.wal.append(record)
    }

    /// Waits until every journal record appended before the call is on disk.
    pub async fn sync_journal(&self) -> Result<()> {
        self.wal.sync().await
    }

    fn tree(&self, tree: Tree) -> &sled::Tree {
        &self.trees[tree as usize]
    }

    /// Waits until every write made before this call is on disk.
    pub async fn sync(&self) -> Result<()> {
        self.commit.sync().await
    }

    /// Flushes every write and stops the committer.
    pub async fn close(&self) -> Result<()> {
        self.wal.close().await?;
        self.commit.close().await
    }

    /// Fsyncs performed so far (for metrics).
    pub fn syncs(&self) -> u64 {
        self.commit.syncs() + self.wal.syncs()
    }

    /// Raw bytes under `key`.
    pub fn get_bytes(&self, tree: Tree, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.tree(tree).get(key)?.map(|v| v.to_vec()))
    }

    /// Stores raw bytes; not durable until [`Store::sync`].
    pub fn put_bytes(&self, tree: Tree, key: &str, value: &[u8]) -> Result<()> {
        self.tree(tree).insert(key, value)?;
        self.commit.dirty();
        Ok(())
    }

    /// Whether `key` exists.
    pub fn contains(&self, tree: Tree, key: &str) -> Result<bool> {
        Ok(self.tree(tree).contains_key(key)?)
    }

    /// A JSON record under `key`.
    pub fn get<T: DeserializeOwned>(&self, tree: Tree, key: &str) -> Result<Option<T>> {
        match self.tree(tree).get(key)? {
            None => Ok(None),
            Some(bytes) => decode(tree, key, &bytes).map(Some),
        }
    }

    /// Stores a JSON record; not durable until [`Store::sync`].
    pub fn put<T: Serialize>(&self, tree: Tree, key: &str, value: &T) -> Result<()> {
        let bytes = serde_json::to_vec(value)?;
        self.put_bytes(tree, key, &bytes)
    }

    /// Stores a JSON record only if `key` is absent; false if it was present.
    pub fn insert_new<T: Serialize>(&self, tree: Tree, key: &str, value: &T) -> Result<bool> {
        let bytes = serde_json::to_vec(value)?;
        let swapped = self
            .tree(tree)
            .compare_and_swap(key, None::<&[u8]>, Some(bytes))?;
        self.commit.dirty();
        Ok(swapped.is_ok())
    }

    /// Replaces `expected` by `new` under `key` atomically; false (writing
    /// nothing) if the record is no longer `expected`.
    pub fn compare_and_swap<T: Serialize>(
        &self,
        tree: Tree,
        key: &str,
        expected: &T,
        new: &T,
    ) -> Result<bool> {
        let expected = serde_json::to_vec(expected)?;
        let new = serde_json::to_vec(new)?;
        let swapped = self
            .tree(tree)
            .compare_and_swap(key, Some(expected), Some(new))?;
        self.commit.dirty();
        Ok(swapped.is_ok())
    }

    /// Every JSON record of a tree, in key order.
    pub fn scan<T: DeserializeOwned>(&self, tree: Tree) -> Result<Vec<(String, T)>> {
        self.tree(tree)
            .iter()
            .map(|entry| {
                let (key, value) = entry?;
                let key = String::from_utf8_lossy(&key).into_owned();
                let value = decode(tree, &key, &value)?;
                Ok((key, value))
            })
            .collect()
    }

    /// Every JSON record whose key starts with `prefix`, in key order.
    pub fn scan_prefix<T: DeserializeOwned>(
        &self,
        tree: Tree,
        prefix: &str,
    ) -> Result<Vec<(String, T)>> {
        self.tree(tree)
            .scan_prefix(prefix)
            .map(|entry| {
                let (key, value) = entry?;
                let key = String::from_utf8_lossy(&key).into_owned();
                let value = decode(tree, &key, &value)?;
                Ok((key, value))
            })
            .collect()
    }

    /// How many keys start with `prefix` (values are not read).
    pub fn count_prefix(&self, tree: Tree, prefix: &str) -> usize {
        self.tree(tree).scan_prefix(prefix).keys().count()
    }

    /// Up to `limit` records whose key starts with `prefix` and sorts before
    /// `before` (all, when `None`), newest key first: a page of a listing
    /// whose keys grow with time.
    pub fn page_before<T: DeserializeOwned>(
        &self,
        tree: Tree,
        prefix: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, T)>> {
        let end = match before {
            Some(before) if before.starts_with(prefix) => before.as_bytes().to_vec(),
            Some(_) => return Ok(Vec::new()),
            None => {
                // The first key after every key with this prefix.
                let mut end = prefix.as_bytes().to_vec();
                end.push(0xff);
                end
            }
        };
        self.tree(tree)
            .range(prefix.as_bytes()..end.as_slice())
            .rev()
            .take(limit)
            .map(|entry| {
                let (key, value) = entry?;
                let key = String::from_utf8_lossy(&key).into_owned();
                let value = decode(tree, &key, &value)?;
                Ok((key, value))
            })
            .collect()
    }

    /// Number of records in a tree.
    pub fn len(&self, tree: Tree) -> usize {
        self.tree(tree).len()
    }

    /// Writes a new agent version atomically: the agent record moves from
    /// `expected_agent` (compare-and-swap; `None` for a new agent) to
    /// `agent`, and the version record is inserted. Returns false, writing
    /// nothing, if the agent record changed meanwhile or the version exists.
    pub fn put_agent_version<A: Serialize, V: Serialize>(
        &self,
        agent_name: &str,
        expected_agent: Option<&A>,
        agent: &A,
        version_key: &str,
        version: &V,
    ) -> Result<bool> {
        use sled::Transactional;
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        let expected = expected_agent.map(serde_json::to_vec).transpose()?;
        let agent = serde_json::to_vec(agent)?;
        let version = serde_json::to_vec(version)?;
        let agents = self.tree(Tree::Agents);
        let versions = self.tree(Tree::Versions);
        let outcome = (agents, versions).transaction(|(agents, versions)| {
            let current = agents.get(agent_name)?.map(|v| v.to_vec());
            if current != expected || versions.get(version_key)?.is_some() {
                return Err(ConflictableTransactionError::Abort(()));
            }
            agents.insert(agent_name, agent.as_slice())?;
            versions.insert(version_key, version.as_slice())?;
            Ok(())
        });
        self.commit.dirty();
        match outcome {
            Ok(()) => Ok(true),
            Err(TransactionError::Abort(())) => Ok(false),
            Err(TransactionError::Storage(e)) => Err(e.into()),
        }
    }

    /// Removes a record and returns it, atomically: of two callers taking
    /// the same key, one gets it (single-use codes). Not durable until
    /// [`Store::sync`].
    pub fn take<T: DeserializeOwned>(&self, tree: Tree, key: &str) -> Result<Option<T>> {
        let Some(old) = self.tree(tree).remove(key)? else {
            return Ok(None);
        };
        self.commit.dirty();
        decode(tree, key, &old).map(Some)
    }

    /// Removes a record; not durable until [`Store::sync`].
    pub fn remove(&self, tree: Tree, key: &str) -> Result<()> {
        self.tree(tree).remove(key)?;
        self.commit.dirty();
        Ok(())
    }

    /// The database's size on disk, in bytes.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

fn decode<T: DeserializeOwned>(tree: Tree, key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        tree: tree.name(),
        key: key.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Group commit: many writers syncing at once share flushes, and every
    /// record a `sync` acknowledged is there after reopening.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_syncs_share_flushes_and_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A background interval long enough that only `sync` calls flush.
        let store = Store::open(dir.path(), Duration::from_secs(3_600)).expect("open");
        let before = store.syncs();
        let writers: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store.put(Tree::Meta, &format!("k{i:02}"), &i).expect("put");
                    store.sync().await.expect("sync");
                })
            })
            .collect();
        for writer in writers {
            writer.await.expect("writer");
        }
        let flushes = store.syncs() - before;
        assert!(
            (1..64).contains(&flushes),
            "64 syncs took {flushes} flushes"
        );
        store.close().await.expect("close");
        drop(store);

        let store = Store::open(dir.path(), Duration::from_secs(3_600)).expect("reopen");
        let found: Vec<(String, i32)> = store.scan(Tree::Meta).expect("scan");
        assert_eq!(found.len(), 64);
        assert!(
            found
                .iter()
                .enumerate()
                .all(|(i, (k, v))| *k == format!("k{i:02}") && *v == i as i32)
        );
        store.close().await.expect("close");
    }

    /// A record written without `sync` reaches disk by `close`.
    #[tokio::test]
    async fn unsynced_writes_are_flushed_on_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path(), Duration::from_secs(3_600)).expect("open");
        store
            .put(Tree::Invocations, "tx_1", &"record")
            .expect("put");
        store.close().await.expect("close");
        drop(store);
        let store = Store::open(dir.path(), Duration::from_secs(3_600)).expect("reopen");
        assert_eq!(
            store.get::<String>(Tree::Invocations, "tx_1").expect("get"),
            Some("record".into())
        );
        store.close().await.expect("close");
    }
}
