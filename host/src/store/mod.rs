//! Persistence: the one module that names `sled` or `postgres`.
//!
//! Owns: named trees of records, the money journal, and durability, on one
//! of two engines behind the same [`Store`]: the embedded one (sled and
//! `journal.wal`, an append-only file of checksummed records with one
//! `fdatasync` per group) and PostgreSQL (`pg/`: a `records` table keyed by
//! tree and key, a `journal` table, versioned migrations). Everything else
//! passes and receives plain bytes or serde values and never learns which.
//!
//! Invariants (both engines):
//! - [`Store::sync`] returns only after everything written before the call is
//!   durable. Concurrent callers share one flush (group commit): one fdatasync
//!   costs about 4 ms here, so a flush per request would cap throughput.
//! - Writes that do not call `sync` (invocation records of calls) become
//!   durable within `background_flush_ms` through the same committer.
//! - Publishing an agent version is one transaction over the agent and version
//!   trees, guarded by compare-and-swap on the agent record.
//! - The journal's records come back in the order they were appended.

mod commit;
mod embedded;
pub mod migrate;
mod pg;
mod shared;
mod wal;

use embedded::Embedded;
use pg::Postgres;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use pg::Database;
pub use shared::{JournalRecords, JournalTurn};

/// A record as read: its key and its bytes.
type Raw = (String, Vec<u8>);

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
    /// PostgreSQL refused a statement.
    #[error("postgres: {0}")]
    Postgres(String),
    /// The database cannot be reached (or this host may not write to it):
    /// worth retrying later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
}

impl Error {
    /// Whether the failure is the database being away, not a fault: the
    /// doors answer it with 503 and `Retry-After`.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

/// The named trees. Keys are UTF-8 strings; values JSON (or raw bytes for
/// components and artifacts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// `task_id` → an A2A task shared with the other replicas (owner,
    /// document, expiry), on a shared store only, for ten minutes.
    A2aTasks,
    /// `session_id` → an MCP session shared with the other replicas
    /// (organisation, `initialize` parameters, expiry), on a shared store
    /// only.
    McpSessions,
}

impl Tree {
    /// Every tree, in a fixed order.
    pub const ALL: [Tree; 24] = [
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
        Tree::A2aTasks,
        Tree::McpSessions,
    ];

    /// The tree's name (a sled tree, or the `tree` column in PostgreSQL).
    pub fn name(self) -> &'static str {
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
            Tree::A2aTasks => "a2a_tasks",
            Tree::McpSessions => "mcp_sessions",
            Tree::Ratings => "ratings",
            Tree::Events => "events",
            Tree::Approvals => "approvals",
            Tree::ApproverKeys => "approver_keys",
            Tree::Vectors => "vectors",
        }
    }
}

/// The store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    engine: Arc<Engine>,
    /// Where the records are, as shown to people (no password).
    place: Arc<str>,
    journal: Arc<std::sync::Mutex<Option<Vec<Vec<u8>>>>>,
}

enum Engine {
    Embedded(Embedded),
    Postgres(Postgres),
}

/// Runs the same expression on whichever engine the store has.
macro_rules! on_engine {
    ($store:expr, $engine:ident => $body:expr) => {
        match &*$store.engine {
            Engine::Embedded($engine) => $body,
            Engine::Postgres($engine) => $body,
        }
    };
}

/// Pages of the store kept in memory unless configured (`store_cache_mb`).
pub const CACHE_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

/// The first key after every key starting with `prefix`: keys are UTF-8,
/// which never contains the byte 0xff.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    end.push(0xff);
    end
}

