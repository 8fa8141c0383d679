//! Log compaction (`cleanup.policy=compact`): keep the latest record per key.
//!
//! As Kafka's `LogCleaner`, a pass has two phases. It indexes the dirty section — the closed
//! segments from the end of the last pass up to the active segment's base offset (the active
//! segment is neither read nor cleaned) — into a key-hash → latest-offset map bounded by
//! `log.cleaner.dedupe.buffer.size`. When the map fills first, the dirty section ends at the
//! last fully indexed segment and the next pass continues from there (within the first
//! segment if not even it fits). It then rewrites every closed segment below that end,
//! dropping records whose key has a later offset in the map; tombstones stay for
//! `delete.retention.ms` and records younger than `min.compaction.lag.ms` always stay.
//!
//! Records are filtered as raw bytes: a rewritten batch keeps its base offset, last offset
//! delta, timestamps, producer id, epoch and base sequence, and each kept record is copied
//! byte for byte (headers included); only the record count, length and CRC change, and
//! compressed batches are recompressed with their own codec. Segments are streamed through
//! buffers of `log.cleaner.io.buffer.size`; a rewritten segment is written beside the original
//! as `.cleaned`, fsynced, and renamed over it under the partition lock, so a crash leaves
//! either file. Producer state does not depend on the removed batches: a producer snapshot at
//! or above the active segment exists before anything is removed.

mod offset_map;
mod reader;

use std::io;

use bytes::BytesMut;
use parking_lot::Mutex;

use super::batch::{BatchHeader, HEADER_LEN};
use super::codec::compress;
use super::record::{batch_records, RecordMeta};
use super::segment::file_name;
use super::{Log, SegmentRef};
use offset_map::OffsetMap;
use reader::{BatchReader, CleanedWriter};

/// What one compaction pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CleanStats {
    pub segments_rewritten: usize,
    pub records_removed: usize,
    /// Keys in the offset map when indexing stopped.
    pub keys_indexed: usize,
    /// Whether the map filled before the dirty section's end (a later pass continues).
    pub map_full: bool,
    /// Where the next pass's dirty section starts.
    pub cleaned_upto: i64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Bytes the offset map allocated.
    pub map_bytes: u64,
}

/// Largest decompressed batch the cleaner reads (a batch above it is kept as it is).
const MAX_SECTION: u64 = 256 << 20;

/// The batch's records, or `None` (logged) when they cannot be read: such a batch is kept.
fn parse_batch(h: &BatchHeader, raw: &[u8]) -> Option<(Vec<u8>, Vec<RecordMeta>)> {
    match batch_records(h, raw, MAX_SECTION) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::warn!(offset = h.base_offset, error = %e, "compaction cannot read a batch; keeping it as is");
            None
        }
    }
}

fn record_key<'s>(section: &'s [u8], r: &RecordMeta) -> Option<&'s [u8]> {
    r.key
        .map(|(at, len)| &section[at as usize..at as usize + len as usize])
}

fn record_timestamp(h: &BatchHeader, r: &RecordMeta) -> i64 {
    if h.is_log_append_time() {
        h.max_timestamp
    } else {
        h.base_timestamp + r.timestamp_delta
    }
}

/// Rebuilds a batch holding only `kept` records, header fields otherwise untouched.
fn rebuild(
    h: &BatchHeader,
    raw: &[u8],
    section: &[u8],
    kept: &[&RecordMeta],
) -> Result<Vec<u8>, String> {
    let mut plain = Vec::new();
    for r in kept {
        plain.extend_from_slice(&section[r.start as usize..r.end as usize]);
    }
    let mut body = BytesMut::new();
    compress(h.compression(), &plain, &mut body)?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&raw[..HEADER_LEN]);
    out.extend_from_slice(&body);
    let batch_length = (out.len() - 12) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    out[57..61].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Runs one compaction pass over `log` if its dirty ratio calls for it.
