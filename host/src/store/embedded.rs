//! The embedded engine: sled for the records, `journal.wal` for the money
//! journal, both group-committed. One host, one data directory.

use super::commit::GroupCommit;
use super::wal::Wal;
use super::{Error, Raw, Result, Tree};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub(super) struct Embedded {
    db: sled::Db,
    trees: [sled::Tree; Tree::ALL.len()],
    commit: Arc<GroupCommit>,
    wal: Wal,
}

/// Makes the data directory the owner's alone: every directory in it 0700,
/// every file 0600 (it holds keys, the books and replayed outputs). Files
/// written later sit inside a 0700 directory whatever their own mode.
pub(super) fn owner_only(dir: &Path) -> std::io::Result<()> {
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

fn owned(entry: sled::Result<(sled::IVec, sled::IVec)>) -> Result<Raw> {
    let (key, value) = entry?;
    Ok((String::from_utf8_lossy(&key).into_owned(), value.to_vec()))
}

impl Embedded {
    /// Opens (or creates) the store in `dir`; the journal's records as read.
    pub(super) fn open(
        dir: &Path,
        background_flush: Duration,
        cache_bytes: u64,
    ) -> Result<(Embedded, Vec<Vec<u8>>)> {
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
        Ok((
            Embedded {
                db,
                trees,
                commit,
                wal,
            },
            journal,
        ))
    }

    fn tree(&self, tree: Tree) -> &sled::Tree {
        &self.trees[tree as usize]
    }

    pub(super) fn append_journal(&self, record: &[u8]) -> Result<()> {
        self.wal.append(record)
    }

    pub(super) async fn sync_journal(&self) -> Result<()> {
        self.wal.sync().await
    }

    pub(super) async fn sync(&self) -> Result<()> {
        self.commit.sync().await
    }

    pub(super) async fn close(&self) -> Result<()> {
        self.wal.close().await?;
        self.commit.close().await
    }

    pub(super) fn syncs(&self) -> u64 {
        self.commit.syncs() + self.wal.syncs()
    }

    pub(super) fn get(&self, tree: Tree, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.tree(tree).get(key)?.map(|v| v.to_vec()))
    }

    pub(super) fn put(&self, tree: Tree, key: &str, value: &[u8]) -> Result<()> {
        self.tree(tree).insert(key, value)?;
        self.commit.dirty();
        Ok(())
    }

    pub(super) fn contains(&self, tree: Tree, key: &str) -> Result<bool> {
        Ok(self.tree(tree).contains_key(key)?)
    }

    pub(super) fn insert_new(&self, tree: Tree, key: &str, value: Vec<u8>) -> Result<bool> {
        let swapped = self
            .tree(tree)
            .compare_and_swap(key, None::<&[u8]>, Some(value))?;
        self.commit.dirty();
        Ok(swapped.is_ok())
    }

    pub(super) fn compare_and_swap(
        &self,
        tree: Tree,
        key: &str,
        expected: Vec<u8>,
        new: Vec<u8>,
    ) -> Result<bool> {
        let swapped = self
            .tree(tree)
            .compare_and_swap(key, Some(expected), Some(new))?;
        self.commit.dirty();
        Ok(swapped.is_ok())
    }

    pub(super) fn scan_prefix(&self, tree: Tree, prefix: &str) -> Result<Vec<Raw>> {
        self.tree(tree).scan_prefix(prefix).map(owned).collect()
    }

    pub(super) fn count_prefix(&self, tree: Tree, prefix: &str) -> Result<usize> {
        Ok(self.tree(tree).scan_prefix(prefix).keys().count())
    }

    pub(super) fn page_before(
        &self,
        tree: Tree,
        prefix: &str,
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<Raw>> {
        self.tree(tree)
            .range(prefix.as_bytes()..end)
            .rev()
            .take(limit)
            .map(owned)
            .collect()
    }

    /// In the store's own database, beside its trees.
    pub(super) fn derived_tree(&self, name: &str) -> Option<sled::Tree> {
        self.db
            .open_tree(format!("derived/{name}"))
            .inspect_err(|error| tracing::warn!(%error, name, "no derived tree on disk"))
            .ok()
    }

    pub(super) fn len(&self, tree: Tree) -> usize {
        self.tree(tree).len()
    }

    pub(super) fn put_agent_version(
        &self,
        agent_name: &str,
        expected: Option<Vec<u8>>,
        agent: Vec<u8>,
        version_key: &str,
        version: Vec<u8>,
    ) -> Result<bool> {
        use sled::Transactional;
        use sled::transaction::{ConflictableTransactionError, TransactionError};
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

    pub(super) fn take(&self, tree: Tree, key: &str) -> Result<Option<Vec<u8>>> {
        let old = self.tree(tree).remove(key)?;
        if old.is_some() {
            self.commit.dirty();
        }
        Ok(old.map(|v| v.to_vec()))
    }

    pub(super) fn remove(&self, tree: Tree, key: &str) -> Result<()> {
        self.tree(tree).remove(key)?;
        self.commit.dirty();
        Ok(())
    }

    pub(super) fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}
