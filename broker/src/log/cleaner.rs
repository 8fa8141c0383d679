//! Log compaction (`cleanup.policy=compact`): keep the latest record per key.
//!
//! A pass reads every segment to find each key's latest offset, then rewrites the closed
//! segments keeping only those records (tombstones stay for `delete.retention.ms`, records
//! younger than `min.compaction.lag.ms` always stay). Batches that lose nothing are copied
//! byte for byte; the others are re-encoded with their original codec, offsets, producer id
//! and sequence numbers. A rewritten segment is written beside the original, fsynced, and
//! renamed over it under the partition lock, so a crash leaves either the old or the new file.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use parking_lot::Mutex;

use super::batch::BatchHeader;
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

fn decode(raw: &Bytes) -> Option<Vec<Record>> {
    let mut buf = raw.clone();
    match RecordBatchDecoder::decode(&mut buf) {
        Ok(set) => Some(set.records),
        Err(e) => {
            tracing::warn!(error = %e, "compaction cannot decode a batch; keeping it as is");
            None
        }
    }
}

fn codec(h: &BatchHeader) -> Compression {
    match h.compression() {
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => Compression::None,
    }
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
        for_each_batch(file, size, &mut |_, raw| {
            for r in decode(&raw).unwrap_or_default() {
                if let Some(k) = r.key {
                    latest.insert(k, r.offset);
                }
            }
            Ok(())
        })?;
    }

    let lag_horizon = now_ms.saturating_sub(cfg.min_compaction_lag_ms);
    let tombstone_horizon = now_ms.saturating_sub(cfg.delete_retention_ms);
    let keep = |r: &Record| -> bool {
        let Some(k) = &r.key else { return true };
        if r.timestamp > lag_horizon {
            return true;
        }
        if latest.get(k) != Some(&r.offset) {
            return false;
        }
        r.value.is_some() || r.timestamp > tombstone_horizon
    };

    let mut last_clean_base = cleaned_upto;
    for (base, file, size) in &old {
        let mut out = BytesMut::new();
        let mut changed = false;
        for_each_batch(file, *size, &mut |h, raw| {
            let Some(records) = decode(&raw).filter(|_| !h.is_control()) else {
                out.extend_from_slice(&raw);
                return Ok(());
            };
            let kept: Vec<Record> = records.iter().filter(|r| keep(r)).cloned().collect();
            if kept.len() == records.len() {
                out.extend_from_slice(&raw);
                return Ok(());
            }
            changed = true;
            stats.records_removed += records.len() - kept.len();
            if kept.is_empty() {
                return Ok(());
            }
            let before = out.len();
            let opts = RecordEncodeOptions {
                version: 2,
                compression: codec(&h),
            };
            if let Err(e) = RecordBatchEncoder::encode(&mut out, &kept, &opts) {
                tracing::warn!(error = %e, "compaction cannot re-encode a batch; keeping it as is");
                out.truncate(before);
                out.extend_from_slice(&raw);
            }
            Ok(())
        })?;
        last_clean_base = *base;
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
    let _ = last_clean_base;
    log.lock().cleaned_upto = active_base_after(&old);
    Ok(stats)
}

fn active_base_after(old: &[SegmentRef]) -> i64 {
    old.last().map(|(b, _, _)| b + 1).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BrokerConfig, TopicConfig};
    use crate::log::batch::validate_record_set;
    use kafka_protocol::records::TimestampType;

    fn batch(records: &[(&str, Option<&str>)], ts: i64) -> Vec<u8> {
        let recs: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
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
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        let mut buf = BytesMut::new();
        let opts = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &recs, &opts).unwrap();
        buf.to_vec()
    }

    #[test]
    fn keeps_latest_value_per_key_and_recent_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = std::collections::BTreeMap::new();
        o.insert("cleanup.policy".into(), "compact".into());
        o.insert("segment.bytes".into(), "200".into());
        o.insert("delete.retention.ms".into(), "1000".into());
        let cfg = Arc::new(TopicConfig::resolve(o, &BrokerConfig::default()).unwrap());
        let log = Mutex::new(Log::open(dir.path(), cfg, true, 0).unwrap());
        let now = 10_000;
        for round in 0..5 {
            let v1 = format!("a{round}");
            let v2 = format!("b{round}");
            let b = batch(&[("a", Some(&v1)), ("b", Some(&v2))], now - 5000);
            let mut h = validate_record_set(&b, 1 << 20).unwrap();
            log.lock().append(&b, &mut h, now).unwrap();
        }
        // An old tombstone for "b" (dropped) and a fresh one for "c" (kept).
        for (key, ts) in [("b", now - 5000), ("c", now - 10)] {
            let b = batch(&[(key, None)], ts);
            let mut h = validate_record_set(&b, 1 << 20).unwrap();
            log.lock().append(&b, &mut h, now).unwrap();
        }
        let b = batch(&[("d", Some("x"))], now);
        let mut h = validate_record_set(&b, 1 << 20).unwrap();
        log.lock().append(&b, &mut h, now).unwrap();
        let stats = compact(&log, now).unwrap();
        assert!(stats.records_removed >= 8, "{stats:?}");
        let l = log.lock();
        let mut data = l.read_plan(0).read(0, 1 << 20).unwrap();
        let mut seen = Vec::new();
        let mut offset = 0;
        loop {
            while let Ok(set) = RecordBatchDecoder::decode(&mut data) {
                for r in set.records {
                    offset = r.offset + 1;
                    seen.push((
                        String::from_utf8(r.key.unwrap().to_vec()).unwrap(),
                        r.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
                    ));
                }
                if data.is_empty() {
                    break;
                }
            }
            data = l.read_plan(offset).read(offset, 1 << 20).unwrap();
            if data.is_empty() {
                break;
            }
        }
        assert_eq!(
            seen,
            vec![
                ("a".to_string(), Some("a4".to_string())),
                ("c".to_string(), None),
                ("d".to_string(), Some("x".to_string())),
            ]
        );
    }
}
