//! Leader epochs (KIP-320) against the `brook broker` process and librdkafka consumers: after an
//! unclean stop that lost the log's tail, the broker starts a new epoch, fences fetches in the
//! old one, and answers OffsetForLeaderEpoch so consumers detect that the offsets they had read
//! were truncated and are being handed out again.

mod common;

use common::*;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

/// A consumer assigned to partition 0 of `topic` from the beginning, never committing.
fn consumer(bs: &str, reset: &str) -> StreamConsumer {
    let mut cfg = consumer_config(bs, &unique("epochs"));
    cfg.set("enable.auto.commit", "false")
        .set("auto.offset.reset", reset)
        .set("topic.metadata.refresh.interval.ms", "500");
    let c: StreamConsumer = cfg.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("t", 0, Offset::Beginning).unwrap();
    c.assign(&tpl).unwrap();
    c
}

/// The next record's (offset, value), or the consumer error, within the test timeout; the
/// connection errors of a broker restart are skipped.
async fn next(c: &StreamConsumer) -> Result<(i64, String), KafkaError> {
    loop {
        let got = tokio::time::timeout(TIMEOUT, c.recv())
            .await
            .expect("no record or error within the timeout");
        match got {
            Ok(m) => {
                return Ok((
                    m.offset(),
                    String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                ))
            }
            Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure,
            )) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Cuts the segment file at the first batch whose base offset is `offset` or more, as a power
/// loss would cut what was never fsynced.
fn cut_log_at(partition_dir: &std::path::Path, offset: i64) {
    let seg = segment_files(partition_dir).pop().unwrap();
    let bytes = std::fs::read(&seg).unwrap();
    let mut pos = 0;
    while pos + 12 <= bytes.len() {
        let base = i64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap());
        if base >= offset {
            break;
        }
        pos += 12 + i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().unwrap()) as usize;
    }
    assert_eq!(
        i64::from_be_bytes(bytes[pos..pos + 8].try_into().unwrap()),
        offset,
        "records were not produced one batch each"
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(pos as u64)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_detect_offsets_truncated_by_an_unclean_stop() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut broker = BrokerProcess::spawn(dir.path(), &[]);
    let listen = broker.addr.to_string();
    create_topic(&listen, "t", 1, &[]).await;
    let p = producer(&listen, false);
    for i in 0..30 {
        produce_one(&p, "t", Out::kv("k", format!("before-{i}")).to(0))
            .await
            .unwrap();
    }
    drop_blocking(p).await;
    // One consumer resets as configured (earliest) on ordinary errors, one refuses to guess.
    let seeking = consumer(&listen, "earliest");
    let strict = consumer(&listen, "error");
    for c in [&seeking, &strict] {
        for i in 0..30 {
            assert_eq!(next(c).await.unwrap(), (i, format!("before-{i}")));
        }
    }

    // The broker dies and the disk loses the unsynced tail: offsets 10..29 are gone.
    broker.kill();
    cut_log_at(&dir.path().join("t-0"), 10);
    let broker = BrokerProcess::spawn_at(dir.path(), &listen, &[]);
    let epochs = std::fs::read_to_string(dir.path().join("t-0/leader-epoch-checkpoint")).unwrap();
    assert_eq!(
        epochs, "0\n2\n0 0\n1 10\n",
        "a new epoch began at the new log end"
    );
    // Offsets 10.. are handed out again, to different records.
    let p = producer(&listen, false);
    for i in 0..5 {
        produce_one(&p, "t", Out::kv("k", format!("after-{i}")).to(0))
            .await
            .unwrap();
    }
    drop_blocking(p).await;

    // The consumer that had read up to 29 learns (OffsetForLeaderEpoch: epoch 0 ended at 10)
    // that its position was truncated away and goes back to 10 — not to the beginning, which is
    // where an OFFSET_OUT_OF_RANGE reset would have taken it.
    for i in 0..5 {
        assert_eq!(
            next(&seeking).await.unwrap(),
            (10 + i, format!("after-{i}"))
        );
    }
    // With auto.offset.reset=error the application gets an error instead of records
    // (librdkafka reports the detected truncation as a reset it may not make).
    match next(&strict).await {
        Err(KafkaError::MessageConsumption(
            RDKafkaErrorCode::LogTruncation | RDKafkaErrorCode::AutoOffsetReset,
        )) => {}
        other => panic!("expected a log truncation error, got {other:?}"),
    }
    drop_blocking(seeking).await;
    drop_blocking(strict).await;
    drop(broker);
}
