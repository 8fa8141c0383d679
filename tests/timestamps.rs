//! Timestamps: ListOffsets by timestamp (offsets_for_times), earliest/latest watermarks, and
//! LogAppendTime topics.

mod common;

use std::time::Duration;

use common::*;
use rdkafka::consumer::Consumer;
use rdkafka::message::Timestamp;
use rdkafka::{Offset, TopicPartitionList};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `offsets_for_times` for each of `times` on `topic`-`partition`.
async fn offsets_for(bs: &str, topic: &str, partition: i32, times: &[i64]) -> Vec<Offset> {
    let mut out = Vec::new();
    for &t in times {
        let (b, tp) = (bs.to_string(), topic.to_string());
        let o = blocking(move || {
            let c = query_consumer(&b);
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&tp, partition, Offset::Offset(t))
                .unwrap();
            let res = c
                .offsets_for_times(tpl, Duration::from_secs(20))
                .expect("ListOffsets by timestamp");
            let e = res.find_partition(&tp, partition).unwrap();
            e.error().expect("partition error in ListOffsets");
            e.offset()
        })
        .await;
        out.push(o);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_by_timestamp() {
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    create_topic(&bs, "timed", 2, &[]).await;
    assert_eq!(watermarks_async(&bs, "timed", 0).await.unwrap(), (0, 0));

    // Partition 0: 20 records one second apart, an hour ago, in several small batches.
    let t0 = now_ms() - 3_600_000;
    let mut cfg = producer_config(&bs, true);
    cfg.set("batch.num.messages", "3");
    let p: rdkafka::producer::FutureProducer = cfg.create().unwrap();
    let sent: Vec<Out> = (0..20)
        .map(|i| Out {
            timestamp: Some(t0 + i * 1000),
            ..Out::kv(format!("k{i}"), format!("v{i}")).to(0)
        })
        .collect();
    let acked = produce_ok(&p, "timed", &sent).await;
    assert_eq!(acked.last(), Some(&(0, 19)));
    // Partition 1: timestamps out of order within the log.
    let shuffled = [5_000i64, 1_000, 9_000, 3_000, 7_000];
    let sent1: Vec<Out> = shuffled
        .iter()
        .enumerate()
        .map(|(i, dt)| Out {
            timestamp: Some(t0 + dt),
            ..Out::kv(format!("s{i}"), format!("s{i}")).to(1)
        })
        .collect();
    produce_ok(&p, "timed", &sent1).await;
    drop_blocking(p).await;

    assert_eq!(watermarks_async(&bs, "timed", 0).await.unwrap(), (0, 20));
    assert_eq!(watermarks_async(&bs, "timed", 1).await.unwrap(), (0, 5));

    // The earliest offset whose timestamp is >= the target.
    let got = offsets_for(
        &bs,
        "timed",
        0,
        &[
            t0 - 10_000,
            t0,
            t0 + 1,
            t0 + 5_000,
            t0 + 5_500,
            t0 + 19_000,
            t0 + 19_001,
            now_ms() + 3_600_000,
        ],
    )
    .await;
    assert_eq!(
        got,
        vec![
            Offset::Offset(0),
            Offset::Offset(0),
            Offset::Offset(1),
            Offset::Offset(5),
            Offset::Offset(6),
            Offset::Offset(19),
            Offset::End,
            Offset::End,
        ]
    );
    // Out-of-order timestamps: the first offset with a timestamp >= target.
    let got = offsets_for(
        &bs,
        "timed",
        1,
        &[t0, t0 + 4_000, t0 + 6_000, t0 + 8_000, t0 + 9_001],
    )
    .await;
    assert_eq!(
        got,
        vec![
            Offset::Offset(0),
            Offset::Offset(0),
            Offset::Offset(2),
            Offset::Offset(2),
            Offset::End,
        ]
    );

    // Consumed records carry their CreateTime timestamps.
    let recs = read_all_async(&bs, "timed").await.unwrap();
    for r in recs.iter().filter(|r| r.partition == 0) {
        assert_eq!(r.timestamp, Timestamp::CreateTime(t0 + r.offset * 1000));
    }
    for r in recs.iter().filter(|r| r.partition == 1) {
        assert_eq!(
            r.timestamp,
            Timestamp::CreateTime(t0 + shuffled[r.offset as usize])
        );
    }

    // Timestamps survive a restart (the time index is rebuilt or reloaded).
    let mut b = b;
    b.restart().await;
    let bs = b.bootstrap();
    let got = offsets_for(&bs, "timed", 0, &[t0 + 5_500, t0 + 12_000]).await;
    assert_eq!(got, vec![Offset::Offset(6), Offset::Offset(12)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_append_time_topic() {
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    create_topic(
        &bs,
        "appended",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .await;
    let before = now_ms();
    let p = producer(&bs, true);
    let old = before - 86_400_000;
    let sent: Vec<Out> = (0..10)
        .map(|i| Out {
            timestamp: Some(old + i),
            ..Out::kv(format!("k{i}"), format!("v{i}")).to(0)
        })
        .collect();
    produce_ok(&p, "appended", &sent).await;
    drop_blocking(p).await;
    let after = now_ms();

    let recs = read_all_async(&bs, "appended").await.unwrap();
    assert_eq!(recs.len(), 10);
    for r in &recs {
        match r.timestamp {
            // Same machine, same clock: the broker stamped it between our two readings.
            Timestamp::LogAppendTime(ts) => assert!(
                (before..=after).contains(&ts),
                "append time {ts} outside [{before}, {after}]"
            ),
            other => panic!(
                "record {} has timestamp {other:?}, expected LogAppendTime",
                r.offset
            ),
        }
    }
    // A topic without the setting keeps CreateTime.
    create_topic(&bs, "created-time", 1, &[]).await;
    let p = producer(&bs, true);
    produce_ok(&p, "created-time", &sent).await;
    drop_blocking(p).await;
    let recs = read_all_async(&bs, "created-time").await.unwrap();
    assert_eq!(recs[3].timestamp, Timestamp::CreateTime(old + 3));
}
