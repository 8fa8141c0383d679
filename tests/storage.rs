//! The on-disk log: retention by size and by time, compaction, recovery from a corrupt tail,
//! and acknowledged records surviving a `kill -9` of the `brook broker` process.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A producer whose batches stay well below 4 KiB segments.
fn small_batch_producer(bs: &str) -> FutureProducer {
    let mut cfg = producer_config(bs, true);
    cfg.set("batch.size", "2000").set("linger.ms", "1");
    cfg.create().unwrap()
}

fn base_offset_of(segment: &Path) -> i64 {
    let stem = segment.file_stem().unwrap().to_str().unwrap();
    assert_eq!(stem.len(), 20, "segment name {stem} is not 20 digits");
    stem.parse().unwrap()
}

fn total_size(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum()
}

// ---------------------------------------------------------------------------------------------
// Retention

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_size_deletes_old_segments() {
    let b = TestBroker::start_with(&[("log.retention.check.interval.ms", "200")]).await;
    let bs = b.bootstrap();
    let topic = "sized";
    create_topic(
        &bs,
        topic,
        1,
        &[("segment.bytes", "4096"), ("retention.bytes", "8192")],
    )
    .await;
    let p = small_batch_producer(&bs);
    let value = "r".repeat(200);
    let sent: Vec<Out> = (0..250)
        .map(|i| Out::kv(format!("k{i}"), format!("{i}:{value}")).to(0))
        .collect();
    produce_ok(&p, topic, &sent).await;
    drop_blocking(p).await;
    // ~250 × 230 bytes ≈ 57 KB: at least 14 segments of at most 4 KiB were written.
    let dir = b.partition_dir(topic, 0);

    let bs2 = bs.clone();
    let dir2 = dir.clone();
    let (low, files) = poll_until("size retention", TIMEOUT, || {
        let (bs, dir) = (bs2.clone(), dir2.clone());
        async move {
            // Retention runs every 200 ms: take the log start between two identical listings,
            // so both describe the same state.
            let before = segment_files(&dir);
            let (low, high) = watermarks_async(&bs, topic, 0).await?;
            assert_eq!(high, 250, "retention must not change the high watermark");
            let files = segment_files(&dir);
            let settled = before == files;
            Ok((settled && low > 0 && total_size(&files) <= 8192 + 4096).then_some((low, files)))
        }
    })
    .await
    .unwrap_or_else(|e| {
        let files = segment_files(&dir);
        panic!(
            "{e:#}; {} segments of {} bytes remain: {files:?}",
            files.len(),
            total_size(&files)
        )
    });
    assert!(
        files.len() <= 6,
        "{} segments remain after size retention: {files:?}",
        files.len()
    );
    // The log starts at the first remaining segment.
    assert_eq!(
        base_offset_of(&files[0]),
        low,
        "log start vs first segment {files:?}"
    );

    // Consuming from the beginning starts at the new log start and reads densely to the end.
    let recs = read_all_async(&bs, topic).await.unwrap();
    assert_eq!(recs.first().map(|r| r.offset), Some(low));
    let offsets: Vec<i64> = recs.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (low..250).collect::<Vec<_>>());
    for r in &recs {
        assert_eq!(r.value_str(), format!("{}:{value}", r.offset));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_time_deletes_expired_segments() {
    let b = TestBroker::start_with(&[("log.retention.check.interval.ms", "200")]).await;
    let bs = b.bootstrap();
    let topic = "aged";
    create_topic(
        &bs,
        topic,
        1,
        &[("segment.bytes", "4096"), ("retention.ms", "86400000")],
    )
    .await;
    let p = small_batch_producer(&bs);
    // 100 records two days old (past the one-day retention), then 100 current ones.
    let old = now_ms() - 2 * 86_400_000;
    let value = "t".repeat(200);
    let sent: Vec<Out> = (0..200)
        .map(|i| Out {
            timestamp: (i < 100).then_some(old + i as i64),
            ..Out::kv(format!("k{i}"), format!("{i}:{value}")).to(0)
        })
        .collect();
    produce_ok(&p, topic, &sent).await;
    drop_blocking(p).await;

    let bs2 = bs.clone();
    let low = poll_until("time retention", TIMEOUT, || {
        let bs = bs2.clone();
        async move {
            let (low, _) = watermarks_async(&bs, topic, 0).await?;
            Ok((low > 0).then_some(low))
        }
    })
    .await
    .unwrap();
    // Only segments whose newest record is expired go: the current records all stay.
    assert!(
        low <= 100,
        "log start {low} is past the last expired record"
    );
    let files = segment_files(&b.partition_dir(topic, 0));
    assert_eq!(base_offset_of(&files[0]), low);
    let recs = read_all_async(&bs, topic).await.unwrap();
    let offsets: Vec<i64> = recs.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (low..200).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// Compaction

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_latest_value_per_key() {
    let b = TestBroker::start_with(&[
        ("log.retention.check.interval.ms", "200"),
        ("log.cleaner.backoff.ms", "200"),
    ])
    .await;
    let bs = b.bootstrap();
    let topic = "compacted";
    create_topic(
        &bs,
        topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "4096"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "86400000"),
        ],
    )
    .await;
    let p = small_batch_producer(&bs);
    let pad = "c".repeat(100);
    let mut sent = Vec::new();
    for round in 0..10 {
        for k in 0..10 {
            sent.push(Out::kv(format!("k{k}"), format!("k{k}-round{round}-{pad}")).to(0));
        }
    }
    // A tombstone for k3.
    sent.push(Out {
        key: Some(b"k3".to_vec()),
        partition: Some(0),
        ..Out::default()
    });
    // Unique-key filler rolls the segment so every record above is in a closed segment.
    let filler = "f".repeat(300);
    for j in 0..30 {
        sent.push(Out::kv(format!("filler-{j}"), format!("{j}-{filler}")).to(0));
    }
    let acked = produce_ok(&p, topic, &sent).await;
    let total = sent.len() as i64;

    // Expected: the last record of every key, at its original offset.
    let mut latest: BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> = BTreeMap::new();
    for (out, &(_, off)) in sent.iter().zip(&acked) {
        latest.insert(out.key.clone().unwrap(), (off, out.value.clone()));
    }
    assert_eq!(latest.len(), 40);

    let bs2 = bs.clone();
    let last_seen = std::cell::Cell::new(0usize);
    let res = poll_until("compaction", TIMEOUT, || {
        let bs = bs2.clone();
        let n = &last_seen;
        async move {
            let recs = read_all_async(&bs, topic).await?;
            n.set(recs.len());
            Ok((recs.len() == 40).then_some(recs))
        }
    })
    .await;
    let recs = res.unwrap_or_else(|e| {
        panic!(
            "{e:#}; last read returned {} records (40 expected)",
            last_seen.get()
        )
    });
    let mut got: BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> = BTreeMap::new();
    for r in &recs {
        let k = r
            .key
            .clone()
            .expect("a keyless record in a compacted topic");
        assert!(
            got.insert(k, (r.offset, r.value.clone())).is_none(),
            "key {} appears twice after compaction",
            r.key_str()
        );
    }
    assert_eq!(got, latest, "compacted log vs latest value per key");
    let k3 = got.get(b"k3".as_slice()).unwrap();
    assert_eq!(
        k3.1, None,
        "the tombstone for k3 must be kept (delete.retention.ms is a day)"
    );
    // Offsets ascend, and compaction never moves the end of the log.
    assert!(recs.windows(2).all(|w| w[0].offset < w[1].offset));
    assert_eq!(watermarks_async(&bs, topic, 0).await.unwrap().1, total);

    // Produce still works after compaction, and a new value for k0 shadows the old one.
    let (_, off) = produce_one(&p, topic, Out::kv("k0", "after").to(0))
        .await
        .unwrap();
    assert_eq!(off, total);
    drop_blocking(p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compacted_topic_rejects_keyless_records() {
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    create_topic(&bs, "keys-only", 1, &[("cleanup.policy", "compact")]).await;
    let mut cfg = producer_config(&bs, false);
    cfg.set("message.timeout.ms", "20000").set("linger.ms", "0");
    let p: FutureProducer = cfg.create().unwrap();
    let res = produce_one(
        &p,
        "keys-only",
        Out {
            partition: Some(0),
            value: Some(b"no key".to_vec()),
            ..Out::default()
        },
    )
    .await;
    match res {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::InvalidRecord)) => {}
        other => {
            panic!("a keyless record on a compacted topic: expected INVALID_RECORD, got {other:?}")
        }
    }
    // Keyed records are still accepted, and the refused one is not in the log.
    let (_, off) = produce_one(&p, "keys-only", Out::kv("k", "v").to(0))
        .await
        .unwrap();
    drop_blocking(p).await;
    let recs = read_all_async(&bs, "keys-only").await.unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(
        (recs[0].offset, recs[0].value_str()),
        (off, "v".to_string())
    );
}

