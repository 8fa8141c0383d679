//! Log compaction (`cleanup.policy=compact`): keep the latest record per key.
//!
//! A pass reads every segment to find each key's latest offset, then rewrites the closed
//! segments keeping only those records (tombstones stay for `delete.retention.ms`, records
//! younger than `min.compaction.lag.ms` always stay). Records are filtered as raw bytes, as
//! Kafka does: a rewritten batch keeps its base offset, last offset delta, timestamps,
//! producer id, epoch and base sequence, and each kept record is copied byte for byte
//! (headers included); only the record count, length and CRC change, and compressed batches
//! are recompressed with their own codec. A rewritten segment is written beside the original,
//! fsynced, and renamed over it under the partition lock, so a crash leaves either file.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;

use super::batch::{BatchHeader, HEADER_LEN};
use super::codec::compress;
use super::record::batch_records;
use super::segment::{file_name, header_at, read_at};
use super::{Log, SegmentRef};

/// What one compaction pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CleanStats {
    pub segments_rewritten: usize,
    pub records_removed: usize,
}

fn for_each_batch(
    file: &File,
    size: u64,
    f: &mut dyn FnMut(BatchHeader, Bytes) -> io::Result<()>,
) -> io::Result<()> {
    let mut pos = 0;
    while let Some(h) = header_at(file, pos, size)? {
        let raw = Bytes::from(read_at(file, pos, h.size())?);
        f(h, raw)?;
        pos += h.size() as u64;
    }
    Ok(())
}

/// One record of a batch, located but not copied.
struct RawRecord {
    offset: i64,
    timestamp: i64,
    key: Option<Bytes>,
    tombstone: bool,
    /// The whole record (length prefix included) within the decompressed records section.
    start: usize,
    end: usize,
}

/// Largest decompressed batch the cleaner reads (a batch above it is kept as it is).
const MAX_SECTION: u64 = 256 << 20;

/// The batch's records, or `None` (logged) when they cannot be read: such a batch is kept.
fn parse_batch(h: &BatchHeader, raw: &[u8]) -> Option<(Bytes, Vec<RawRecord>)> {
    let parsed = batch_records(h, raw, MAX_SECTION)
        .map(|(section, records)| (Bytes::from(section), records));
    let (section, records) = match parsed {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(offset = h.base_offset, error = %e, "compaction cannot read a batch; keeping it as is");
            return None;
        }
    };
    let records = records
        .into_iter()
        .map(|r| RawRecord {
            offset: h.base_offset + r.offset_delta as i64,
            timestamp: if h.is_log_append_time() {
                h.max_timestamp
            } else {
                h.base_timestamp + r.timestamp_delta
            },
            key: r
                .key
                .map(|(at, len)| section.slice(at as usize..at as usize + len as usize)),
            tombstone: r.value.is_none(),
            start: r.start as usize,
            end: r.end as usize,
        })
        .collect();
    Some((section, records))
}

/// Rebuilds a batch holding only `kept` records, header fields otherwise untouched.
fn rebuild(
    h: &BatchHeader,
    raw: &Bytes,
    section: &Bytes,
    kept: &[&RawRecord],
) -> Result<Vec<u8>, String> {
    let mut plain = Vec::new();
    for r in kept {
        plain.extend_from_slice(&section[r.start..r.end]);
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
    let (old, active, cfg, cleaned_upto, dir) = {
        let l = log.lock();
        let (old, active) = l.cleaning_snapshot();
        (
            old,
            active,
            Arc::clone(l.config()),
            l.cleaned_upto,
            l.dir().to_path_buf(),
        )
    };
    let mut stats = CleanStats::default();
    if !cfg.cleanup_policy.compact || old.is_empty() {
        return Ok(stats);
    }
    let total: u64 = old.iter().map(|(_, _, s)| s).sum();
    let dirty: u64 = old
        .iter()
        .filter(|(b, _, _)| *b >= cleaned_upto)
        .map(|(_, _, s)| s)
        .sum();
    if total == 0 || (dirty as f64 / total as f64) < cfg.min_cleanable_dirty_ratio {
        return Ok(stats);
    }

    let mut latest: HashMap<Bytes, i64> = HashMap::new();
    let segments = old
        .iter()
        .map(|(_, f, s)| (f, *s))
        .chain(std::iter::once((&active.0, active.1)));
    for (file, size) in segments {
        for_each_batch(file, size, &mut |h, raw| {
            if h.is_control() {
                return Ok(());
            }
            let Some((_, records)) = parse_batch(&h, &raw) else {
                return Ok(());
            };
            for r in records {
                if let Some(k) = r.key {
                    latest.insert(k, r.offset);
                }
            }
            Ok(())
        })?;
    }

    let lag_horizon = now_ms.saturating_sub(cfg.min_compaction_lag_ms);
    let tombstone_horizon = now_ms.saturating_sub(cfg.delete_retention_ms);
    let keep = |r: &RawRecord| -> bool {
        let Some(k) = &r.key else { return true };
        if r.timestamp > lag_horizon {
            return true;
        }
        if latest.get(k) != Some(&r.offset) {
            return false;
        }
        !r.tombstone || r.timestamp > tombstone_horizon
    };

    for (base, file, size) in &old {
        let mut out: Vec<u8> = Vec::new();
        let mut changed = false;
        for_each_batch(file, *size, &mut |h, raw| {
            let parsed = (!h.is_control()).then(|| parse_batch(&h, &raw)).flatten();
            let Some((section, records)) = parsed else {
                out.extend_from_slice(&raw);
                return Ok(());
            };
            let kept: Vec<&RawRecord> = records.iter().filter(|r| keep(r)).collect();
            if kept.len() == records.len() {
                out.extend_from_slice(&raw);
                return Ok(());
            }
            match rebuild(&h, &raw, &section, &kept) {
                Ok(_) if kept.is_empty() => {}
                Ok(batch) => out.extend_from_slice(&batch),
                Err(e) => {
                    tracing::warn!(error = %e, "compaction cannot rebuild a batch; keeping it as is");
                    out.extend_from_slice(&raw);
                    return Ok(());
                }
            }
            changed = true;
            stats.records_removed += records.len() - kept.len();
            Ok(())
        })?;
        if !changed {
            continue;
        }
        let cleaned = dir.join(format!("{}.cleaned", file_name(*base, "log")));
        let mut f = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&cleaned)?;
        f.write_all(&out)?;
        f.sync_all()?;
        drop(f);
        log.lock().replace_segment(*base, &cleaned, now_ms)?;
        stats.segments_rewritten += 1;
    }
    log.lock().cleaned_upto = first_dirty_after(&old);
    Ok(stats)
}

