//! The write-ahead journal of money movements: an append-only log of
//! checksummed records in preallocated space, group-committed with one `fdatasync` per group (a
//! sled flush costs about two). Its records are the durable truth the
//! settlement books are replayed from.

use super::commit::GroupCommit;
use super::{Error, Result};
use sha2::{Digest, Sha256};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest record accepted (a journal entry with its transaction record).
const RECORD_BYTES_MAX: usize = 16 << 20;

/// The file grows by this much zero-filled, synced space at a time. Writes
/// into space already allocated and written change no file metadata, so
/// their `fdatasync` flushes data pages only (about 30% faster here than an
/// append, which also commits the new file size).
const GROWTH_BYTES: u64 = 8 << 20;

/// The journal file: records end where the first invalid header starts;
/// zeros follow up to the allocated length.
pub struct Wal {
    file: Mutex<Tail>,
    commit: Arc<GroupCommit>,
}

/// The file and where the next record goes.
struct Tail {
    file: File,
    end: u64,
    allocated: u64,
}

impl Tail {
    /// Makes sure `bytes` more fit after the end: zero-fills and syncs the
    /// next stretch of the file if not.
    fn reserve(&mut self, bytes: u64) -> std::io::Result<()> {
        if self.end + bytes <= self.allocated {
            return Ok(());
        }
        let grown = (self.end + bytes).div_ceil(GROWTH_BYTES) * GROWTH_BYTES;
        zero(&self.file, self.allocated, grown)?;
        self.file.sync_all()?;
        self.allocated = grown;
        Ok(())
    }
}

/// Writes zeros over `from..to`.
fn zero(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    let block = vec![0u8; 1 << 20];
    let mut at = from;
    while at < to {
        let n = (to - at).min(block.len() as u64) as usize;
        file.write_all_at(&block[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

fn checksum(bytes: &[u8]) -> [u8; 4] {
    let digest = Sha256::digest(bytes);
    [digest[0], digest[1], digest[2], digest[3]]
}

impl Wal {
    /// Opens (or creates) the journal at `path`, returning it with every
    /// intact record in order. A torn tail (a crash mid-append) is zeroed.
    pub fn open(path: &Path) -> Result<(Wal, Vec<Vec<u8>>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
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
            if len == 0 || header[4..8] != checksum(body) {
                break;
            }
            records.push(body.to_vec());
            at += 8 + len;
        }
        if let Some(torn) = bytes[at..].iter().rposition(|b| *b != 0) {
            tracing::warn!(
                kept = at,
                dropped = torn + 1,
                "journal: zeroing a torn tail"
            );
            zero(&file, at as u64, (at + torn + 1) as u64)?;
            file.sync_data()?;
        }
        let mut tail = Tail {
            file,
            end: at as u64,
            allocated: bytes.len() as u64,
        };
        tail.reserve(1)?;
        let syncer = tail.file.try_clone()?;
        let commit = GroupCommit::start(
            move || syncer.sync_data().map_err(|e| e.to_string()),
            Duration::from_secs(3_600),
        );
        Ok((
            Wal {
                file: Mutex::new(tail),
                commit,
            },
            records,
        ))
    }

    /// Appends one record (not durable until [`Wal::sync`]).
    pub fn append(&self, record: &[u8]) -> Result<()> {
        if record.is_empty() || record.len() > RECORD_BYTES_MAX {
            return Err(Error::Encode(serde::ser::Error::custom(
                "journal record empty or over 16 MiB",
            )));
        }
        let mut frame = Vec::with_capacity(8 + record.len());
        frame.extend_from_slice(&(record.len() as u32).to_le_bytes());
        frame.extend_from_slice(&checksum(record));
        frame.extend_from_slice(record);
        let mut tail = self.file.lock().unwrap_or_else(|p| p.into_inner());
        tail.reserve(frame.len() as u64)?;
        tail.file.write_all_at(&frame, tail.end)?;
        tail.end += frame.len() as u64;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: usize, len: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![(i % 250) as u8 + 1; len]).collect()
    }

    /// Records written and synced come back in order after reopening, also
    /// across a growth of the preallocated space; the file holds whole
    /// growth steps.
    #[tokio::test]
    async fn synced_records_survive_reopening_across_growth() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal.wal");
        // 3 × 3 MiB crosses the first 8 MiB step.
        let written = records(3, 3 << 20);
        let (wal, read) = Wal::open(&path).expect("open");
        assert!(read.is_empty());
        for record in &written {
            wal.append(record).expect("append");
        }
        wal.sync().await.expect("sync");
        wal.close().await.expect("close");
        drop(wal);
        assert_eq!(
            std::fs::metadata(&path).expect("meta").len(),
            2 * GROWTH_BYTES
        );
        let (wal, read) = Wal::open(&path).expect("reopen");
        assert_eq!(read, written);
        // Appends after reopening go after the last record, not the end of the file.
        wal.append(b"after").expect("append");
        wal.sync().await.expect("sync");
        drop(wal);
        let (_, read) = Wal::open(&path).expect("reopen");
        assert_eq!(read.len(), 4);
        assert_eq!(read[3], b"after");
    }

    /// A crash mid-append leaves a torn record: it and everything after it
    /// are zeroed, the intact records kept, and new records land where it was.
    #[tokio::test]
    async fn a_torn_tail_is_zeroed_and_overwritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal.wal");
        let (wal, _) = Wal::open(&path).expect("open");
        for record in records(5, 100) {
            wal.append(&record).expect("append");
        }
        wal.sync().await.expect("sync");
        drop(wal);
        // Tear the fifth record: flip a byte in its body.
        let file = OpenOptions::new().write(true).open(&path).expect("file");
        let fifth = 4 * 108 + 8 + 50;
        file.write_all_at(&[0xff], fifth).expect("tear");
        drop(file);
        let (wal, read) = Wal::open(&path).expect("reopen");
        assert_eq!(read, records(4, 100));
        let bytes = std::fs::read(&path).expect("read");
        assert!(bytes[4 * 108..].iter().all(|b| *b == 0), "torn tail left");
        wal.append(b"next").expect("append");
        wal.sync().await.expect("sync");
        drop(wal);
        let (_, read) = Wal::open(&path).expect("reopen");
        assert_eq!(read.len(), 5);
        assert_eq!(read[4], b"next");
    }

    #[test]
    fn empty_and_oversized_records_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (wal, _) = Wal::open(&dir.path().join("journal.wal")).expect("open");
        assert!(wal.append(b"").is_err());
        assert!(wal.append(&vec![1u8; RECORD_BYTES_MAX + 1]).is_err());
    }
}
