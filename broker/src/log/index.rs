//! Sparse offset and time indexes of one segment.
//!
//! Entries are added every `index.interval.bytes` of log. Entry *k* of the offset index
//! (`.index`: relative offset u32, position u32) and entry *k* of the time index
//! (`.timeindex`: timestamp i64, relative offset u32) describe the same batch: the time
//! index stores the largest timestamp of everything *before* that batch, so a timestamp
//! lookup can start scanning there. Files are rebuilt from the log when they look wrong.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// One index point: a batch's offset relative to the segment base and its file position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    pub rel_offset: u32,
    pub position: u32,
    /// Largest timestamp of the batches before this one in the segment.
    pub max_timestamp_before: i64,
}

/// Both indexes of a segment, kept in memory and appended to their files.
pub(crate) struct SegmentIndex {
    entries: Vec<IndexEntry>,
    offset_path: PathBuf,
    time_path: PathBuf,
    offset_file: BufWriter<File>,
    time_file: BufWriter<File>,
}

impl SegmentIndex {
    /// Opens (creating when missing) the index files; `load` reads existing entries.
    pub fn open(offset_path: &Path, time_path: &Path, load: bool) -> io::Result<Self> {
        let mut entries = Vec::new();
        if load {
            entries = read_entries(offset_path, time_path).unwrap_or_default();
        }
        let open = |p: &Path, truncate: bool| {
            OpenOptions::new()
                .create(true)
                .append(!truncate)
                .write(true)
                .truncate(truncate)
                .open(p)
        };
        let offset_file = BufWriter::new(open(offset_path, !load)?);
        let time_file = BufWriter::new(open(time_path, !load)?);
        Ok(SegmentIndex {
            entries,
            offset_path: offset_path.to_path_buf(),
            time_path: time_path.to_path_buf(),
            offset_file,
            time_file,
        })
    }

    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    pub fn append(&mut self, entry: IndexEntry) -> io::Result<()> {
        self.offset_file
            .write_all(&entry.rel_offset.to_be_bytes())?;
        self.offset_file.write_all(&entry.position.to_be_bytes())?;
        self.time_file
            .write_all(&entry.max_timestamp_before.to_be_bytes())?;
        self.time_file.write_all(&entry.rel_offset.to_be_bytes())?;
        self.entries.push(entry);
        Ok(())
    }

    /// Position of the last indexed batch whose relative offset is ≤ `rel_offset`.
    pub fn position_for_offset(&self, rel_offset: u32) -> u32 {
        let i = self.entries.partition_point(|e| e.rel_offset <= rel_offset);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].position
        }
    }

    /// Position from which a scan finds the first batch holding a timestamp ≥ `ts`.
    pub fn position_for_timestamp(&self, ts: i64) -> u32 {
        let i = self
            .entries
            .partition_point(|e| e.max_timestamp_before < ts);
        if i == 0 {
            0
        } else {
            self.entries[i - 1].position
        }
    }

    pub fn flush(&mut self, sync: bool) -> io::Result<()> {
        self.offset_file.flush()?;
        self.time_file.flush()?;
        if sync {
            self.offset_file.get_ref().sync_data()?;
            self.time_file.get_ref().sync_data()?;
        }
        Ok(())
    }

    pub fn paths(&self) -> [&Path; 2] {
        [&self.offset_path, &self.time_path]
    }
}

fn read_entries(offset_path: &Path, time_path: &Path) -> io::Result<Vec<IndexEntry>> {
    let mut off = Vec::new();
    File::open(offset_path)?.read_to_end(&mut off)?;
    let mut time = Vec::new();
    File::open(time_path)?.read_to_end(&mut time)?;
    if off.len() % 8 != 0 || time.len() % 12 != 0 || off.len() / 8 != time.len() / 12 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "index sizes disagree",
        ));
    }
    let mut entries = Vec::with_capacity(off.len() / 8);
    for (o, t) in off.chunks_exact(8).zip(time.chunks_exact(12)) {
        let rel_offset = u32::from_be_bytes(o[0..4].try_into().expect("4"));
        let position = u32::from_be_bytes(o[4..8].try_into().expect("4"));
        let max_timestamp_before = i64::from_be_bytes(t[0..8].try_into().expect("8"));
        if u32::from_be_bytes(t[8..12].try_into().expect("4")) != rel_offset {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "indexes disagree",
            ));
        }
        entries.push(IndexEntry {
            rel_offset,
            position,
            max_timestamp_before,
        });
    }
    Ok(entries)
}

/// Whether loaded entries are plausible for a log file of `log_size` bytes.
pub(crate) fn entries_look_valid(entries: &[IndexEntry], log_size: u64) -> bool {
    entries.windows(2).all(|w| {
        w[0].rel_offset < w[1].rel_offset
            && w[0].position < w[1].position
            && w[0].max_timestamp_before <= w[1].max_timestamp_before
    }) && entries
        .last()
        .is_none_or(|e| (e.position as u64) < log_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let (o, t) = (dir.path().join("0.index"), dir.path().join("0.timeindex"));
        let mut idx = SegmentIndex::open(&o, &t, false).unwrap();
        for (i, ts) in [(10u32, 100i64), (20, 200), (30, 300)] {
            idx.append(IndexEntry {
                rel_offset: i,
                position: i * 100,
                max_timestamp_before: ts,
            })
            .unwrap();
        }
        idx.flush(false).unwrap();
        assert_eq!(idx.position_for_offset(5), 0);
        assert_eq!(idx.position_for_offset(25), 2000);
        assert_eq!(idx.position_for_timestamp(250), 2000);
        assert_eq!(idx.position_for_timestamp(50), 0);
        let again = SegmentIndex::open(&o, &t, true).unwrap();
        assert_eq!(again.entries(), idx.entries());
        assert!(entries_look_valid(again.entries(), 3001));
        assert!(!entries_look_valid(again.entries(), 3000));
    }
}
