//! The leader epoch cache of a partition (KIP-101/KIP-320): which epoch began at which offset.
//!
//! Every batch is stamped with the epoch current when it was appended. Brook has one replica,
//! so the epoch changes only when the broker starts after an unclean stop: the log may have
//! lost an unsynced tail, so the offsets after it are about to be handed out again, and a new
//! epoch lets clients notice (OffsetForLeaderEpoch answers where their epoch ended). Persisted
//! as Kafka's `leader-epoch-checkpoint`: a version line `0`, a count, then `epoch start_offset`
//! lines.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::util::write_atomically;

/// The file name, as Kafka's.
pub(crate) const FILE: &str = "leader-epoch-checkpoint";

/// One epoch and the first offset appended in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// The cache, always holding at least one entry once opened.
#[derive(Debug)]
pub(crate) struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
}

fn invalid(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed {}: {what}", path.display()),
    )
}

impl LeaderEpochCache {
    /// Loads `dir/leader-epoch-checkpoint`; a log without one starts in epoch 0 at
    /// `log_start` (the file is written then, so the epoch is on disk before any append).
    pub fn open(dir: &Path, log_start: i64) -> io::Result<LeaderEpochCache> {
        let path = dir.join(FILE);
        let text = match fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let mut cache = LeaderEpochCache {
            path,
            entries: Vec::new(),
        };
        match text {
            Some(text) => cache.entries = parse(&cache.path, &text)?,
            None => {
                cache.entries.push(EpochEntry {
                    epoch: 0,
                    start_offset: log_start.max(0),
                });
                cache.persist()?;
            }
        }
        if cache.entries.is_empty() {
            return Err(invalid(&cache.path, "no epochs"));
        }
        Ok(cache)
    }

    fn persist(&self) -> io::Result<()> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        write_atomically(&self.path, text.as_bytes())
    }

    /// The epoch new batches are stamped with.
    pub fn current(&self) -> i32 {
        self.entries.last().expect("never empty").epoch
    }

    /// Forgets epochs that began after `end_offset` (the log was truncated there; an epoch
    /// beginning exactly there may simply have no records yet); the first entry is kept, moved
    /// down if needed, so the cache is never empty.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> io::Result<()> {
        let before = self.entries.clone();
        let first = self.entries[0];
        self.entries.retain(|e| e.start_offset <= end_offset);
        if self.entries.is_empty() {
            self.entries.push(EpochEntry {
                epoch: first.epoch,
                start_offset: end_offset.max(0),
            });
        }
        if self.entries != before {
            self.persist()?;
        }
        Ok(())
    }

    /// Starts a new epoch at `start_offset` (the log end) and persists it before any batch
    /// carries it.
    pub fn bump(&mut self, start_offset: i64) -> io::Result<i32> {
        let epoch = self.current() + 1;
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.persist()?;
        Ok(epoch)
    }

    /// The epoch of the batch holding `offset` (the latest epoch starting at or before it).
    pub fn epoch_for_offset(&self, offset: i64) -> i32 {
        self.entries
            .iter()
            .rev()
            .find(|e| e.start_offset <= offset)
            .unwrap_or(&self.entries[0])
            .epoch
    }

    /// OffsetForLeaderEpoch, as Kafka's `LeaderEpochFileCache.endOffsetFor`: the largest epoch
    /// ≤ `requested` and the offset where it ended (the start of the next epoch, or the log end
    /// for the current one). `(-1, -1)` when the requested epoch is newer than any known.
    pub fn end_offset_for(&self, requested: i32, log_end: i64) -> (i32, i64) {
        if requested < 0 {
            return (-1, -1);
        }
        if requested == self.current() {
            return (requested, log_end);
        }
        let Some(higher) = self.entries.iter().find(|e| e.epoch > requested) else {
            return (-1, -1);
        };
        let floor = self.entries.iter().rev().find(|e| e.epoch <= requested);
        (floor.map_or(requested, |e| e.epoch), higher.start_offset)
    }
}

fn parse(path: &Path, text: &str) -> io::Result<Vec<EpochEntry>> {
    let mut lines = text.lines().map(str::trim);
    if lines.next() != Some("0") {
        return Err(invalid(path, "unknown version"));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or_else(|| invalid(path, "no count"))?;
    let mut entries = Vec::new();
    for line in lines.take(count) {
        let mut parts = line.split_whitespace();
        let (Some(Ok(epoch)), Some(Ok(start_offset))) = (
            parts.next().map(str::parse::<i32>),
            parts.next().map(str::parse::<i64>),
        ) else {
            return Err(invalid(path, "bad entry"));
        };
        entries.push(EpochEntry {
            epoch,
            start_offset,
        });
    }
    if entries.len() != count {
        return Err(invalid(path, "fewer entries than its count"));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_persist_bump_and_answer_end_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochCache::open(dir.path(), 0).unwrap();
        assert_eq!(c.current(), 0);
        assert_eq!(c.bump(100).unwrap(), 1);
        assert_eq!(c.bump(150).unwrap(), 2);
        let c = LeaderEpochCache::open(dir.path(), 0).unwrap();
        assert_eq!(c.current(), 2);
        assert_eq!(
            fs::read_to_string(dir.path().join(FILE)).unwrap(),
            "0\n3\n0 0\n1 100\n2 150\n"
        );
        assert_eq!(c.end_offset_for(0, 200), (0, 100));
        assert_eq!(c.end_offset_for(1, 200), (1, 150));
        assert_eq!(c.end_offset_for(2, 200), (2, 200));
        assert_eq!(c.end_offset_for(3, 200), (-1, -1));
        assert_eq!(c.end_offset_for(-1, 200), (-1, -1));
        assert_eq!(c.epoch_for_offset(99), 0);
        assert_eq!(c.epoch_for_offset(100), 1);
        assert_eq!(c.epoch_for_offset(1000), 2);
    }

    #[test]
    fn truncation_drops_later_epochs_and_keeps_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochCache::open(dir.path(), 10).unwrap();
        c.bump(100).unwrap();
        c.truncate_from_end(100).unwrap();
        assert_eq!(c.current(), 1, "an epoch without records yet stays");
        c.truncate_from_end(99).unwrap();
        assert_eq!(c.current(), 0);
        c.truncate_from_end(5).unwrap();
        assert_eq!(
            c.entries,
            vec![EpochEntry {
                epoch: 0,
                start_offset: 5
            }]
        );
        let c = LeaderEpochCache::open(dir.path(), 0).unwrap();
        assert_eq!(c.current(), 0);
        fs::write(dir.path().join(FILE), "0\n2\n0 0\n").unwrap();
        assert!(LeaderEpochCache::open(dir.path(), 0).is_err());
    }
}
