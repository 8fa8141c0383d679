//! Reading stored batches without the partition lock: for Fetch, whole batches as bytes, never
//! re-encoded; for ListOffsets, the first record at or after a timestamp. What to read is
//! captured under the lock (files, positions, the size the data ends at), then read here.

use std::fs::File;
use std::io;
use std::sync::Arc;

use bytes::Bytes;

use super::batch::{complete_batches, BatchHeader};
use super::record;
use super::segment::{header_at, read_at};

/// A segment as a reader sees it: its file, where to start scanning and where data ends.
pub(crate) struct SegmentView {
    pub file: Arc<File>,
    pub start: u64,
    pub limit: u64,
}

/// What to read for one fetch, captured under the partition lock and executed without it.
pub(crate) struct ReadPlan {
    pub views: Vec<SegmentView>,
}

impl ReadPlan {
    /// Whole batches from the one containing `offset`, up to `max_bytes` — but always at least
    /// one batch, so a batch larger than the limit still makes progress (KIP-74).
    pub fn read(&self, offset: i64, max_bytes: usize) -> io::Result<Bytes> {
        for v in &self.views {
            let mut pos = v.start;
            while let Some(h) = header_at(&v.file, pos, v.limit)? {
                if h.last_offset() < offset {
                    pos += h.size() as u64;
                    continue;
                }
                let want = max_bytes.max(h.size()).min((v.limit - pos) as usize);
                let mut buf = read_at(&v.file, pos, want)?;
                let end = complete_batches(&buf)
                    .last()
                    .map(|(p, h)| p + h.size())
                    .unwrap_or(0);
                buf.truncate(end);
                return Ok(Bytes::from(buf));
            }
        }
        Ok(Bytes::new())
    }
}

/// A ListOffsets timestamp lookup, captured under the partition lock (`Log::timestamp_lookup`,
/// `Log::max_timestamp_lookup`) and scanned without it, as a Fetch's [`ReadPlan`] is: decoding
/// batches from disk must not hold up appends to the partition. Batches appended since are not
/// seen, and segments deleted or cleaned since are read as they were (their files stay open).
pub(crate) struct TimestampLookup {
    pub(super) target: i64,
    pub(super) min_offset: i64,
    pub(super) views: Vec<SegmentView>,
}

impl TimestampLookup {
    /// The first record at or after offset `min_offset` with timestamp ≥ `target`: its offset
    /// and timestamp.
    pub fn find(&self) -> io::Result<Option<(i64, i64)>> {
        for v in &self.views {
            let mut pos = v.start;
            while let Some(h) = header_at(&v.file, pos, v.limit)? {
                if h.max_timestamp >= self.target && h.last_offset() >= self.min_offset {
                    let found =
                        first_record_at_or_after(&v.file, pos, &h, self.target, self.min_offset)?;
                    if found.is_some() {
                        return Ok(found);
                    }
                }
                pos += h.size() as u64;
            }
        }
        Ok(None)
    }
}

/// Decodes the batch at `pos` and finds its first record at or after offset `min_offset`
/// with timestamp ≥ `ts`.
fn first_record_at_or_after(
    file: &File,
    pos: u64,
    h: &BatchHeader,
    ts: i64,
    min_offset: i64,
) -> io::Result<Option<(i64, i64)>> {
    if h.is_log_append_time() {
        // Every record of the batch carries the batch timestamp.
        return Ok(Some((h.base_offset.max(min_offset), h.max_timestamp)));
    }
    let raw = read_at(file, pos, h.size())?;
    let records = record::batch_records(h, &raw, LOOKUP_SECTION_MAX).map(|(_, records)| records);
    match records {
        Ok(records) => Ok(records
            .iter()
            .map(|r| {
                (
                    h.base_offset + r.offset_delta as i64,
                    h.base_timestamp + r.timestamp_delta,
                )
            })
            .find(|(offset, timestamp)| *timestamp >= ts && *offset >= min_offset)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read a batch for a timestamp lookup");
            Ok(Some((h.base_offset.max(min_offset), h.max_timestamp)))
        }
    }
}

/// Largest decompressed batch a timestamp lookup reads; past it the batch's own timestamp is used.
const LOOKUP_SECTION_MAX: u64 = 256 << 20;
