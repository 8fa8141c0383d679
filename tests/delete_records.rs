//! DeleteRecords through rdkafka's AdminClient: records below the new log start offset can no
//! longer be consumed, the earliest offset moves, whole segments below it are deleted, the
//! offset survives restarts (clean and crash), and bad requests get Kafka's error codes.

mod common;

use std::time::Duration;

use common::*;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

/// Sends one DeleteRecords for `(topic, partition, offset)` triples; returns per partition
/// the low watermark or the error code.
async fn delete_records(
    bootstrap: &str,
    targets: &[(&str, i32, Offset)],
) -> Vec<(i32, Result<i64, RDKafkaErrorCode>)> {
    try_delete_records(bootstrap, targets)
        .await
        .expect("DeleteRecords request failed")
}

/// As [`delete_records`], with librdkafka's request-level error.
async fn try_delete_records(
    bootstrap: &str,
    targets: &[(&str, i32, Offset)],
) -> KafkaResult<Vec<(i32, Result<i64, RDKafkaErrorCode>)>> {
    let mut tpl = TopicPartitionList::new();
    for (t, p, o) in targets {
        tpl.add_partition_offset(t, *p, *o).unwrap();
    }
    let admin = admin(bootstrap);
    let res: KafkaResult<TopicPartitionList> = admin.delete_records(&tpl, &admin_options()).await;
    drop_blocking(admin).await;
    let mut out: Vec<_> = res?
        .elements()
        .iter()
        .map(|e| {
            let r = match e.error() {
                Ok(()) => match e.offset() {
                    Offset::Offset(o) => Ok(o),
                    other => panic!("low watermark is not an offset: {other:?}"),
                },
                Err(rdkafka::error::KafkaError::OffsetFetch(code)) => Err(code),
                Err(e) => Err(e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail)),
            };
            (e.partition(), r)
        })
        .collect();
    out.sort_by_key(|(p, _)| *p);
    Ok(out)
}

/// The offsets of every record `read_all` (which starts at the log start) returns for a partition.
async fn offsets_read(bootstrap: &str, topic: &str, partition: i32) -> Vec<i64> {
    read_all_async(bootstrap, topic)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.partition == partition)
        .map(|r| r.offset)
        .collect()
}