// ---------------------------------------------------------------------------------------------
// Corrupt tails

async fn produce_numbered(
    bs: &str,
    topic: &str,
    from: usize,
    n: usize,
    one_batch_each: bool,
) -> Vec<(i32, i64)> {
    let mut cfg = producer_config(bs, true);
    if one_batch_each {
        cfg.set("linger.ms", "0").set("max.in.flight", "1");
    }
    let p: FutureProducer = cfg.create().unwrap();
    let recs: Vec<Out> = (from..from + n)
        .map(|i| Out::kv(format!("k{i}"), expected_value(i)).to(0))
        .collect();
    let mut acked = Vec::new();
    if one_batch_each {
        for rec in recs {
            acked.push(produce_one(&p, topic, rec).await.unwrap());
        }
    } else {
        acked = produce_ok(&p, topic, &recs).await;
    }
    drop_blocking(p).await;
    acked
}

fn expected_value(i: usize) -> String {
    format!("value-{i}-{}", "p".repeat(100))
}

/// Compact description of read records for assertions: `"7"` for record 7 intact,
/// `"7!<value>"` for a record that claims to be 7 but differs.
fn ids(recs: &[Rec]) -> Vec<String> {
    recs.iter()
        .map(|r| {
            let v = r.value_str();
            let n: Option<usize> = v
                .strip_prefix("value-")
                .and_then(|x| x.split('-').next())
                .and_then(|x| x.parse().ok());
            match n {
                Some(n) if v == expected_value(n) => n.to_string(),
                Some(n) => format!("{n}!{v}"),
                None => format!("?{v}"),
            }
        })
        .collect()
}

