//! Unclean-stop recovery: the recovery point, damage in a middle segment, leader epochs.

use super::*;
use batch::HEADER_LEN;

/// Flips one byte inside the records of the `n`th batch of segment `base`.
fn damage_batch(dir: &Path, base: i64, n: usize) {
    let path = dir.join(segment::file_name(base, "log"));
    let mut bytes = fs::read(&path).unwrap();
    let mut pos = 0;
    for _ in 0..n {
        pos += batch::BatchHeader::parse(&bytes[pos..]).unwrap().size();
    }
    bytes[pos + HEADER_LEN + 2] ^= 0x55;
    fs::write(&path, bytes).unwrap();
}

fn bases(log: &Log) -> Vec<i64> {
    log.segments.keys().copied().collect()
}

/// Rolled segments are fsynced and move the recovery point, which is checkpointed; after an
/// unclean stop only segments at or past it are CRC-checked, and damage found in a middle
/// segment ends the log there (later segments are deleted), in a new leader epoch.
#[test]
fn unclean_recovery_checks_past_the_recovery_point_and_bumps_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&[("segment.bytes", "600")]);
    let mut log = Log::open(dir.path(), cfg.clone(), true, 0).unwrap();
    for _ in 0..20 {
        append(&mut log, 3, 0);
    }
    let segs = bases(&log);
    assert!(segs.len() >= 4, "{segs:?}");
    let last_rolled = *segs.last().unwrap();
    assert_eq!(
        checkpoint::read(dir.path(), checkpoint::RECOVERY_POINT).unwrap(),
        Some(last_rolled),
        "the roll into the active segment checkpointed the recovery point"
    );
    assert_eq!(log.leader_epoch(), 0);
    let end = log.next_offset();
    drop(log);

    // Damage below the recovery point is not looked for (it was fsynced before the stop)...
    damage_batch(dir.path(), segs[0], 0);
    // ...damage past it is, and it ends the log even though segments follow.
    damage_batch(dir.path(), segs[1], 0);
    fs::write(
        dir.path().join(checkpoint::RECOVERY_POINT),
        format!("0\n{}\n", segs[1]),
    )
    .unwrap();
    let log = Log::open(dir.path(), cfg.clone(), false, 0).unwrap();
    assert_eq!(log.next_offset(), segs[1], "log ends where the damage is");
    assert_eq!(bases(&log), vec![segs[0], segs[1]]);
    assert!(log.next_offset() < end);
    // A new epoch starts at the new log end; the old one ended there too.
    assert_eq!(log.leader_epoch(), 1);
    assert_eq!(log.end_offset_for_epoch(0), (0, segs[1]));
    assert_eq!(log.end_offset_for_epoch(1), (1, segs[1]));
    drop(log);

    // The epoch is on disk, stamped on new batches, and a clean reopen keeps it.
    let mut log = Log::open(dir.path(), cfg.clone(), true, 0).unwrap();
    assert_eq!(log.leader_epoch(), 1);
    let info = append(&mut log, 2, 0);
    let data = log
        .read_plan(info.base_offset)
        .read(info.base_offset, 1 << 20)
        .unwrap();
    let h = batch::BatchHeader::parse(&data).unwrap();
    assert_eq!(
        h.base_offset,
        info.base_offset,
        "{info:?} {:?}",
        bases(&log)
    );
    assert_eq!(i32::from_be_bytes(data[12..16].try_into().unwrap()), 1);
    assert_eq!(log.epoch_for_offset(info.base_offset), 1);
    assert_eq!(log.epoch_for_offset(0), 0);
}

/// Clean shutdown fsyncs every segment with unsynced data and checkpoints the recovery point
/// at the log end, so the next unclean start has nothing left to check.
#[test]
fn flush_moves_the_recovery_point_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(&[]), true, 0).unwrap();
    append(&mut log, 5, 0);
    log.flush(false).unwrap();
    log.checkpoint_recovery_point().unwrap();
    assert_eq!(
        checkpoint::read(dir.path(), checkpoint::RECOVERY_POINT).unwrap(),
        Some(0),
        "an unsynced append does not move the recovery point"
    );
    log.flush(true).unwrap();
    log.checkpoint_recovery_point().unwrap();
    assert_eq!(
        checkpoint::read(dir.path(), checkpoint::RECOVERY_POINT).unwrap(),
        Some(5)
    );
}