impl Store {
    /// Opens (or creates) the embedded store in `dir` and starts its
    /// committer, which flushes unsynced writes at least every
    /// `background_flush`.
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
        let (engine, journal) = Embedded::open(dir, background_flush, cache_bytes)?;
        let place = format!("{} (embedded)", dir.display());
        Ok(Store::with(Engine::Embedded(engine), journal, place))
    }

    /// Connects to PostgreSQL, applies the schema's migrations and takes the
    /// database's writer lock. `cache_dir` holds what this host keeps only
    /// as a cache (compiled artifacts).
    pub fn connect(
        database: &Database,
        cache_dir: &Path,
        background_flush: Duration,
    ) -> Result<Self> {
        let (engine, journal) = Postgres::connect(database, cache_dir, background_flush)?;
        Ok(Store::with(
            Engine::Postgres(engine),
            journal,
            database.shown().to_string(),
        ))
    }

    fn with(engine: Engine, journal: Vec<Vec<u8>>, place: String) -> Store {
        Store {
            engine: Arc::new(engine),
            place: place.into(),
            journal: Arc::new(std::sync::Mutex::new(Some(journal))),
        }
    }

    /// Which engine: `sled` or `postgres`.
    pub fn engine(&self) -> &'static str {
        match &*self.engine {
            Engine::Embedded(_) => "sled",
            Engine::Postgres(_) => "postgres",
        }
    }

    /// Where the records are: a data directory, or the database's URL
    /// without its password.
    pub fn place(&self) -> &str {
        &self.place
    }

    /// Whether the records live outside this host (PostgreSQL): what must
    /// survive the host (the marketplace key) is then kept in the store too.
    pub fn is_shared(&self) -> bool {
        matches!(&*self.engine, Engine::Postgres(_))
    }

    /// The journal's records as read at open, once (settlement replays them).
    pub fn take_journal(&self) -> Vec<Vec<u8>> {
        self.journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default()
    }

    /// The journal's records as read at open, if not yet taken.
    pub fn journal_snapshot(&self) -> Vec<Vec<u8>> {
        self.journal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .unwrap_or_default()
    }

    /// Appends a record to the money journal (durable at [`Store::sync_journal`]).
    pub fn append_journal(&self, record: &[u8]) -> Result<()> {
        on_engine!(self, e => e.append_journal(record))
    }

    /// Waits until every journal record appended before the call is durable.
    pub async fn sync_journal(&self) -> Result<()> {
        on_engine!(self, e => e.sync_journal().await)
    }

    /// Waits until every write made before this call is durable.
    pub async fn sync(&self) -> Result<()> {
        on_engine!(self, e => e.sync().await)
    }

    /// Flushes every write and stops the committer.
    pub async fn close(&self) -> Result<()> {
        on_engine!(self, e => e.close().await)
    }

    /// Flushes performed so far (for metrics).
    pub fn syncs(&self) -> u64 {
        on_engine!(self, e => e.syncs())
    }

    /// Raw bytes under `key`.
    pub fn get_bytes(&self, tree: Tree, key: &str) -> Result<Option<Vec<u8>>> {
        on_engine!(self, e => e.get(tree, key))
    }

    /// The raw bytes of many keys at once, in their order (one round trip
    /// per thousand on PostgreSQL).
    pub fn get_many_bytes(&self, tree: Tree, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>> {
        match &*self.engine {
            Engine::Embedded(e) => keys.iter().map(|k| e.get(tree, k)).collect(),
            Engine::Postgres(e) => e.get_many(tree, keys),
        }
    }

    /// Stores raw bytes; not durable until [`Store::sync`].
    pub fn put_bytes(&self, tree: Tree, key: &str, value: &[u8]) -> Result<()> {
        on_engine!(self, e => e.put(tree, key, value))
    }

    /// Whether `key` exists.
    pub fn contains(&self, tree: Tree, key: &str) -> Result<bool> {
        on_engine!(self, e => e.contains(tree, key))
    }

    /// A JSON record under `key`.
    pub fn get<T: DeserializeOwned>(&self, tree: Tree, key: &str) -> Result<Option<T>> {
        match self.get_bytes(tree, key)? {
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
        on_engine!(self, e => e.insert_new(tree, key, bytes))
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
        on_engine!(self, e => e.compare_and_swap(tree, key, expected, new))
    }

    /// Every JSON record of a tree, in key order.
    pub fn scan<T: DeserializeOwned>(&self, tree: Tree) -> Result<Vec<(String, T)>> {
        self.scan_prefix(tree, "")
    }

    /// Every JSON record whose key starts with `prefix`, in key order.
    pub fn scan_prefix<T: DeserializeOwned>(
        &self,
        tree: Tree,
        prefix: &str,
    ) -> Result<Vec<(String, T)>> {
        decode_all(tree, self.scan_prefix_bytes(tree, prefix)?)
    }

    /// Every record whose key starts with `prefix` as raw bytes, in key order.
    pub fn scan_prefix_bytes(&self, tree: Tree, prefix: &str) -> Result<Vec<(String, Vec<u8>)>> {
        on_engine!(self, e => e.scan_prefix(tree, prefix))
    }

    /// How many keys start with `prefix` (values are not read); 0 when the
    /// database cannot answer (logged).
    pub fn count_prefix(&self, tree: Tree, prefix: &str) -> usize {
        on_engine!(self, e => e.count_prefix(tree, prefix)).unwrap_or_else(|error| {
            tracing::warn!(%error, tree = tree.name(), "counting records failed");
            0
        })
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
            None => prefix_end(prefix),
        };
        let raw = on_engine!(self, e => e.page_before(tree, prefix, &end, limit))?;
        decode_all(tree, raw)
    }

    /// A sled tree on this host's own disk for state it derives and rebuilds
    /// at every start (the escrow index): not shared, not migrated, never
    /// synced for a caller. `None` (logged) if it cannot be opened.
    pub fn derived_tree(&self, name: &str) -> Option<sled::Tree> {
        on_engine!(self, e => e.derived_tree(name))
    }

    /// Number of records in a tree.
    pub fn len(&self, tree: Tree) -> usize {
        match &*self.engine {
            Engine::Embedded(e) => e.len(tree),
            Engine::Postgres(_) => self.count_prefix(tree, ""),
        }
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
        let expected = expected_agent.map(serde_json::to_vec).transpose()?;
        let agent = serde_json::to_vec(agent)?;
        let version = serde_json::to_vec(version)?;
        on_engine!(self, e => e.put_agent_version(agent_name, expected, agent, version_key, version))
    }

    /// Removes a record and returns it, atomically: of two callers taking
    /// the same key, one gets it (single-use codes). Not durable until
    /// [`Store::sync`].
    pub fn take<T: DeserializeOwned>(&self, tree: Tree, key: &str) -> Result<Option<T>> {
        match on_engine!(self, e => e.take(tree, key))? {
            None => Ok(None),
            Some(old) => decode(tree, key, &old).map(Some),
        }
    }

    /// Removes a record; not durable until [`Store::sync`].
    pub fn remove(&self, tree: Tree, key: &str) -> Result<()> {
        on_engine!(self, e => e.remove(tree, key))
    }

    /// Whether the database answers (the embedded one always does).
    pub fn ping(&self) -> Result<()> {
        match &*self.engine {
            Engine::Embedded(_) => Ok(()),
            Engine::Postgres(e) => e.ping(),
        }
    }

    /// The database's size on disk, in bytes.
    pub fn size_on_disk(&self) -> u64 {
        on_engine!(self, e => e.size_on_disk())
    }
}

fn decode<T: DeserializeOwned>(tree: Tree, key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| Error::Corrupt {
        tree: tree.name(),
        key: key.to_string(),
        reason: e.to_string(),
    })
}

fn decode_all<T: DeserializeOwned>(tree: Tree, raw: Vec<Raw>) -> Result<Vec<(String, T)>> {
    raw.into_iter()
        .map(|(key, bytes)| {
            let value = decode(tree, &key, &bytes)?;
            Ok((key, value))
        })
        .collect()
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
        // All 64 wait for each other before syncing, so they do sync at once
        // however the runtime schedules them.
        let ready = Arc::new(tokio::sync::Barrier::new(64));
        let writers: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                let ready = ready.clone();
                tokio::spawn(async move {
                    store.put(Tree::Meta, &format!("k{i:02}"), &i).expect("put");
                    ready.wait().await;
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