/// What a consumer assigned at `offset` with `auto.offset.reset=error` sees first.
async fn first_poll_at(bootstrap: &str, topic: &str, offset: i64) -> Result<i64, String> {
    let mut cfg = consumer_config(bootstrap, &unique("at"));
    cfg.set("auto.offset.reset", "error");
    let c: BaseConsumer = cfg.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(offset))
        .unwrap();
    c.assign(&tpl).unwrap();
    blocking(move || {
        let deadline = std::time::Instant::now() + TIMEOUT;
        while std::time::Instant::now() < deadline {
            match c.poll(Duration::from_millis(200)) {
                Some(Ok(m)) => return Ok(rdkafka::Message::offset(&m)),
                Some(Err(e)) => return Err(e.to_string()),
                None => {}
            }
        }
        Err("nothing within the timeout".into())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_moves_the_log_start_and_survives_restarts() {
    init_tracing();
    let mut b = TestBroker::start().await;
    let bs = b.bootstrap();
    // Small segments, so the deletion removes whole segments and cuts one in the middle.
    create_topic(&bs, "dr", 2, &[("segment.bytes", "2048")]).await;
    // Small batches: a segment only rolls between appends.
    let p: FutureProducer = producer_config(&bs, true)
        .set("batch.num.messages", "5")
        .create()
        .unwrap();
    let records: Vec<Out> = (0..200)
        .map(|i| Out::kv(format!("k{i}"), format!("value-{i:04}-{}", "x".repeat(40))).to(0))
        .chain((0..10).map(|i| Out::kv(format!("k{i}"), "v").to(1)))
        .collect();
    produce_ok(&p, "dr", &records).await;
    drop_blocking(p).await;
    let dir = b.partition_dir("dr", 0);
    let segments_before = segment_files(&dir).len();
    assert!(segments_before > 3, "{segments_before} segments");

    let res = delete_records(
        &bs,
        &[("dr", 0, Offset::Offset(123)), ("dr", 1, Offset::End)],
    )
    .await;
    assert_eq!(res, vec![(0, Ok(123)), (1, Ok(10))]);

    let check = |bs: String| async move {
        assert_eq!(watermarks_async(&bs, "dr", 0).await.unwrap(), (123, 200));
        assert_eq!(watermarks_async(&bs, "dr", 1).await.unwrap(), (10, 10));
        assert_eq!(
            offsets_read(&bs, "dr", 0).await,
            (123..200).collect::<Vec<_>>()
        );
        assert!(offsets_read(&bs, "dr", 1).await.is_empty());
        // Below the start is out of range; at the start the first record is 123.
        let below = first_poll_at(&bs, "dr", 50).await;
        assert!(below.is_err(), "fetch below the log start: {below:?}");
        assert_eq!(first_poll_at(&bs, "dr", 123).await, Ok(123));
    };
    check(bs.clone()).await;
    let segments_after = segment_files(&dir);
    assert!(
        segments_after.len() < segments_before,
        "{segments_after:?} (was {segments_before})"
    );

    // Deleting below the current start changes nothing and answers the low watermark.
    assert_eq!(
        delete_records(&bs, &[("dr", 0, Offset::Offset(5))]).await,
        vec![(0, Ok(123))]
    );

    b.restart().await;
    check(b.bootstrap()).await;
    b.crash();
    b.start_again().await;
    check(b.bootstrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_errors() {
    init_tracing();
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    create_topic(&bs, "plain", 1, &[]).await;
    create_topic(&bs, "compacted", 1, &[("cleanup.policy", "compact")]).await;
    let p = producer(&bs, true);
    produce_ok(
        &p,
        "plain",
        &(0..5)
            .map(|i| Out::kv(format!("k{i}"), "v"))
            .collect::<Vec<_>>(),
    )
    .await;
    produce_ok(&p, "compacted", &[Out::kv("k", "v")]).await;
    drop_blocking(p).await;

    // Beyond the high watermark.
    assert_eq!(
        delete_records(&bs, &[("plain", 0, Offset::Offset(6))]).await,
        vec![(0, Err(RDKafkaErrorCode::OffsetOutOfRange))]
    );
    assert_eq!(watermarks_async(&bs, "plain", 0).await.unwrap(), (0, 5));
    // A topic without the delete policy.
    assert_eq!(
        delete_records(&bs, &[("compacted", 0, Offset::Offset(1))]).await,
        vec![(0, Err(RDKafkaErrorCode::PolicyViolation))]
    );
    // The internal offsets topic (created by the first commit).
    let c: BaseConsumer = consumer_config(&bs, "g").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("plain", 0, Offset::Offset(3))
        .unwrap();
    let c = blocking(move || {
        c.commit(&tpl, CommitMode::Sync).unwrap();
        c
    })
    .await;
    drop_blocking(c).await;
    assert_eq!(
        delete_records(&bs, &[("__consumer_offsets", 0, Offset::Offset(0))]).await,
        vec![(0, Err(RDKafkaErrorCode::InvalidTopic))]
    );
    // Unknown partition of a known topic: librdkafka finds no leader for it in the metadata
    // and fails the request itself (NoEnt) before asking the broker.
    let res = try_delete_records(&bs, &[("plain", 7, Offset::Offset(0))]).await;
    assert!(
        matches!(
            &res,
            Err(rdkafka::error::KafkaError::AdminOp(RDKafkaErrorCode::NoEnt))
        ) || res
            .as_ref()
            .is_ok_and(|r| r == &vec![(7, Err(RDKafkaErrorCode::UnknownTopicOrPartition))]),
        "{res:?}"
    );
}