fn range_ids(r: std::ops::Range<usize>) -> Vec<String> {
    r.map(|i| i.to_string()).collect()
}

/// Stops the broker cleanly, or "crashes" it (its runtime is dropped without a shutdown, so
/// there is no clean-shutdown marker and recovery runs on the next start).
async fn stop(b: &mut TestBroker, clean: bool) {
    if clean {
        b.shutdown().await;
    } else {
        b.crash();
    }
}

/// The simplest restart case: records produced after a restart go after the old ones.
async fn produce_after_restart(clean: bool) {
    let mut b = TestBroker::start().await;
    let topic = "continued";
    create_topic(&b.bootstrap(), topic, 1, &[]).await;
    produce_numbered(&b.bootstrap(), topic, 0, 50, false).await;
    stop(&mut b, clean).await;
    b.start_again().await;
    let acked = produce_numbered(&b.bootstrap(), topic, 50, 10, false).await;
    assert_eq!(
        acked.iter().map(|a| a.1).collect::<Vec<_>>(),
        (50..60).collect::<Vec<i64>>()
    );
    for round in 0..2 {
        let recs = read_all_async(&b.bootstrap(), topic).await.unwrap();
        assert_eq!(
            ids(&recs),
            range_ids(0..60),
            "records produced before and after a restart, {round} restarts later"
        );
        b.restart().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_after_clean_restart_appends() {
    produce_after_restart(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_after_crash_restart_appends() {
    produce_after_restart(false).await;
}

/// Garbage appended to the active segment while the broker is down.
async fn garbage_tail(clean: bool) {
    let mut b = TestBroker::start().await;
    let topic = "garbage";
    create_topic(&b.bootstrap(), topic, 1, &[]).await;
    produce_numbered(&b.bootstrap(), topic, 0, 50, false).await;
    stop(&mut b, clean).await;

    let seg = segment_files(&b.partition_dir(topic, 0))
        .pop()
        .expect("no segment");
    let garbage: Vec<u8> = (0..1000).map(|_| rand::random::<u8>()).collect();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&seg)
        .unwrap()
        .write_all(&garbage)
        .unwrap();

    b.start_again().await;
    let bs = b.bootstrap();
    let recs = read_all_async(&bs, topic).await.unwrap();
    assert_eq!(
        ids(&recs),
        range_ids(0..50),
        "after restarting on a garbage tail"
    );
    assert_eq!(watermarks_async(&bs, topic, 0).await.unwrap(), (0, 50));

    // New records go right after the good ones, and are still there after more restarts.
    let acked = produce_numbered(&bs, topic, 50, 10, false).await;
    assert_eq!(
        acked.iter().map(|a| a.1).collect::<Vec<_>>(),
        (50..60).collect::<Vec<i64>>()
    );
    for round in 0..3 {
        let bs = b.bootstrap();
        let recs = read_all_async(&bs, topic).await.unwrap();
        assert_eq!(
            ids(&recs),
            range_ids(0..60),
            "reading from the beginning after producing on the recovered log, {round} restarts later"
        );
        b.restart().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_tail_garbage_after_clean_shutdown() {
    garbage_tail(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_tail_garbage_after_crash() {
    garbage_tail(false).await;
}

/// Bytes flipped inside the last batch (its CRC no longer matches) while the broker is down.
async fn flipped_tail(clean: bool) {
    let mut b = TestBroker::start().await;
    let topic = "flipped";
    create_topic(&b.bootstrap(), topic, 1, &[]).await;
    let acked = produce_numbered(&b.bootstrap(), topic, 0, 50, true).await;
    assert_eq!(acked.last(), Some(&(0, 49)));
    stop(&mut b, clean).await;

    // The last record's batch is the last ~180 bytes of the segment; flip bytes in its value.
    let seg = segment_files(&b.partition_dir(topic, 0))
        .pop()
        .expect("no segment");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg)
        .unwrap();
    let len = f.metadata().unwrap().len();
    let mut buf = [0u8; 4];
    f.seek(SeekFrom::Start(len - 20)).unwrap();
    f.read_exact(&mut buf).unwrap();
    for x in buf.iter_mut() {
        *x ^= 0x5a;
    }
    f.seek(SeekFrom::Start(len - 20)).unwrap();
    f.write_all(&buf).unwrap();
    f.sync_all().unwrap();
    drop(f);

    b.start_again().await;
    let bs = b.bootstrap();
    let recs = read_all_async(&bs, topic).await.unwrap();
    assert_eq!(
        ids(&recs),
        range_ids(0..49),
        "records before the corrupt batch must be served, the corrupt one not"
    );

    let acked = produce_numbered(&bs, topic, 100, 5, false).await;
    assert!(acked.iter().all(|a| a.1 >= 49), "{acked:?}");
    let mut expected = range_ids(0..49);
    expected.extend(range_ids(100..105));
    for round in 0..3 {
        let bs = b.bootstrap();
        let recs = read_all_async(&bs, topic).await.unwrap();
        assert_eq!(ids(&recs), expected, "{round} restarts after producing");
        let offsets: Vec<i64> = recs.iter().map(|r| r.offset).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
        b.restart().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_tail_flipped_bytes_after_clean_shutdown() {
    flipped_tail(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_tail_flipped_bytes_after_crash() {
    flipped_tail(false).await;
}

// ---------------------------------------------------------------------------------------------
// kill -9 of the broker process

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_records_survive_kill_9() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::spawn(dir.path(), &[]);
    let bs = broker.addr.to_string();
    let topic = "crash";
    // Small segments so several roll (and are fsynced) while records flow; every append fsynced.
    create_topic(
        &bs,
        topic,
        2,
        &[("segment.bytes", "16384"), ("flush.messages", "1")],
    )
    .await;

    let mut cfg = producer_config(&bs, false);
    cfg.set("linger.ms", "2")
        .set("message.timeout.ms", "10000")
        .set("retries", "0");
    let p: FutureProducer = cfg.create().unwrap();
    let acked: Arc<Mutex<Vec<(i32, i64, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let (a, s) = (Arc::clone(&acked), Arc::clone(&stop));
    let task = tokio::spawn(async move {
        let mut inflight = FuturesUnordered::new();
        let mut i = 0u64;
        loop {
            while inflight.len() < 200 && !s.load(Ordering::SeqCst) {
                let key = format!("k{i}");
                let value = format!("crash-{i}");
                let rec = FutureRecord::to(topic).key(&key).payload(&value);
                let sent = p.send_result(rec).map_err(|(e, _)| e);
                match sent {
                    Ok(f) => inflight.push(async move { (value, f.await) }),
                    Err(_) => break,
                }
                i += 1;
            }
            match inflight.next().await {
                Some((value, Ok(Ok(d)))) => a.lock().unwrap().push((d.partition, d.offset, value)),
                Some(_) => {}
                None if s.load(Ordering::SeqCst) => break,
                None => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
        p
    });

    // Kill the broker while records are streaming, after segments rolled.
    let a = Arc::clone(&acked);
    let partition_dir = dir.path().join(format!("{topic}-0"));
    let pd = partition_dir.clone();
    wait_until("3000 acknowledged records and 3 segments", TIMEOUT, || {
        let n = a.lock().unwrap().len();
        let segments = segment_files(&pd).len();
        async move { Ok(n >= 3000 && segments >= 3) }
    })
    .await
    .unwrap();
    broker.kill();
    // Each roll fsynced the closed segment and checkpointed the recovery point past it.
    let segments = segment_files(&partition_dir);
    let recovery_point: i64 =
        std::fs::read_to_string(partition_dir.join("recovery-point-offset.checkpoint"))
            .expect("a recovery point checkpoint")
            .lines()
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
    assert!(
        recovery_point >= base_offset_of(&segments[1]),
        "recovery point {recovery_point} is below the second segment {:?}",
        segments[1]
    );
    stop.store(true, Ordering::SeqCst);
    let p = tokio::time::timeout(Duration::from_secs(120), task)
        .await
        .expect("the producer task did not stop")
        .unwrap();
    drop_blocking(p).await;
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 3000);

    // Restart on the same data directory; every acknowledged record is at its offset.
    let broker2 = BrokerProcess::spawn(dir.path(), &[]);
    let bs = broker2.addr.to_string();
    let recs = read_all_async(&bs, topic).await.unwrap();
    let at: BTreeMap<(i32, i64), String> = recs
        .iter()
        .map(|r| ((r.partition, r.offset), r.value_str()))
        .collect();
    let mut missing = Vec::new();
    for (p, o, v) in &acked {
        match at.get(&(*p, *o)) {
            Some(got) if got == v => {}
            other => missing.push(format!("{p}/{o}: acked {v}, found {other:?}")),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged records lost or changed after kill -9, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
    // The recovered log is dense, and keys match values.
    for (p, recs) in by_partition(&recs) {
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(
                r.offset, i as i64,
                "partition {p} has a hole after recovery"
            );
            assert_eq!(
                r.key_str().trim_start_matches('k'),
                r.value_str().trim_start_matches("crash-")
            );
        }
    }
    // The unclean stop began a new leader epoch at the recovered log end.
    let epochs = std::fs::read_to_string(partition_dir.join("leader-epoch-checkpoint")).unwrap();
    assert!(epochs.starts_with("0\n2\n0 0\n1 "), "{epochs}");
    // And it accepts new records.
    assert_round_trip(&bs, topic).await;
    drop(broker2);
}