pub(crate) fn compact(log: &Mutex<Log>, now_ms: i64) -> io::Result<CleanStats> {
    let view = log.lock().cleaning_view();
    let cfg = &view.config;
    let mut stats = CleanStats {
        cleaned_upto: view.cleaned_upto,
        ..CleanStats::default()
    };
    let first_dirty = view.cleaned_upto;
    if !cfg.cleanup_policy.compact || view.closed.is_empty() || first_dirty >= view.active_base {
        return Ok(stats);
    }
    let total: u64 = view.closed.iter().map(|s| s.size).sum();
    let dirty: u64 = view
        .closed
        .iter()
        .filter(|s| s.next_offset > first_dirty)
        .map(|s| s.size)
        .sum();
    if total == 0 || (dirty as f64 / total as f64) < cfg.min_cleanable_dirty_ratio {
        return Ok(stats);
    }
    log.lock().ensure_producer_snapshot()?;

    // Half the I/O budget reads, half writes, as Kafka splits it.
    let chunk = (cfg.cleaner.io_buffer_size / 2).max(HEADER_LEN);
    // The dirty section's offset span bounds its record count, so a small log gets a small map.
    let max_keys = (view.active_base - first_dirty).max(0) as u64;
    let mut map = OffsetMap::new(
        cfg.cleaner.dedupe_buffer_size,
        cfg.cleaner.load_factor,
        max_keys,
    );
    stats.map_bytes = map.allocated_bytes();
    let dirty_end = build_map(
        &view.closed,
        first_dirty,
        view.active_base,
        chunk,
        &mut map,
        &mut stats,
    )?;
    stats.keys_indexed = map.len();

    let lag_horizon = now_ms.saturating_sub(cfg.min_compaction_lag_ms);
    let tombstone_horizon = now_ms.saturating_sub(cfg.delete_retention_ms);
    let keep = |key: Option<&[u8]>, offset: i64, timestamp: i64, tombstone: bool| -> bool {
        let Some(key) = key else { return true };
        if offset >= dirty_end || timestamp > lag_horizon {
            return true;
        }
        if map.get(key).is_some_and(|latest| latest > offset) {
            return false;
        }
        !tombstone || timestamp > tombstone_horizon
    };

    for seg in view.closed.iter().filter(|s| s.base < dirty_end) {
        let cleaned = view
            .dir
            .join(format!("{}.cleaned", file_name(seg.base, "log")));
        let mut out = CleanedWriter::new(&seg.file, &cleaned, chunk);
        let mut reader = BatchReader::new(&seg.file, seg.size, chunk);
        while let Some((pos, h, raw)) = reader.next_batch()? {
            stats.bytes_read += raw.len() as u64;
            let parsed = (!h.is_control() && h.base_offset < dirty_end)
                .then(|| parse_batch(&h, raw))
                .flatten();
            let Some((section, records)) = parsed else {
                out.write(raw)?;
                continue;
            };
            let kept: Vec<&RecordMeta> = records
                .iter()
                .filter(|r| {
                    keep(
                        record_key(&section, r),
                        h.base_offset + r.offset_delta as i64,
                        record_timestamp(&h, r),
                        r.value.is_none(),
                    )
                })
                .collect();
            if kept.len() == records.len() {
                out.write(raw)?;
                continue;
            }
            match rebuild(&h, raw, &section, &kept) {
                Ok(batch) => {
                    out.start(pos)?;
                    if !kept.is_empty() {
                        out.write(&batch)?;
                    }
                    stats.records_removed += records.len() - kept.len();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "compaction cannot rebuild a batch; keeping it as is");
                    out.write(raw)?;
                }
            }
        }
        stats.bytes_written += out.written;
        if let Some(path) = out.finish()? {
            log.lock().replace_segment(seg.base, &path, now_ms)?;
            stats.segments_rewritten += 1;
        }
    }
    log.lock().set_cleaned_upto(dirty_end)?;
    stats.cleaned_upto = dirty_end;
    Ok(stats)
}

/// Indexes the keys of the closed segments from `first_dirty` up to `active_base` into `map`;
/// returns where the indexed (dirty) section ends: `active_base` when everything fit, else the
/// base of the segment where the map filled, or — when that is the first segment — the offset
/// of the first record left out.
fn build_map(
    closed: &[SegmentRef],
    first_dirty: i64,
    active_base: i64,
    chunk: usize,
    map: &mut OffsetMap,
    stats: &mut CleanStats,
) -> io::Result<i64> {
    for seg in closed.iter().filter(|s| s.next_offset > first_dirty) {
        let mut reader = BatchReader::new(&seg.file, seg.size, chunk);
        while let Some((_, h, raw)) = reader.next_batch()? {
            stats.bytes_read += raw.len() as u64;
            if h.is_control() || h.last_offset() < first_dirty {
                continue;
            }
            let Some((section, records)) = parse_batch(&h, raw) else {
                continue;
            };
            for r in &records {
                let offset = h.base_offset + r.offset_delta as i64;
                let Some(key) = record_key(&section, r) else {
                    continue;
                };
                if offset < first_dirty || map.put(key, offset) {
                    continue;
                }
                stats.map_full = true;
                return Ok(if seg.base > first_dirty {
                    seg.base
                } else {
                    offset
                });
            }
        }
    }
    Ok(active_base)
}

#[cfg(test)]
pub(crate) use offset_map::BYTES_PER_ENTRY;
