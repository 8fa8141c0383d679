//! Producer-state snapshots: `<20-digit offset>.snapshot` files in the partition directory.
//!
//! As Kafka's `ProducerStateManager`, a snapshot holds the producer map as of an offset (every
//! batch below it applied, none at or above it). One is written whenever the recovery point is
//! checkpointed at the log end: at each segment roll and at clean shutdown. Start-up loads the
//! newest valid one at or below the log end and replays only the batch headers after it, and
//! producers whose batches compaction removed are still known.
//!
//! Format (big-endian): version `i16` (1), CRC-32C `u32` of everything after it, the offset
//! `i64` (must match the name), then the body `ProducerStateMap::encode` writes. A file with a
//! wrong version, CRC, offset or body is deleted and the next older one is tried.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::producer_state::ProducerStateMap;
use super::segment::file_name;
use crate::util::sync_dir;

const VERSION: i16 = 1;
const EXT: &str = "snapshot";
/// Snapshots kept after a new one is written; older ones are deleted.
const KEEP: usize = 3;

fn path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(file_name(offset, EXT))
}

/// Whether `name` is a leftover of an interrupted snapshot write (deleted at open).
pub(crate) fn is_temporary(name: &str) -> bool {
    name.ends_with(".snapshot.tmp")
}

/// Offsets of the snapshot files in `dir`, ascending.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<i64>> {
    let mut offsets = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(offset) = name
            .strip_suffix(".snapshot")
            .and_then(|s| s.parse::<i64>().ok())
        {
            offsets.push(offset);
        }
    }
    offsets.sort_unstable();
    Ok(offsets)
}

/// The file contents for `map` at `offset`.
pub(crate) fn encode(offset: i64, map: &ProducerStateMap) -> Vec<u8> {
    let mut out = Vec::with_capacity(18 + map.len() * 64);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&offset.to_be_bytes());
    map.encode(&mut out);
    let crc = crc32c::crc32c(&out[6..]);
    out[2..6].copy_from_slice(&crc.to_be_bytes());
    out
}

/// Decodes a snapshot file claimed to be at `offset`; `None` when anything does not check.
pub(crate) fn decode(offset: i64, data: &[u8]) -> Option<ProducerStateMap> {
    if data.len() < 14 || i16::from_be_bytes([data[0], data[1]]) != VERSION {
        return None;
    }
    let crc = u32::from_be_bytes(data[2..6].try_into().ok()?);
    if crc32c::crc32c(&data[6..]) != crc {
        return None;
    }
    if i64::from_be_bytes(data[6..14].try_into().ok()?) != offset {
        return None;
    }
    ProducerStateMap::decode(&data[14..])
}

/// Writes the snapshot of `map` at `offset` durably (temporary file, fsync, rename, directory
/// fsync), then deletes all but the newest `KEEP` snapshots.
pub(crate) fn write(dir: &Path, offset: i64, map: &ProducerStateMap) -> io::Result<()> {
    let target = path(dir, offset);
    let tmp = dir.join(format!("{}.tmp", file_name(offset, EXT)));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&encode(offset, map))?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &target)?;
    sync_dir(dir)?;
    let offsets = list(dir)?;
    for old in &offsets[..offsets.len().saturating_sub(KEEP)] {
        let _ = fs::remove_file(path(dir, *old));
    }
    Ok(())
}

/// Deletes the snapshots above `end` (the log lost that tail, so they describe batches that
/// are gone).
pub(crate) fn delete_above(dir: &Path, end: i64) -> io::Result<()> {
    for offset in list(dir)? {
        if offset > end {
            tracing::info!(log = %dir.display(), offset, end, "deleting a producer snapshot above the log end");
            fs::remove_file(path(dir, offset))?;
        }
    }
    Ok(())
}

/// The newest valid snapshot at or below `max_offset`; invalid ones met on the way are deleted.
pub(crate) fn load_latest(
    dir: &Path,
    max_offset: i64,
) -> io::Result<Option<(i64, ProducerStateMap)>> {
    for offset in list(dir)?.into_iter().rev() {
        if offset > max_offset {
            continue;
        }
        let p = path(dir, offset);
        let data = match fs::read(&p) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        match decode(offset, &data) {
            Some(map) => return Ok(Some((offset, map))),
            None => {
                tracing::warn!(snapshot = %p.display(), "ignoring and deleting a corrupt producer snapshot");
                let _ = fs::remove_file(&p);
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::BatchHeader;

    fn map() -> ProducerStateMap {
        let mut m = ProducerStateMap::default();
        for (pid, seq) in [(3, 0), (3, 4), (11, 0)] {
            m.update(&BatchHeader {
                base_offset: 10 + seq as i64,
                batch_length: 100,
                magic: 2,
                crc: 0,
                attributes: 0,
                last_offset_delta: 3,
                base_timestamp: 5,
                max_timestamp: 9,
                producer_id: pid,
                producer_epoch: 1,
                base_sequence: seq,
                records_count: 4,
            });
        }
        m
    }

    #[test]
    fn round_trip_and_keeps_the_newest_three() {
        let dir = tempfile::tempdir().unwrap();
        let m = map();
        for offset in [5, 20, 40, 60] {
            write(dir.path(), offset, &m).unwrap();
        }
        assert_eq!(list(dir.path()).unwrap(), vec![20, 40, 60]);
        assert_eq!(
            load_latest(dir.path(), i64::MAX).unwrap(),
            Some((60, m.clone()))
        );
        assert_eq!(load_latest(dir.path(), 59).unwrap(), Some((40, m.clone())));
        delete_above(dir.path(), 45).unwrap();
        assert_eq!(list(dir.path()).unwrap(), vec![20, 40]);
    }

    #[test]
    fn corrupt_or_misnamed_snapshots_are_skipped_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let m = map();
        write(dir.path(), 20, &m).unwrap();
        write(dir.path(), 40, &m).unwrap();
        let newest = path(dir.path(), 40);
        let mut bytes = fs::read(&newest).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&newest, &bytes).unwrap();
        // A valid file under the wrong name is not trusted either.
        fs::copy(path(dir.path(), 20), path(dir.path(), 30)).unwrap();
        assert_eq!(load_latest(dir.path(), i64::MAX).unwrap(), Some((20, m)));
        assert_eq!(list(dir.path()).unwrap(), vec![20]);
        assert!(decode(20, &[0, 1]).is_none());
    }
}
