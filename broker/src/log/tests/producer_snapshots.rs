//! Producer snapshots: written at roll and shutdown, used at start-up, survive compaction.

use super::cleaner::{config_with, contents, keyed_batch};
use super::*;
use crate::log::cleaner::compact;
use kafka_protocol::records::Compression;
use parking_lot::Mutex;

fn idempotent(log: &mut Log, pid: i64, seq: i32, n: usize) -> Result<AppendInfo, AppendError> {
    let b = make_batch(n, Some((pid, 0, seq)));
    let mut h = batch_headers(&b, 1 << 20).unwrap();
    log.append(&b, &mut h, 0)
}

/// What `Broker::shutdown` does to every log.
fn shut_down(log: &mut Log) {
    log.flush(true).unwrap();
    log.checkpoint_recovery_point().unwrap();
}

fn snapshots(dir: &Path) -> Vec<i64> {
    producer_snapshot::list(dir).unwrap()
}

#[test]
fn start_up_replays_only_the_batches_after_the_newest_valid_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&[("segment.bytes", "600")]);
    let mut log = Log::open(dir.path(), cfg.clone(), true, 0).unwrap();
    for i in 0..20 {
        idempotent(&mut log, 5, i * 2, 2).unwrap();
    }
    assert!(log.segment_count() > 3);
    let active_base = *log.segments.keys().next_back().unwrap();
    assert_eq!(
        snapshots(dir.path()).last(),
        Some(&active_base),
        "written at roll"
    );
    shut_down(&mut log);
    let all = snapshots(dir.path());
    assert_eq!(all.last(), Some(&40), "written at shutdown");
    assert!(all.len() <= 3, "older snapshots are deleted: {all:?}");
    drop(log);

    let mut log = Log::open(dir.path(), cfg.clone(), true, 0).unwrap();
    assert_eq!(log.producer_batches_replayed, 0);
    assert_eq!(
        idempotent(&mut log, 5, 38, 2).unwrap().base_offset,
        38,
        "duplicate"
    );
    assert_eq!(idempotent(&mut log, 5, 41, 1).unwrap_err().code(), 45);
    for i in 0..3 {
        idempotent(&mut log, 5, 40 + i * 2, 2).unwrap();
    }
    // An unclean stop: the data is synced but no snapshot is at the end.
    log.flush(true).unwrap();
    let newest = *snapshots(dir.path()).last().unwrap();
    let end = log.next_offset();
    drop(log);
    let check = |log: &mut Log| {
        assert_eq!(
            idempotent(log, 5, 44, 2).unwrap().base_offset,
            44,
            "duplicate"
        );
        assert_eq!(idempotent(log, 5, 47, 1).unwrap_err().code(), 45);
    };
    let mut log = Log::open(dir.path(), cfg.clone(), false, 0).unwrap();
    assert_eq!(
        log.producer_batches_replayed as i64,
        (end - newest) / 2,
        "from {newest}"
    );
    check(&mut log);
    drop(log);

    // A damaged newest snapshot is ignored (and deleted): the next older one is used.
    let path = dir.path().join(segment::file_name(newest, "snapshot"));
    let mut bytes = fs::read(&path).unwrap();
    bytes[20] ^= 0xff;
    fs::write(&path, bytes).unwrap();
    let older = snapshots(dir.path())[snapshots(dir.path()).len() - 2];
    let mut log = Log::open(dir.path(), cfg.clone(), false, 0).unwrap();
    assert!(!path.exists());
    assert_eq!(log.producer_batches_replayed as i64, (end - older) / 2);
    check(&mut log);
    drop(log);

    // Without any snapshot every batch is walked, with the same result.
    for offset in snapshots(dir.path()) {
        fs::remove_file(dir.path().join(segment::file_name(offset, "snapshot"))).unwrap();
    }
    let mut log = Log::open(dir.path(), cfg, false, 0).unwrap();
    assert_eq!(log.producer_batches_replayed as i64, end / 2);
    check(&mut log);
}

