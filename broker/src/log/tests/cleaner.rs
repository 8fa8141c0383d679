//! Compaction: latest value per key, tombstones, a bounded key map over several passes, the
//! active segment left alone, streaming through small buffers.

use super::*;
use crate::log::cleaner::{compact, CleanStats, BYTES_PER_ENTRY};
use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType as RecordTimestampType,
};
use parking_lot::Mutex;

/// A batch of keyed records (value `None` = tombstone), each with a header `h = <key>-<index>`;
/// `producer` = (id, epoch, base sequence) for an idempotent batch.
pub(super) fn keyed_batch(
    records: &[(&str, Option<&str>)],
    ts: i64,
    compression: Compression,
    producer: Option<(i64, i16, i32)>,
) -> Vec<u8> {
    let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
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
                producer_id: pid,
                producer_epoch: epoch,
                timestamp_type: RecordTimestampType::Creation,
                offset: i as i64,
                sequence: if seq < 0 {
                    i as i32 - 1
                } else {
                    seq + i as i32
                },
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

/// A topic config over a broker config, both from `key=value` pairs.
pub(super) fn config_with(topic: &[(&str, &str)], broker: &[(&str, &str)]) -> Arc<TopicConfig> {
    let map = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let broker = BrokerConfig::from_overrides(map(broker)).unwrap();
    Arc::new(TopicConfig::resolve(map(topic), &broker).unwrap())
}

pub(super) fn append_keyed(log: &Mutex<Log>, records: &[(&str, Option<&str>)], ts: i64, now: i64) {
    let b = keyed_batch(records, ts, Compression::None, None);
    let mut h = batch_headers(&b, 1 << 20).unwrap();
    log.lock().append(&b, &mut h, now).unwrap();
}

/// Every record readable from offset 0: (offset, key, value).
pub(super) fn contents(log: &Log) -> Vec<(i64, String, Option<String>)> {
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let mut data = log.read_plan(offset).read(offset, 1 << 20).unwrap();
        if data.is_empty() {
            return seen;
        }
        // Compaction can leave a batch's last offsets without records: go on after the batch.
        let last = crate::log::batch::complete_batches(&data)
            .last()
            .map(|(_, h)| h.last_offset());
        offset = last.expect("a read returns whole batches") + 1;
        while !data.is_empty() {
            for r in RecordBatchDecoder::decode(&mut data).unwrap().records {
                let text = |b: Bytes| String::from_utf8(b.to_vec()).unwrap();
                seen.push((r.offset, text(r.key.unwrap()), r.value.map(text)));
            }
        }
    }
}

/// The bytes of every segment file, in order.
fn segment_bytes(log: &Log) -> Vec<(i64, Vec<u8>)> {
    log.segments
        .keys()
        .map(|b| {
            let data = fs::read(log.dir().join(segment::file_name(*b, "log"))).unwrap();
            (*b, data)
        })
        .collect()
}