/// What a reopen finds of each segment: base, end, size, largest timestamp.
fn summary(log: &Log) -> Vec<(i64, i64, u64, i64)> {
    log.segments
        .values()
        .map(|s| (s.base_offset, s.next_offset, s.size, s.max_timestamp))
        .collect()
}

/// A read at each offset returns the batch holding it (index look-ups point at the right place).
fn assert_reads_find(log: &Log, offsets: &[i64]) {
    for &offset in offsets {
        let data = log.read_plan(offset).read(offset, 1).unwrap();
        let h = batch::BatchHeader::parse(&data).unwrap();
        assert!(
            h.base_offset <= offset && offset <= h.last_offset(),
            "{offset}"
        );
    }
}

/// After a clean stop, closed segments covered by the producer snapshot open from their
/// indexes: start-up walks only the headers after each one's last index entry (and the active
/// segment's), not every batch, and opens the same log a full walk opens. A closed segment
/// whose index is missing or stale is walked instead, and its index rebuilt.
#[test]
fn a_clean_start_trusts_the_indexes_of_closed_segments() {
    use segment::HEADERS_WALKED;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&[("segment.bytes", "20000"), ("index.interval.bytes", "1000")]);
    let mut log = Log::open(dir.path(), cfg.clone(), true, 0).unwrap();
    let batches = 600;
    for _ in 0..batches {
        append(&mut log, 3, 0);
    }
    let segs = bases(&log);
    assert!(segs.len() >= 4, "{segs:?}");
    log.flush(true).unwrap();
    log.checkpoint_recovery_point().unwrap();
    let expected = summary(&log);
    let active_batches = ((log.next_offset() - segs.last().unwrap()) / 3) as usize;
    drop(log);

    let reopen = |dir: &Path| {
        HEADERS_WALKED.with(|n| n.set(0));
        let log = Log::open(dir, cfg.clone(), true, 0).unwrap();
        (log, HEADERS_WALKED.with(|n| n.get()))
    };
    let (log, walked) = reopen(dir.path());
    assert_eq!(summary(&log), expected);
    // Batches here are ~100 bytes: at most ~11 follow an index entry every 1000 bytes.
    let closed = segs.len() - 1;
    assert!(
        walked <= active_batches + closed * 12,
        "walked {walked} headers of {batches} (active segment {active_batches}, {closed} closed)"
    );
    assert_reads_find(&log, &[0, 1, 299, 900, 1500, log.next_offset() - 1]);
    drop(log);

    // A missing index, and one whose last entry names an offset its batch does not have
    // (stale): both segments are walked, their indexes rebuilt, and the log is the same.
    fs::remove_file(dir.path().join(segment::file_name(segs[0], "index"))).unwrap();
    let idx1 = dir.path().join(segment::file_name(segs[1], "index"));
    let mut bytes = fs::read(&idx1).unwrap();
    let last = bytes.len() - 8;
    let rel = u32::from_be_bytes(bytes[last..last + 4].try_into().unwrap());
    bytes[last..last + 4].copy_from_slice(&(rel + 1).to_be_bytes());
    fs::write(&idx1, &bytes).unwrap();
    let (log, walked_again) = reopen(dir.path());
    assert_eq!(summary(&log), expected);
    assert!(walked_again > walked, "{walked_again} vs {walked}");
    assert_reads_find(&log, &[0, segs[1], segs[1] + 7]);
    drop(log);
    let (_, walked_rebuilt) = reopen(dir.path());
    assert_eq!(
        walked_rebuilt, walked,
        "rebuilt indexes are trusted at the next start"
    );
}
