//! Record validation on produce, against the `brook broker` process: hostile record batches
//! with valid CRCs are refused with Kafka's errors, store nothing, leave the partition readable
//! before and after, cost the broker almost no memory, and a restart afterwards is clean.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Zigzag varint, as the record format writes it.
fn zigzag(v: i64, out: &mut Vec<u8>) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

/// One record; `header_count` is written as claimed, with no headers after it.
fn record(offset_delta: i64, key: Option<&[u8]>, value: &[u8], header_count: i64) -> Vec<u8> {
    let mut body = vec![0u8];
    zigzag(0, &mut body);
    zigzag(offset_delta, &mut body);
    match key {
        Some(k) => {
            zigzag(k.len() as i64, &mut body);
            body.extend_from_slice(k);
        }
        None => zigzag(-1, &mut body),
    }
    zigzag(value.len() as i64, &mut body);
    body.extend_from_slice(value);
    zigzag(header_count, &mut body);
    let mut out = Vec::new();
    zigzag(body.len() as i64, &mut out);
    out.extend_from_slice(&body);
    out
}

/// A CRC-valid batch around `section` (compressed with `codec` if not 0), claiming `count`.
fn batch(section: &[u8], codec: i16, count: i32, ts: i64) -> Bytes {
    let mut b = Vec::with_capacity(61 + section.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((49 + section.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&codec.to_be_bytes());
    b.extend_from_slice(&(count - 1).to_be_bytes());
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(&ts.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(section);
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(b)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Sends Produce v9 (acks=-1) of `records` to `topic`-0 on a fresh connection; returns the
/// partition's error code and record errors' indexes.
fn produce_raw(addr: SocketAddr, topic: &str, records: Bytes) -> (i16, Vec<i32>, String) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let header = RequestHeader::default()
        .with_request_api_key(0)
        .with_request_api_version(9)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("validation-test")));
    let mut buf = BytesMut::new();
    header.encode(&mut buf, 2).unwrap();
    req.encode(&mut buf, 9).unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(&(buf.len() as i32).to_be_bytes()).unwrap();
    s.write_all(&buf).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("no Produce response");
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    let mut body = Bytes::from(body);
    let h = ResponseHeader::decode(&mut body, 1).unwrap();
    assert_eq!(h.correlation_id, 7);
    let resp = ProduceResponse::decode(&mut body, 9).unwrap();
    let p = &resp.responses[0].partition_responses[0];
    (
        p.error_code,
        p.record_errors.iter().map(|e| e.batch_index).collect(),
        p.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

/// Every value in `topic` (all partitions), read from the beginning.
async fn values(bootstrap: &str, topic: &str) -> Vec<String> {
    read_all_async(bootstrap, topic)
        .await
        .unwrap()
        .iter()
        .map(|r| r.value_str())
        .collect()
}

/// A 1 GiB record of zeros, zstd-compressed as a stream (a few tens of KiB).
fn zstd_bomb() -> Vec<u8> {
    let value_len: i64 = 1 << 30;
    let mut head = vec![0u8];
    zigzag(0, &mut head);
    zigzag(0, &mut head);
    zigzag(1, &mut head);
    head.push(b'k');
    zigzag(value_len, &mut head);
    let body_len = head.len() as i64 + value_len + 1;
    let mut rec = Vec::new();
    zigzag(body_len, &mut rec);
    rec.extend_from_slice(&head);
    let mut enc = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
    enc.write_all(&rec).unwrap();
    std::io::copy(&mut std::io::repeat(0).take(value_len as u64), &mut enc).unwrap();
    enc.write_all(&[0]).unwrap(); // header count
    enc.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_batches_are_refused_and_the_partition_stays_readable() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::spawn(dir.path(), &[]);
    let bs = broker.addr.to_string();
    create_topic(&bs, "plain", 1, &[]).await;
    create_topic(&bs, "compacted", 1, &[("cleanup.policy", "compact")]).await;
    let p = producer(&bs, false);
    let before: Vec<Out> = (0..10)
        .map(|i| Out::kv(format!("k{i}"), format!("before-{i}")))
        .collect();
    produce_ok(&p, "plain", &before).await;
    produce_ok(&p, "compacted", &before).await;
    let baseline_kib = broker.status_kib("VmRSS");
    let ts = now_ms();

    let garbage: Vec<u8> = (0..300u32).map(|i| (i * 37 % 251) as u8).collect();
    let two: Vec<u8> = [
        record(0, Some(b"k"), b"v", 0),
        record(1, Some(b"k"), b"v", 0),
    ]
    .concat();
    let delta_minus_one: Vec<u8> = [
        record(0, Some(b"k"), b"v", 0),
        record(-1, Some(b"k"), b"v", 0),
    ]
    .concat();
    let hostile_headers = record(0, Some(b"k"), b"v", i32::MAX as i64);
    let keyless: Vec<u8> = [record(0, Some(b"k"), b"v", 0), record(1, None, b"v", 0)].concat();
    let bomb = zstd_bomb();
    assert!(bomb.len() < 1 << 20, "bomb is {} bytes", bomb.len());

    // (what, topic, batch, expected error code, expected record error indexes)
    let cases: Vec<(&str, &str, Bytes, i16, Vec<i32>)> = vec![
        (
            "CRC-valid garbage records",
            "plain",
            batch(&garbage, 0, 3, ts),
            87,
            vec![],
        ),
        (
            "count 3 with 2 records",
            "plain",
            batch(&two, 0, 3, ts),
            87,
            vec![],
        ),
        (
            "count 1 with 2 records",
            "plain",
            batch(&two, 0, 1, ts),
            87,
            vec![],
        ),
        (
            "offset delta -1",
            "plain",
            batch(&delta_minus_one, 0, 2, ts),
            87,
            vec![],
        ),
        (
            "header count 2^31-1",
            "compacted",
            batch(&hostile_headers, 0, 1, ts),
            87,
            vec![],
        ),
        (
            "keyless record on a compacted topic",
            "compacted",
            batch(&keyless, 0, 2, ts),
            87,
            vec![1],
        ),
        ("unknown codec 6", "plain", batch(&two, 6, 2, ts), 2, vec![]),
        (
            "1 GiB zstd bomb",
            "plain",
            batch(&bomb, 4, 1, ts),
            10,
            vec![],
        ),
        (
            "1 GiB zstd bomb, compacted",
            "compacted",
            batch(&bomb, 4, 1, ts),
            10,
            vec![],
        ),
    ];
    for (what, topic, data, code, indexes) in cases {
        let addr = broker.addr;
        let t = topic.to_string();
        let (got, idx, message) = blocking(move || produce_raw(addr, &t, data)).await;
        assert_eq!(got, code, "{what}: {message}");
        assert_eq!(idx, indexes, "{what}: record errors");
        assert!(!message.is_empty(), "{what}: no error message");
    }
    let peak_kib = broker.status_kib("VmHWM");
    assert!(
        peak_kib < baseline_kib + 64 * 1024,
        "broker peak RSS {peak_kib} KiB vs {baseline_kib} KiB before the hostile batches"
    );

    let after: Vec<Out> = (0..10)
        .map(|i| Out::kv(format!("k{i}"), format!("after-{i}")))
        .collect();
    produce_ok(&p, "plain", &after).await;
    produce_ok(&p, "compacted", &after).await;
    let expected: Vec<String> = (0..10)
        .map(|i| format!("before-{i}"))
        .chain((0..10).map(|i| format!("after-{i}")))
        .collect();
    assert_eq!(values(&bs, "plain").await, expected);
    assert_eq!(values(&bs, "compacted").await, expected);
    drop_blocking(p).await;

    // An unclean stop and a restart: quick, and the same records are there.
    let broker = kill_and_restart(broker, dir.path());
    let bs = broker.addr.to_string();
    assert_eq!(values(&bs, "plain").await, expected);
    assert_eq!(values(&bs, "compacted").await, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamps_outside_the_topic_bounds_are_refused_per_record() {
    init_tracing();
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    create_topic(&bs, "ts", 1, &[("message.timestamp.after.max.ms", "60000")]).await;
    let p = producer(&bs, false);
    let now = now_ms();
    let future = Out {
        timestamp: Some(now + 3_600_000),
        ..Out::kv("k", "future")
    };
    let err = produce_one(&p, "ts", future).await.unwrap_err();
    assert!(
        err.to_string().contains("InvalidTimestamp") || err.to_string().contains("timestamp"),
        "{err}"
    );
    let ok = Out {
        timestamp: Some(now + 1_000),
        ..Out::kv("k", "soon")
    };
    produce_one(&p, "ts", ok).await.unwrap();
    assert_eq!(values(&bs, "ts").await, vec!["soon".to_string()]);
    drop_blocking(p).await;
}

/// Kills the broker (-9), starts it again on the same data and checks it came back quickly.
fn kill_and_restart(mut broker: BrokerProcess, dir: &std::path::Path) -> BrokerProcess {
    broker.kill();
    let broker = BrokerProcess::spawn(dir, &[]);
    assert!(
        broker.startup < Duration::from_secs(10),
        "restart took {:?}",
        broker.startup
    );
    broker
}

/// Commits `offset` for `group` on partition 0 of `topic`, as a consumer outside any
/// generation would (a simple consumer's manual commit).
async fn commit(bs: &str, group: &str, topic: &str, offset: i64) {
    let (bs, group, topic) = (bs.to_string(), group.to_string(), topic.to_string());
    blocking(move || {
        let c: rdkafka::consumer::BaseConsumer = consumer_config(&bs, &group).create().unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, rdkafka::Offset::Offset(offset))
            .unwrap();
        rdkafka::consumer::Consumer::commit(&c, &tpl, rdkafka::consumer::CommitMode::Sync)
            .expect("commit");
    })
    .await
}

/// The committed offset of `group` on partition 0 of `topic`.
async fn committed(bs: &str, group: &str, topic: &str) -> rdkafka::Offset {
    let (bs, group, topic) = (bs.to_string(), group.to_string(), topic.to_string());
    blocking(move || {
        let c: rdkafka::consumer::BaseConsumer = consumer_config(&bs, &group).create().unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition(&topic, 0);
        let got = rdkafka::consumer::Consumer::committed_offsets(&c, tpl, Duration::from_secs(20))
            .expect("OffsetFetch");
        got.elements()[0].offset()
    })
    .await
}

/// `__consumer_offsets` is the broker's: clients cannot produce to it (good records or a
/// hostile one), delete it, or add partitions to it, and the committed offsets in it survive an
/// unclean restart that replays it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_write_to_internal_topics() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::spawn(dir.path(), &[]);
    let bs = broker.addr.to_string();
    create_topic(&bs, "plain", 1, &[]).await;
    commit(&bs, "g", "plain", 7).await;
    let ts = now_ms();
    let good = record(0, Some(b"k"), b"v", 0);
    let delta_minus_one = record(-1, Some(b"k"), b"v", 0);
    for (what, data) in [
        ("a well-formed batch", batch(&good, 0, 1, ts)),
        (
            "a record with offset delta -1",
            batch(&delta_minus_one, 0, 1, ts),
        ),
    ] {
        let addr = broker.addr;
        let (code, _, message) =
            blocking(move || produce_raw(addr, "__consumer_offsets", data)).await;
        assert_eq!(code, 17, "{what}: {message}");
        assert!(message.contains("internal topic"), "{what}: {message}");
    }

    let a = admin(&bs);
    let deleted = a
        .delete_topics(&["__consumer_offsets"], &admin_options())
        .await
        .unwrap();
    assert!(
        matches!(&deleted[0], Err((_, code)) if *code == rdkafka::types::RDKafkaErrorCode::InvalidRequest),
        "{deleted:?}"
    );
    let grown = a
        .create_partitions(
            &[rdkafka::admin::NewPartitions::new(
                "__consumer_offsets",
                100,
            )],
            &admin_options(),
        )
        .await
        .unwrap();
    assert!(
        matches!(&grown[0], Err((_, code)) if *code == rdkafka::types::RDKafkaErrorCode::InvalidRequest),
        "{grown:?}"
    );
    drop_blocking(a).await;
    assert_eq!(
        committed(&bs, "g", "plain").await,
        rdkafka::Offset::Offset(7)
    );

    let broker = kill_and_restart(broker, dir.path());
    let bs = broker.addr.to_string();
    assert_eq!(
        committed(&bs, "g", "plain").await,
        rdkafka::Offset::Offset(7)
    );
}