fn compacted(compression: Compression) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&[
        ("cleanup.policy", "compact"),
        ("segment.bytes", "300"),
        ("delete.retention.ms", "1000"),
    ]);
    let log = Mutex::new(Log::open(dir.path(), cfg, true, 0).unwrap());
    let now = 10_000;
    let append = |records: &[(&str, Option<&str>)], ts: i64| {
        let b = keyed_batch(records, ts, compression, None);
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
    // The active segment is never cleaned: roll so everything above is closed.
    log.lock().roll(now).unwrap();
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
        let mut next = offset;
        for (_, h) in crate::log::batch::complete_batches(&data) {
            // Batches keep their offset span: base offset and last offset delta.
            if h.base_offset < 15 {
                assert_eq!((h.base_offset % 3, h.last_offset_delta), (0, 2));
            } else {
                assert_eq!(h.last_offset_delta, 0);
            }
            next = h.last_offset() + 1;
        }
        while !data.is_empty() {
            let set = RecordBatchDecoder::decode(&mut data).unwrap();
            assert_eq!(set.compression, compression);
            for r in set.records {
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
        offset = next;
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

/// The same 1200 records (260 keys, overwrites, some old tombstones) in a fresh log.
fn build(dir: &Path, segment_bytes: &str, broker: &[(&str, &str)], now: i64) -> Mutex<Log> {
    let cfg = config_with(
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", segment_bytes),
            ("delete.retention.ms", "1000"),
            ("min.cleanable.dirty.ratio", "0"),
        ],
        broker,
    );
    let log = Mutex::new(Log::open(dir, cfg, true, 0).unwrap());
    for b in 0..300u64 {
        let keys: Vec<String> = (0..4)
            .map(|i| format!("key-{}", (b * 37 + i * 11) % 260))
            .collect();
        let values: Vec<String> = (0..4)
            .map(|i| format!("value-{b}-{i}-{}", "x".repeat(b as usize % 50)))
            .collect();
        let records: Vec<(&str, Option<&str>)> = keys
            .iter()
            .zip(&values)
            .enumerate()
            .map(|(i, (k, v))| (k.as_str(), (b % 13 != 0 || i != 0).then_some(v.as_str())))
            .collect();
        append_keyed(&log, &records, now - 5000, now);
    }
    log
}

/// Runs passes until the dirty section is done; returns the stats of each.
fn compact_fully(log: &Mutex<Log>, now: i64) -> Vec<CleanStats> {
    let mut passes = Vec::new();
    loop {
        let s = compact(log, now).unwrap();
        passes.push(s);
        if !s.map_full {
            return passes;
        }
        assert!(passes.len() < 1000, "no progress: {s:?}");
    }
}

/// A key map too small for the dirty section takes several passes (continuing where the last
/// stopped, within a segment when not even one fits) and ends exactly as one big pass; so do
/// I/O buffers smaller than a segment or a batch.
#[test]
fn a_small_key_map_or_io_buffer_needs_more_passes_but_gives_the_same_log() {
    let now = 1_000_000;
    let tiny_map = ("log.cleaner.dedupe.buffer.size", "1024");
    for segment_bytes in ["1500", "8000"] {
        let reference_dir = tempfile::tempdir().unwrap();
        let reference = build(reference_dir.path(), segment_bytes, &[], now);
        let before = contents(&reference.lock());
        let passes = compact_fully(&reference, now);
        assert_eq!(passes.len(), 1, "{passes:?}");
        let expected = segment_bytes_of(&reference);
        let after = contents(&reference.lock());
        assert!(
            after.len() < before.len() / 2,
            "{} of {}",
            after.len(),
            before.len()
        );
        // Each key's last value survives, unless it was an old tombstone; later offsets win.
        let mut latest = std::collections::BTreeMap::new();
        for (offset, key, value) in &before {
            latest.insert(key.clone(), (*offset, value.clone()));
        }
        let active_base = *reference.lock().segments.keys().next_back().unwrap();
        for (key, (offset, value)) in &latest {
            let kept = after.iter().find(|(o, k, _)| k == key && *o == *offset);
            if value.is_none() && *offset < active_base {
                assert!(kept.is_none(), "old tombstone {key} kept");
            } else {
                assert!(kept.is_some(), "{key}@{offset} lost");
            }
        }
        for variant in [
            vec![tiny_map],
            vec![("log.cleaner.io.buffer.size", "100")],
            vec![("log.cleaner.io.buffer.size", "2000")],
            vec![tiny_map, ("log.cleaner.io.buffer.size", "0")],
        ] {
            let dir = tempfile::tempdir().unwrap();
            let log = build(dir.path(), segment_bytes, &variant, now);
            let passes = compact_fully(&log, now);
            if variant.contains(&tiny_map) {
                assert!(passes.len() > 3, "{variant:?}: {passes:?}");
                let max_keys = 1024 / BYTES_PER_ENTRY as usize;
                assert!(passes
                    .iter()
                    .all(|p| p.keys_indexed <= max_keys && p.map_bytes <= 1024));
            } else {
                assert_eq!(passes.len(), 1);
            }
            assert_eq!(contents(&log.lock()), after, "{segment_bytes} {variant:?}");
            assert_eq!(
                segment_bytes_of(&log),
                expected,
                "{segment_bytes} {variant:?}"
            );
        }
    }
}

fn segment_bytes_of(log: &Mutex<Log>) -> Vec<(i64, Vec<u8>)> {
    segment_bytes(&log.lock())
}

/// Only closed segments are read and cleaned: a key whose newest value is in the active
/// segment keeps its newest closed-segment value (and a tombstone there removes nothing yet).
#[test]
fn the_active_segment_never_affects_cleaning() {
    let dir = tempfile::tempdir().unwrap();
    let now = 1_000_000;
    let cfg = config(&[
        ("cleanup.policy", "compact"),
        ("delete.retention.ms", "1000"),
        ("min.cleanable.dirty.ratio", "0"),
    ]);
    let log = Mutex::new(Log::open(dir.path(), cfg, true, 0).unwrap());
    append_keyed(
        &log,
        &[("k", Some("v1")), ("j", Some("x"))],
        now - 5000,
        now,
    );
    append_keyed(&log, &[("k", Some("v2"))], now - 5000, now);
    log.lock().roll(now).unwrap();
    append_keyed(&log, &[("k", Some("v3")), ("j", None)], now - 5000, now);
    let stats = compact(&log, now).unwrap();
    assert_eq!(
        (stats.records_removed, stats.cleaned_upto),
        (1, 3),
        "{stats:?}"
    );
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        contents(&log.lock()),
        vec![
            (1, "j".into(), some("x")),
            (2, "k".into(), some("v2")),
            (3, "k".into(), some("v3")),
            (4, "j".into(), None),
        ]
    );
    // Nothing new is dirty until the next roll, also after a restart (the cleaner offset is
    // checkpointed).
    assert_eq!(compact(&log, now).unwrap().segments_rewritten, 0);
    let cfg = Arc::clone(log.lock().config());
    drop(log);
    let log = Mutex::new(Log::open(dir.path(), cfg, true, now).unwrap());
    let idle = compact(&log, now).unwrap();
    assert_eq!((idle.bytes_read, idle.cleaned_upto), (0, 3), "{idle:?}");
    log.lock().roll(now).unwrap();
    let stats = compact(&log, now).unwrap();
    assert_eq!(stats.records_removed, 3, "{stats:?}");
    assert_eq!(contents(&log.lock()), vec![(3, "k".into(), some("v3"))]);
}
