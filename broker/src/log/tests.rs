use super::batch::tests::make_batch;
use super::validator::batch_headers;
use super::*;
use crate::config::BrokerConfig;

mod cleaner;
mod producer_snapshots;
mod recovery;

fn config(overrides: &[(&str, &str)]) -> Arc<TopicConfig> {
    let map = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Arc::new(TopicConfig::resolve(map, &BrokerConfig::default()).unwrap())
}

fn append(log: &mut Log, n: usize, now: i64) -> AppendInfo {
    let b = make_batch(n, None);
    let mut h = batch_headers(&b, 1 << 20).unwrap();
    log.append(&b, &mut h, now).unwrap()
}

#[test]
fn append_read_roll_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&[("segment.bytes", "1000"), ("index.interval.bytes", "100")]);
    let mut log = Log::open(dir.path(), cfg.clone(), true, 0).unwrap();
    for i in 0..50 {
        assert_eq!(append(&mut log, 3, 0).base_offset, i * 3);
    }
    assert!(log.segment_count() > 3);
    assert_eq!(log.next_offset(), 150);
    // A fetch in the middle of a batch returns that whole batch.
    let data = log.read_plan(76).read(76, 1).unwrap();
    let h = batch::BatchHeader::parse(&data).unwrap();
    assert_eq!(h.base_offset, 75);
    assert_eq!(data.len(), h.size());
    let all = log.read_plan(0).read(0, 1 << 20).unwrap();
    assert!(all.len() > h.size());
    log.flush(true).unwrap();
    drop(log);
    let log = Log::open(dir.path(), cfg, false, 0).unwrap();
    assert_eq!(log.next_offset(), 150);
    let data = log.read_plan(149).read(149, 10_000).unwrap();
    assert_eq!(batch::BatchHeader::parse(&data).unwrap().base_offset, 147);
    assert!(log.read_plan(150).read(150, 10_000).unwrap().is_empty());
}

#[test]
fn appends_after_reopen_go_to_the_end() {
    for clean in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config(&[]), true, 0).unwrap();
        append(&mut log, 3, 0);
        append(&mut log, 3, 0);
        log.flush(true).unwrap();
        drop(log);
        let mut log = Log::open(dir.path(), config(&[]), clean, 0).unwrap();
        assert_eq!(append(&mut log, 3, 0).base_offset, 6);
        let mut offset = 0;
        let mut bases = Vec::new();
        loop {
            let data = log.read_plan(offset).read(offset, 1 << 20).unwrap();
            let headers = batch_headers(&data, 1 << 20).unwrap_or_default();
            let Some(last) = headers.last() else { break };
            bases.extend(headers.iter().map(|h| h.base_offset));
            offset = last.last_offset() + 1;
        }
        assert_eq!(bases, vec![0, 3, 6], "clean={clean}");
    }
}

#[test]
fn retention_by_bytes_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&[("segment.bytes", "500"), ("retention.bytes", "1000")]);
    let mut log = Log::open(dir.path(), cfg, true, 0).unwrap();
    for _ in 0..40 {
        append(&mut log, 2, 0);
    }
    let before = log.segment_count();
    assert!(log.apply_retention(0).unwrap() > 0);
    assert!(log.segment_count() < before);
    assert!(log.log_start_offset() > 0);
    assert!(log.size_bytes() <= 1000 + 500);
    let dir2 = tempfile::tempdir().unwrap();
    let cfg = config(&[("segment.bytes", "500"), ("retention.ms", "1000")]);
    let mut log = Log::open(dir2.path(), cfg, true, 0).unwrap();
    for _ in 0..40 {
        append(&mut log, 2, 0);
    }
    // make_batch timestamps are 1_700_000_000_000 + i.
    assert_eq!(log.apply_retention(1_700_000_000_500).unwrap(), 0);
    assert!(log.apply_retention(1_700_000_010_000).unwrap() > 0);
    assert_eq!(log.segment_count(), 1);
}

#[test]
fn timestamp_lookup_and_log_append_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(&[]), true, 0).unwrap();
    append(&mut log, 5, 0);
    append(&mut log, 5, 0);
    assert_eq!(
        log.timestamp_lookup(1_700_000_000_003).find().unwrap(),
        Some((3, 1_700_000_000_003))
    );
    assert_eq!(
        log.timestamp_lookup(1_800_000_000_000).find().unwrap(),
        None
    );
    assert_eq!(
        log.max_timestamp_lookup().find().unwrap(),
        Some((4, 1_700_000_000_004))
    );
    // A lookup holds no borrow of the log (it is scanned without the partition lock): appends
    // made after it was taken are not seen, and the log keeps taking them.
    let before = log.timestamp_lookup(1_700_000_000_000);
    let max_before = log.max_timestamp_lookup();
    append(&mut log, 5, 0);
    assert_eq!(before.find().unwrap(), Some((0, 1_700_000_000_000)));
    assert_eq!(max_before.find().unwrap(), Some((4, 1_700_000_000_004)));
    assert_eq!(
        log.timestamp_lookup(1_700_000_000_004).find().unwrap(),
        Some((4, 1_700_000_000_004))
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&[("message.timestamp.type", "LogAppendTime")]);
    let mut log = Log::open(dir.path(), cfg, true, 0).unwrap();
    let info = append(&mut log, 2, 42);
    assert_eq!(info.log_append_time, 42);
    let data = log.read_plan(0).read(0, 1 << 20).unwrap();
    let h = batch_headers(&data, 1 << 20).unwrap()[0];
    assert!(h.is_log_append_time());
    assert_eq!(h.max_timestamp, 42);
}