/// A snapshot above the recovered log end describes batches that are gone: it is deleted and
/// an older one (plus the batches after it) is used.
#[test]
fn snapshots_above_the_log_end_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(&[]), true, 0).unwrap();
    idempotent(&mut log, 5, 0, 2).unwrap();
    shut_down(&mut log);
    idempotent(&mut log, 5, 2, 2).unwrap();
    idempotent(&mut log, 5, 4, 2).unwrap();
    log.flush(true).unwrap();
    drop(log);
    producer_snapshot::write(dir.path(), 100, &Default::default()).unwrap();
    let mut log = Log::open(dir.path(), config(&[]), false, 0).unwrap();
    assert_eq!(snapshots(dir.path()), vec![2]);
    assert_eq!(log.producer_batches_replayed, 2);
    assert_eq!(
        idempotent(&mut log, 5, 4, 2).unwrap().base_offset,
        4,
        "duplicate"
    );
    assert_eq!(idempotent(&mut log, 5, 6, 1).unwrap().base_offset, 6);
}

/// A producer whose every batch was compacted away is still known after a restart: retries
/// are duplicates, gaps are out of order. Without the snapshot it would be forgotten.
#[test]
fn producers_whose_batches_were_compacted_away_are_remembered() {
    let dir = tempfile::tempdir().unwrap();
    let now = 1_000_000;
    let cfg = config_with(
        &[
            ("cleanup.policy", "compact"),
            ("min.cleanable.dirty.ratio", "0"),
        ],
        &[],
    );
    let log = Mutex::new(Log::open(dir.path(), cfg.clone(), true, 0).unwrap());
    let produce = |log: &mut Log, records: &[(&str, Option<&str>)], seq: i32| {
        let b = keyed_batch(records, now, Compression::None, Some((9, 0, seq)));
        let mut h = batch_headers(&b, 1 << 20).unwrap();
        log.append(&b, &mut h, now)
    };
    produce(&mut log.lock(), &[("a", Some("1")), ("b", Some("1"))], 0).unwrap();
    produce(&mut log.lock(), &[("a", Some("2"))], 2).unwrap();
    super::cleaner::append_keyed(&log, &[("a", Some("3")), ("b", Some("3"))], now, now);
    log.lock().roll(now).unwrap();
    let stats = compact(&log, now).unwrap();
    assert_eq!(stats.records_removed, 3, "{stats:?}");
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        contents(&log.lock()),
        vec![(3, "a".into(), some("3")), (4, "b".into(), some("3"))]
    );
    shut_down(&mut log.lock());
    drop(log);

    // The same directory without snapshots (a full walk) has forgotten producer 9.
    let bare = tempfile::tempdir().unwrap();
    for entry in fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".snapshot") {
            fs::copy(&path, bare.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let mut forgot = Log::open(bare.path(), cfg.clone(), true, 0).unwrap();
    assert_eq!(
        produce(&mut forgot, &[("a", Some("4"))], 3)
            .unwrap_err()
            .code(),
        45
    );

    for clean in [true, false] {
        let copy = tempfile::tempdir().unwrap();
        for entry in fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            fs::copy(&path, copy.path().join(path.file_name().unwrap())).unwrap();
        }
        let mut log = Log::open(copy.path(), cfg.clone(), clean, 0).unwrap();
        let retry = produce(&mut log, &[("a", Some("2"))], 2).unwrap();
        assert_eq!(
            retry.base_offset, 2,
            "a retry of the compacted batch is a duplicate"
        );
        assert_eq!(
            produce(&mut log, &[("a", Some("4"))], 4)
                .unwrap_err()
                .code(),
            45
        );
        assert_eq!(
            produce(&mut log, &[("a", Some("4"))], 3)
                .unwrap()
                .base_offset,
            5
        );
    }
}
