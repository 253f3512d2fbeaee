//! The write-ahead journal of money movements: an append-only file of
//! checksummed records, group-committed with one `fdatasync` per group (a
//! sled flush costs about two). Its records are the durable truth the
//! settlement books are replayed from.

use super::commit::GroupCommit;
use super::{Error, Result};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest record accepted (a journal entry with its transaction record).
const RECORD_BYTES_MAX: usize = 16 << 20;

/// The journal file.
pub struct Wal {
    file: Mutex<File>,
    commit: Arc<GroupCommit>,
}

fn checksum(bytes: &[u8]) -> [u8; 4] {
    let digest = Sha256::digest(bytes);
    [digest[0], digest[1], digest[2], digest[3]]
}

impl Wal {
    /// Opens (or creates) the journal at `path`, returning it with every
    /// intact record in order. A torn tail (a crash mid-append) is cut off.
    pub fn open(path: &Path) -> Result<(Wal, Vec<Vec<u8>>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut records = Vec::new();
        let mut at = 0usize;
        while let Some(header) = bytes.get(at..at + 8) {
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let Some(body) = bytes.get(at + 8..at + 8 + len) else {
                break;
            };
            if header[4..8] != checksum(body) {
                break;
            }
            records.push(body.to_vec());
            at += 8 + len;
        }
        if at < bytes.len() {
            tracing::warn!(
                kept = at,
                dropped = bytes.len() - at,
                "journal: cutting a torn tail"
            );
            file.set_len(at as u64)?;
            file.sync_data()?;
        }
        let syncer = file.try_clone()?;
        let commit = GroupCommit::start(
            move || syncer.sync_data().map_err(|e| e.to_string()),
            Duration::from_secs(3_600),
        );
        Ok((
            Wal {
                file: Mutex::new(file),
                commit,
            },
            records,
        ))
    }

    /// Appends one record (not durable until [`Wal::sync`]).
    pub fn append(&self, record: &[u8]) -> Result<()> {
        if record.len() > RECORD_BYTES_MAX {
            return Err(Error::Encode(serde::ser::Error::custom(
                "journal record over 16 MiB",
            )));
        }
        let mut frame = Vec::with_capacity(8 + record.len());
        frame.extend_from_slice(&(record.len() as u32).to_le_bytes());
        frame.extend_from_slice(&checksum(record));
        frame.extend_from_slice(record);
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(&frame)?;
        self.commit.dirty();
        Ok(())
    }

    /// Waits until every record appended before the call is on disk
    /// (concurrent callers share one `fdatasync`).
    pub async fn sync(&self) -> Result<()> {
        self.commit.sync().await
    }

    /// Syncs and stops the committer.
    pub async fn close(&self) -> Result<()> {
        self.commit.close().await
    }

    /// Syncs performed so far.
    pub fn syncs(&self) -> u64 {
        self.commit.syncs()
    }
}