/// Segments with a base at or above this were rolled after this pass.
fn first_dirty_after(old: &[SegmentRef]) -> i64 {
    old.last().map(|(b, _, _)| b + 1).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BrokerConfig, TopicConfig};
    use crate::log::validator::batch_headers;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    fn batch(records: &[(&str, Option<&str>)], ts: i64, compression: Compression) -> Vec<u8> {
        let recs: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| {
                let mut headers = indexmap::IndexMap::new();
                headers.insert(
                    StrBytes::from_static_str("h"),
                    Some(Bytes::from(format!("{k}-{i}"))),
                );
                Record {
                    transactional: false,
                    control: false,
                    partition_leader_epoch: -1,
                    producer_id: -1,
                    producer_epoch: -1,
                    timestamp_type: TimestampType::Creation,
                    offset: i as i64,
                    sequence: i as i32 - 1,
                    timestamp: ts,
                    key: Some(Bytes::from(k.to_string())),
                    value: v.map(|v| Bytes::from(v.to_string())),
                    headers,
                    delete_horizon: false,
                }
            })
            .collect();
        let mut buf = BytesMut::new();
        let opts = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, &recs, &opts).unwrap();
        buf.to_vec()
    }

    fn compacted(compression: Compression) {
        let dir = tempfile::tempdir().unwrap();
        let mut o = std::collections::BTreeMap::new();
        o.insert("cleanup.policy".into(), "compact".into());
        o.insert("segment.bytes".into(), "300".into());
        o.insert("delete.retention.ms".into(), "1000".into());
        let cfg = Arc::new(TopicConfig::resolve(o, &BrokerConfig::default()).unwrap());
        let log = Mutex::new(Log::open(dir.path(), cfg, true, 0).unwrap());
        let now = 10_000;
        let append = |records: &[(&str, Option<&str>)], ts: i64| {
            let b = batch(records, ts, compression);
            let mut h = batch_headers(&b, 1 << 20).unwrap();
            log.lock().append(&b, &mut h, now).unwrap();
        };
        for round in 0..5 {
            let v1 = format!("a{round}");
            let v2 = format!("b{round}");
            append(
                &[("a", Some(&v1)), ("b", Some(&v2)), ("a", Some(&v1))],
                now - 5000,
            );
        }
        // An old tombstone for "b" (dropped) and a fresh one for "c" (kept).
        append(&[("b", None)], now - 5000);
        append(&[("c", None)], now - 10);
        append(&[("d", Some("x"))], now);
        let stats = compact(&log, now).unwrap();
        assert!(stats.records_removed >= 12, "{stats:?}");
        let l = log.lock();
        let mut seen = Vec::new();
        let mut offset = 0;
        loop {
            let mut data = l.read_plan(offset).read(offset, 1 << 20).unwrap();
            if data.is_empty() {
                break;
            }
            for (_, h) in crate::log::batch::complete_batches(&data) {
                // Batches keep their offset span: base offset and last offset delta.
                if h.base_offset < 15 {
                    assert_eq!((h.base_offset % 3, h.last_offset_delta), (0, 2));
                } else {
                    assert_eq!(h.last_offset_delta, 0);
                }
            }
            while !data.is_empty() {
                let set = RecordBatchDecoder::decode(&mut data).unwrap();
                assert_eq!(set.compression, compression);
                for r in set.records {
                    offset = r.offset + 1;
                    let key = String::from_utf8(r.key.unwrap().to_vec()).unwrap();
                    let header = r.headers.get(&b"h"[..]).cloned().flatten().unwrap();
                    seen.push((
                        key,
                        r.offset,
                        r.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
                        header,
                    ));
                }
            }
        }
        let expect = |k: &str, off: i64, v: Option<&str>, hi: usize| {
            (
                k.to_string(),
                off,
                v.map(String::from),
                Bytes::from(format!("{k}-{hi}")),
            )
        };
        assert_eq!(
            seen,
            vec![
                expect("a", 14, Some("a4"), 2),
                expect("c", 16, None, 0),
                expect("d", 17, Some("x"), 0),
            ]
        );
    }

    #[test]
    fn keeps_latest_value_per_key_and_recent_tombstones() {
        compacted(Compression::None);
    }

    #[test]
    fn compressed_batches_are_filtered_and_recompressed() {
        for c in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            compacted(c);
        }
    }
}