#[test]
fn idempotent_duplicates_are_acknowledged_with_original_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(&[]), true, 0).unwrap();
    append(&mut log, 1, 0);
    let b = make_batch(3, Some((9, 0, 0)));
    let mut h = batch_headers(&b, 1 << 20).unwrap();
    let first = log.append(&b, &mut h.clone(), 0).unwrap();
    assert_eq!(first.base_offset, 1);
    let again = log.append(&b, &mut h, 0).unwrap();
    assert_eq!(again.base_offset, 1);
    assert_eq!(log.next_offset(), 4);
    let gap = make_batch(1, Some((9, 0, 7)));
    let mut h = batch_headers(&gap, 1 << 20).unwrap();
    assert_eq!(log.append(&gap, &mut h, 0).unwrap_err().code(), 45);
    // State survives a restart (rebuilt from batch headers).
    log.flush(true).unwrap();
    drop(log);
    let mut log = Log::open(dir.path(), config(&[]), false, 0).unwrap();
    let b = make_batch(3, Some((9, 0, 0)));
    let mut h = batch_headers(&b, 1 << 20).unwrap();
    assert_eq!(log.append(&b, &mut h, 0).unwrap().base_offset, 1);
    let next = make_batch(1, Some((9, 0, 3)));
    let mut h = batch_headers(&next, 1 << 20).unwrap();
    assert_eq!(log.append(&next, &mut h, 0).unwrap().base_offset, 4);
}

#[test]
fn delete_records_moves_the_start_deletes_segments_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&[("segment.bytes", "500")]);
    let mut log = Log::open(dir.path(), cfg.clone(), true, 0).unwrap();
    for _ in 0..30 {
        append(&mut log, 5, 0);
    }
    let segments = log.segment_count();
    assert!(segments > 3);
    // Mid-batch: the batch at 70 straddles the new start; whole segments below go.
    assert_eq!(log.delete_records(72).unwrap(), 72);
    assert_eq!(log.log_start_offset(), 72);
    assert!(log.segment_count() < segments);
    assert!(log.segments.keys().next().copied().unwrap() <= 72);
    // A lower offset changes nothing and answers the current low watermark.
    assert_eq!(log.delete_records(10).unwrap(), 72);
    // Timestamp lookups never answer below the start (timestamps are 1_700_000_000_000 + i
    // within each batch of 5, so every batch has a record at +0).
    assert_eq!(
        log.timestamp_lookup(0).find().unwrap(),
        Some((72, 1_700_000_000_002))
    );
    assert!(matches!(
        log.delete_records(151),
        Err(DeleteRecordsError::OutOfRange { .. })
    ));
    assert!(matches!(
        log.delete_records(-2),
        Err(DeleteRecordsError::OutOfRange { .. })
    ));
    log.flush(true).unwrap();
    drop(log);
    for clean in [true, false] {
        let log = Log::open(dir.path(), cfg.clone(), clean, 0).unwrap();
        assert_eq!(log.log_start_offset(), 72, "clean={clean}");
        assert_eq!(log.next_offset(), 150);
    }
    // -1 means the high watermark: everything goes, appends continue at the end.
    let mut log = Log::open(dir.path(), cfg.clone(), true, 0).unwrap();
    assert_eq!(log.delete_records(-1).unwrap(), 150);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(append(&mut log, 1, 0).base_offset, 150);
    assert_eq!(log.log_start_offset(), 150);
}

#[test]
fn delete_records_needs_the_delete_policy() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&[("cleanup.policy", "compact")]);
    let mut log = Log::open(dir.path(), cfg, true, 0).unwrap();
    append(&mut log, 3, 0);
    assert!(matches!(
        log.delete_records(1),
        Err(DeleteRecordsError::Policy)
    ));
    assert_eq!(log.log_start_offset(), 0);
}

#[test]
fn a_log_ending_below_its_checkpointed_start_restarts_empty_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(&[]), true, 0).unwrap();
    append(&mut log, 4, 0);
    assert_eq!(log.delete_records(-1).unwrap(), 4);
    drop(log);
    // The data vanished (a lost tail) but the checkpoint survived.
    std::fs::remove_file(dir.path().join(segment::file_name(0, "log"))).unwrap();
    let mut log = Log::open(dir.path(), config(&[]), false, 0).unwrap();
    assert_eq!(log.log_start_offset(), 4);
    assert_eq!(log.next_offset(), 4);
    assert_eq!(append(&mut log, 1, 0).base_offset, 4);
}
