//! Hostile and malformed input on a raw TCP connection: the broker closes (or answers) the
//! offending connection and keeps serving everyone else. Each test ends with a normal rdkafka
//! round trip.

mod common;

use bytes::{Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiVersionsRequest, ApiVersionsResponse, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const API_PRODUCE: i16 = 0;
const API_VERSIONS: i16 = 18;

async fn connect(b: &TestBroker) -> TcpStream {
    let s = TcpStream::connect(b.addr())
        .await
        .expect("connecting to the broker");
    s.set_nodelay(true).unwrap();
    s
}

/// A request frame: length prefix, header (in `header_version`), body (in `version`).
fn frame<T: Encodable>(
    api_key: i16,
    version: i16,
    header_version: i16,
    correlation_id: i32,
    body: &T,
) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("bad-input-test")));
    let mut buf = BytesMut::new();
    header.encode(&mut buf, header_version).unwrap();
    body.encode(&mut buf, version).unwrap();
    let mut out = (buf.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&buf);
    out
}

/// Reads one response frame; `None` if the broker closed the connection first.
async fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    let fut = async {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await.ok()?;
        let n = i32::from_be_bytes(len);
        assert!(n >= 4, "response frame length {n}");
        let mut body = vec![0u8; n as usize];
        s.read_exact(&mut body).await.ok()?;
        Some(Bytes::from(body))
    };
    tokio::time::timeout(TIMEOUT, fut)
        .await
        .expect("the broker neither answered nor closed the connection")
}

/// Waits until the broker closes the connection (EOF or reset), discarding anything it sends.
async fn assert_closed(s: &mut TcpStream, what: &str) {
    let fut = async {
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("the broker kept the connection open after {what}"));
}

/// A topic with one partition and a round trip through it: the broker works.
async fn healthy_broker() -> TestBroker {
    let b = TestBroker::start().await;
    create_topic(&b.bootstrap(), "health", 1, &[]).await;
    b
}

async fn assert_still_serving(b: &TestBroker) {
    assert_round_trip(&b.bootstrap(), "health").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes() {
    let b = healthy_broker().await;
    // An HTTP request: its first four bytes read as a ~1.2 GB frame length.
    let mut s = connect(&b).await;
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    assert_closed(&mut s, "an HTTP request").await;

    // A plausible length followed by random bytes.
    let mut s = connect(&b).await;
    let mut bytes = 64i32.to_be_bytes().to_vec();
    bytes.extend((0..64).map(|_| rand::random::<u8>()));
    s.write_all(&bytes).await.unwrap();
    // The broker may answer (if the bytes happened to parse) or close; it must not hang or die.
    let _ = read_frame(&mut s).await;
    drop(s);

    // Random bytes under many lengths, on many connections at once.
    let mut conns = Vec::new();
    for i in 0..20 {
        let mut s = connect(&b).await;
        let n: i32 = 8 + i * 13;
        let mut bytes = n.to_be_bytes().to_vec();
        bytes.extend((0..n).map(|_| rand::random::<u8>()));
        s.write_all(&bytes).await.unwrap();
        conns.push(s);
    }
    drop(conns);
    assert_still_serving(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frame() {
    let b = healthy_broker().await;
    let mut s = connect(&b).await;
    let mut bytes = 100i32.to_be_bytes().to_vec();
    bytes.extend_from_slice(&[0, 18, 0, 3, 0, 0, 0, 1, 0, 0]);
    s.write_all(&bytes).await.unwrap();
    s.shutdown().await.unwrap();
    assert_closed(&mut s, "a truncated frame").await;

    // The same, but the client just stops sending: other clients are unaffected meanwhile.
    let mut idle = connect(&b).await;
    idle.write_all(&bytes).await.unwrap();
    assert_still_serving(&b).await;
    drop(idle);
    assert_still_serving(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_and_huge_length_prefixes() {
    let b = healthy_broker().await;
    for len in [
        -1i32,
        i32::MIN,
        -100,
        200 * 1024 * 1024,
        i32::MAX,
        104_857_601,
    ] {
        let mut s = connect(&b).await;
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0, 18, 0, 0, 0, 0, 0, 1, 0, 0]);
        s.write_all(&bytes).await.unwrap();
        assert_closed(&mut s, &format!("a length prefix of {len}")).await;
    }
    // Tiny frames too short for a request header.
    for len in [0i32, 1, 3] {
        let mut s = connect(&b).await;
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend(std::iter::repeat_n(0u8, len as usize));
        s.write_all(&bytes).await.unwrap();
        assert_closed(&mut s, &format!("a {len}-byte frame")).await;
    }
    assert_still_serving(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_api_key() {
    let b = healthy_broker().await;
    let mut s = connect(&b).await;
    // A valid v1 header (key, version, correlation id, client id) for API key 9999.
    let mut body = Vec::new();
    body.extend_from_slice(&9999i16.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&42i32.to_be_bytes());
    body.extend_from_slice(&4i16.to_be_bytes());
    body.extend_from_slice(b"test");
    let mut bytes = (body.len() as i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&body);
    s.write_all(&bytes).await.unwrap();
    // Kafka closes the connection on an unknown API key; anything else must at least carry
    // the request's correlation id.
    if let Some(resp) = read_frame(&mut s).await {
        let h = ResponseHeader::decode(&mut resp.clone(), 0).unwrap();
        assert_eq!(h.correlation_id, 42);
    }
    assert_still_serving(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_unsupported_version_gets_v0_error_response() {
    let b = healthy_broker().await;
    let mut s = connect(&b).await;
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("brook-tests"))
        .with_client_software_version(StrBytes::from_static_str("1.0"));
    // As a future client would send it: flexible header and body (v3 layout) under v99.
    let mut header = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(API_VERSIONS)
        .with_request_api_version(99)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("future-client")))
        .encode(&mut header, 2)
        .unwrap();
    req.encode(&mut header, 3).unwrap();
    let mut bytes = (header.len() as i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&header);
    s.write_all(&bytes).await.unwrap();

    let mut resp = read_frame(&mut s).await.expect("no ApiVersions response");
    let h = ResponseHeader::decode(&mut resp, 0).unwrap();
    assert_eq!(h.correlation_id, 7);
    let body = ApiVersionsResponse::decode(&mut resp, 0).expect("a v0 ApiVersions response");
    assert_eq!(body.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(
        !body.api_keys.is_empty(),
        "the error response must list the supported APIs"
    );
    let av = body
        .api_keys
        .iter()
        .find(|k| k.api_key == API_VERSIONS)
        .expect("ApiVersions itself is listed");
    assert!(av.min_version <= 0 && av.max_version >= 3, "{av:?}");

    // The connection stays usable: a v3 request on it now works.
    s.write_all(&frame(API_VERSIONS, 3, 2, 8, &req))
        .await
        .unwrap();
    let mut resp = read_frame(&mut s)
        .await
        .expect("no ApiVersions v3 response");
    let h = ResponseHeader::decode(&mut resp, 0).unwrap();
    assert_eq!(h.correlation_id, 8);
    let body = ApiVersionsResponse::decode(&mut resp, 3).unwrap();
    assert_eq!(body.error_code, 0);
    assert_still_serving(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_v3_lists_the_supported_apis() {
    let b = healthy_broker().await;
    let mut s = connect(&b).await;
    let req = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("brook-tests"))
        .with_client_software_version(StrBytes::from_static_str("1.0"));
    s.write_all(&frame(API_VERSIONS, 3, 2, 1, &req))
        .await
        .unwrap();
    let mut resp = read_frame(&mut s).await.expect("no ApiVersions response");
    // ApiVersions responses always use header v0.
    let h = ResponseHeader::decode(&mut resp, 0).unwrap();
    assert_eq!(h.correlation_id, 1);
    let body = ApiVersionsResponse::decode(&mut resp, 3).unwrap();
    assert_eq!(body.error_code, 0);
    let range = |key: i16| {
        body.api_keys
            .iter()
            .find(|k| k.api_key == key)
            .map(|k| (k.min_version, k.max_version))
    };
    for (name, key, needs) in [
        ("Produce", 0, 8),
        ("Fetch", 1, 11),
        ("ListOffsets", 2, 5),
        ("Metadata", 3, 9),
        ("OffsetCommit", 8, 7),
        ("OffsetFetch", 9, 7),
        ("FindCoordinator", 10, 3),
        ("JoinGroup", 11, 5),
        ("Heartbeat", 12, 3),
        ("LeaveGroup", 13, 3),
        ("SyncGroup", 14, 3),
        ("DescribeGroups", 15, 3),
        ("ListGroups", 16, 3),
        ("ApiVersions", 18, 3),
        ("CreateTopics", 19, 4),
        ("DeleteTopics", 20, 3),
        ("InitProducerId", 22, 1),
        ("DescribeConfigs", 32, 1),
        ("AlterConfigs", 33, 1),
        ("CreatePartitions", 37, 1),
    ] {
        let (min, max) = range(key).unwrap_or_else(|| panic!("{name} ({key}) is not listed"));
        assert!(min <= max, "{name}: {min}..{max}");
        assert!(
            min <= needs && needs <= max,
            "{name}: v{needs} (what current clients use) not in {min}..={max}"
        );
    }
    if b.is_external() {
        // Kafka supports more APIs than Brook; every API Brook serves must overlap Kafka's
        // versions, so that a client negotiates the same way with both.
        for (name, key, min, max) in brook_broker::supported_apis() {
            let (kmin, kmax) =
                range(key).unwrap_or_else(|| panic!("Kafka does not list {name} ({key})"));
            assert!(
                kmin <= max && min <= kmax,
                "{name}: Brook {min}..={max}, Kafka {kmin}..={kmax}"
            );
        }
        return;
    }
    // The list matches what the broker library says it supports.
    let mut listed: Vec<(i16, i16, i16)> = body
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    listed.sort();
    let mut lib: Vec<(i16, i16, i16)> = brook_broker::supported_apis()
        .into_iter()
        .map(|(_, k, min, max)| (k, min, max))
        .collect();
    lib.sort();
    assert_eq!(listed, lib);
    assert_still_serving(&b).await;
}

// ---------------------------------------------------------------------------------------------
// Produce with bad record batches

fn record(value: Bytes) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: Some(Bytes::from_static(b"key")),
        value: Some(value),
        headers: Default::default(),
    }
}

fn batch(records: &[Record]) -> BytesMut {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf
}

/// Sends a Produce v8 (acks=-1) of `records` to `topic`-0; returns the partition error code.
async fn produce_raw(
    b: &TestBroker,
    topic: &'static str,
    records: Bytes,
    correlation_id: i32,
) -> i16 {
    let leader = leader_addr(&b.bootstrap(), topic, 0).await;
    let mut s = TcpStream::connect(leader)
        .await
        .expect("connecting to the leader");
    s.write_all(&produce_frame(topic, records, correlation_id))
        .await
        .unwrap();
    let mut resp = read_frame(&mut s).await.expect("no Produce response");
    let h = ResponseHeader::decode(&mut resp, 0).unwrap();
    assert_eq!(h.correlation_id, correlation_id);
    let body = ProduceResponse::decode(&mut resp, 8).unwrap();
    assert_eq!(body.responses.len(), 1);
    let t = &body.responses[0];
    assert_eq!(t.name.0.as_str(), topic);
    assert_eq!(t.partition_responses.len(), 1);
    assert_eq!(t.partition_responses[0].index, 0);
    t.partition_responses[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_with_corrupt_crc_is_rejected() {
    let b = healthy_broker().await;
    create_topic(&b.bootstrap(), "crc", 1, &[]).await;
    // Sanity: the untouched batch is accepted.
    let good = batch(&[record(Bytes::from_static(b"fine"))]);
    assert_eq!(produce_raw(&b, "crc", good.clone().freeze(), 1).await, 0);

    // Flip a byte of the record data (covered by the CRC-32C).
    let mut bad = batch(&[record(Bytes::from_static(b"corrupted"))]);
    let last = bad.len() - 3;
    bad[last] ^= 0xff;
    assert_eq!(
        produce_raw(&b, "crc", bad.freeze(), 2).await,
        2,
        "CORRUPT_MESSAGE expected for a CRC mismatch"
    );
    // Flip a byte of the CRC itself (bytes 17..21 of the batch).
    let mut bad = batch(&[record(Bytes::from_static(b"corrupted"))]);
    bad[18] ^= 0x01;
    assert_eq!(produce_raw(&b, "crc", bad.freeze(), 3).await, 2);

    // Only the good record is in the log.
    let recs = read_all_async(&b.bootstrap(), "crc").await.unwrap();
    let values: Vec<String> = recs.iter().map(|r| r.value_str()).collect();
    assert_eq!(values, vec!["fine".to_string()]);
    assert_still_serving(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_larger_than_max_message_bytes_is_rejected() {
    let b = healthy_broker().await;
    create_topic(
        &b.bootstrap(),
        "limited",
        1,
        &[("max.message.bytes", "10000")],
    )
    .await;
    let ok = batch(&[record(Bytes::from(vec![b'a'; 5000]))]);
    assert_eq!(produce_raw(&b, "limited", ok.freeze(), 1).await, 0);
    let big = batch(&[record(Bytes::from(vec![b'b'; 20_000]))]);
    assert_eq!(
        produce_raw(&b, "limited", big.freeze(), 2).await,
        10,
        "MESSAGE_TOO_LARGE expected"
    );
    // The broker-wide limit applies to topics without an override.
    let b2 = TestBroker::start_with(&[("message.max.bytes", "10000")]).await;
    create_topic(&b2.bootstrap(), "health", 1, &[]).await;
    let big = batch(&[record(Bytes::from(vec![b'c'; 20_000]))]);
    assert_eq!(produce_raw(&b2, "health", big.freeze(), 3).await, 10);

    let recs = read_all_async(&b.bootstrap(), "limited").await.unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].value.as_ref().map(|v| v.len()), Some(5000));
    assert_still_serving(&b).await;
    assert_still_serving(&b2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_array_length_does_not_abort_the_broker() {
    let b = healthy_broker().await;
    // Metadata v1 whose topic array claims 2^31-1 entries and carries none: the codec sizes the
    // array before reading it (~150 GB here), so the broker's bounded pre-pass must refuse the
    // request before it is decoded; no guarding global allocator is installed.
    const API_METADATA: i16 = 3;
    let header = RequestHeader::default()
        .with_request_api_key(API_METADATA)
        .with_request_api_version(1)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("bad-input-test")));
    let mut body = BytesMut::new();
    header.encode(&mut body, 1).unwrap();
    body.extend_from_slice(&i32::MAX.to_be_bytes());
    let mut bytes = (body.len() as i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&body);
    for _ in 0..3 {
        let mut s = connect(&b).await;
        s.write_all(&bytes).await.unwrap();
        assert_closed(&mut s, "a Metadata request with a 2^31-1 element array").await;
    }
    assert_still_serving(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bodies_for_every_api_never_panic() {
    use kafka_protocol::messages::ApiKey;
    use rand::{Rng, SeedableRng};
    use std::sync::{Arc, Mutex};

    // A panic in a connection task would only drop that connection, so the hook records them.
    // The hook is process-wide: only panics on this test's broker's threads count, not those of
    // other tests running alongside.
    let b = healthy_broker().await;
    let threads = b.thread_name().to_string();
    let panics = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = Arc::clone(&panics);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() == Some(threads.as_str()) {
            seen.lock().unwrap().push(info.to_string());
        }
        previous(info);
    }));

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    for (_, key, min, max) in brook_broker::supported_apis() {
        let api = ApiKey::try_from(key).unwrap();
        for version in min..=max {
            let mut s = connect(&b).await;
            for i in 0..25 {
                let header = RequestHeader::default()
                    .with_request_api_key(key)
                    .with_request_api_version(version)
                    .with_correlation_id(i)
                    .with_client_id(Some(StrBytes::from_static_str("fuzz")));
                let mut body = BytesMut::new();
                header
                    .encode(&mut body, api.request_header_version(version))
                    .unwrap();
                let len = rng.gen_range(0..120);
                body.extend((0..len).map(|_| rng.gen::<u8>()));
                let mut bytes = (body.len() as i32).to_be_bytes().to_vec();
                bytes.extend_from_slice(&body);
                if s.write_all(&bytes).await.is_err() {
                    s = connect(&b).await; // the broker closed it: expected for malformed bodies
                }
            }
            drop(s);
        }
    }
    assert_still_serving(&b).await;
    let panics = panics.lock().unwrap();
    assert!(
        panics.is_empty(),
        "the broker panicked on fuzzed input:\n{}",
        panics.join("\n")
    );
}

/// A Fetch v11 frame (header v1) of partition 0 of `topic` from offset 0, asking for 2 GiB.
fn fetch_everything(topic: &'static str, correlation_id: i32) -> Vec<u8> {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::FetchRequest;
    const API_FETCH: i16 = 1;
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(i32::MAX)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(topic)))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(i32::MAX)])]);
    frame(API_FETCH, 11, 1, correlation_id, &req)
}

/// A Fetch asking for 2 GiB gets at most the broker's `fetch.max.bytes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_is_capped_by_the_broker_fetch_max_bytes() {
    use kafka_protocol::messages::FetchResponse;
    let b = TestBroker::start_with(&[("fetch.max.bytes", "20000")]).await;
    create_topic(&b.bootstrap(), "big", 1, &[]).await;
    for i in 0..10 {
        let one = batch(&[record(Bytes::from(vec![b'f'; 5000]))]);
        assert_eq!(produce_raw(&b, "big", one.freeze(), i).await, 0);
    }
    let mut s = connect(&b).await;
    s.write_all(&fetch_everything("big", 99)).await.unwrap();
    let mut resp = read_frame(&mut s).await.expect("no Fetch response");
    ResponseHeader::decode(&mut resp, 0).unwrap();
    let body = FetchResponse::decode(&mut resp, 11).unwrap();
    let p = &body.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    let got = p.records.as_ref().map_or(0, |r| r.len());
    assert!(
        (5000..=20000).contains(&got),
        "fetched {got} bytes with fetch.max.bytes=20000"
    );
    assert_still_serving(&b).await;
}

/// An ApiVersions v0 exchange on `s`; `false` if the broker closed or did not answer in `wait`.
async fn answers(s: &mut TcpStream, wait: std::time::Duration) -> bool {
    let req = ApiVersionsRequest::default();
    if s.write_all(&frame(API_VERSIONS, 0, 1, 5, &req))
        .await
        .is_err()
    {
        return false;
    }
    let mut len = [0u8; 4];
    matches!(
        tokio::time::timeout(wait, s.read_exact(&mut len)).await,
        Ok(Ok(_))
    )
}

/// `max.connections.per.ip` closes a client's connection beyond its share at once;
/// `max.connections` makes new connections wait until a slot frees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limits_per_ip_and_total() {
    use std::time::Duration;
    let b = TestBroker::start_with(&[("max.connections.per.ip", "3")]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect(&b).await;
        assert!(answers(&mut s, TIMEOUT).await);
        held.push(s);
    }
    let mut fourth = connect(&b).await;
    assert!(
        !answers(&mut fourth, TIMEOUT).await,
        "a 4th connection from one address was served"
    );
    held.pop();
    // The slot frees once the broker has seen the close: retry until it has.
    let deadline = std::time::Instant::now() + TIMEOUT;
    let s = loop {
        let mut s = connect(&b).await;
        if answers(&mut s, Duration::from_secs(5)).await {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a freed slot was not reusable"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    drop((held, s, fourth));

    let b2 = TestBroker::start_with(&[("max.connections", "2")]).await;
    let mut first = connect(&b2).await;
    let mut second = connect(&b2).await;
    assert!(answers(&mut first, TIMEOUT).await);
    assert!(answers(&mut second, TIMEOUT).await);
    let mut third = connect(&b2).await;
    assert!(
        !answers(&mut third, Duration::from_millis(500)).await,
        "a 3rd connection was served with max.connections=2"
    );
    drop(first);
    // The queued connection is accepted once a slot frees and gets its (already sent) request answered.
    let mut len = [0u8; 4];
    tokio::time::timeout(TIMEOUT, third.read_exact(&mut len))
        .await
        .expect("the waiting connection was never served")
        .unwrap();
    drop((second, third));
    // Raw connections show both brokers still serve: an rdkafka producer plus consumer hold more
    // connections than either limit allows (the CI run where `b` was checked that way failed).
    let deadline = std::time::Instant::now() + TIMEOUT;
    for (name, broker) in [("b", &b), ("b2", &b2)] {
        while !answers(&mut connect(broker).await, Duration::from_secs(5)).await {
            assert!(
                std::time::Instant::now() < deadline,
                "{name} stopped serving"
            );
        }
    }
}

/// A Produce v8 frame (acks=-1) of `records` to `topic`-0.
fn produce_frame(topic: &'static str, records: Bytes, correlation_id: i32) -> Vec<u8> {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str(topic)))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    frame(API_PRODUCE, 8, 1, correlation_id, &req)
}

/// A batch of one record of `size` bytes.
fn one_record(size: usize) -> Bytes {
    batch(&[record(Bytes::from(vec![b'x'; size]))]).freeze()
}

/// `queued.max.request.bytes` is shared by every connection, as Kafka's memory pool: while one
/// client trickles a frame bigger than the budget, every other connection's next request waits
/// unread; once the frame is handled, all of them are served and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_request_bytes_are_a_broker_wide_budget() {
    use std::time::Duration;
    let b = TestBroker::start_with(&[("queued.max.request.bytes", "524288")]).await;
    create_topic(&b.bootstrap(), "budget", 1, &[]).await;

    let slow_frame = produce_frame("budget", one_record(700 << 10), 1);
    let mut slow = connect(&b).await;
    slow.write_all(&slow_frame[..4096]).await.unwrap();
    // Until the broker has reserved the slow frame, small requests are still served.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while answers(&mut connect(&b).await, Duration::from_millis(500)).await {
        assert!(
            std::time::Instant::now() < deadline,
            "requests were still served with the budget overdrawn"
        );
    }
    let mut big = connect(&b).await;
    big.write_all(&produce_frame("budget", one_record(300 << 10), 2))
        .await
        .unwrap();
    let mut small = connect(&b).await;
    assert!(
        !answers(&mut small, Duration::from_millis(500)).await,
        "a request was handled while the budget was overdrawn"
    );

    slow.write_all(&slow_frame[4096..]).await.unwrap();
    let slow_resp = read_frame(&mut slow)
        .await
        .expect("the slow frame was not answered");
    assert!(slow_resp.len() > 8);
    let mut len = [0u8; 4];
    for (name, s) in [("big", &mut big), ("small", &mut small)] {
        tokio::time::timeout(TIMEOUT, s.read_exact(&mut len))
            .await
            .unwrap_or_else(|_| panic!("the waiting {name} request was never handled"))
            .unwrap();
    }
    let recs = read_all_async(&b.bootstrap(), "budget").await.unwrap();
    let sizes: Vec<usize> = recs.iter().map(|r| r.value_str().len()).collect();
    assert_eq!(sizes, vec![700 << 10, 300 << 10]);
}

/// A request header (v2, flexible) for `api_key` v`version`, without the frame's length.
fn header_v2(api_key: i16, version: i16, correlation_id: i32) -> BytesMut {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api_key)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("bad-input-test")))
        .encode(&mut buf, 2)
        .unwrap();
    buf
}

/// DescribeGroups v5 naming 40 million empty groups: every element it claims is there (a byte
/// each), so only the decoded size gives it away — 40 MB decoding to 1.3 GB of string handles.
/// The broker refuses it before decoding, its peak RSS grows by no more than the frame plus
/// 64 MB, and it carries on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_that_would_decode_to_gigabytes_is_refused_before_decoding() {
    const API_DESCRIBE_GROUPS: i16 = 15;
    let dir = tempfile::tempdir().unwrap();
    let broker = BrokerProcess::spawn(dir.path(), &[]);
    let bootstrap = broker.addr.to_string();
    create_topic(&bootstrap, "health", 1, &[]).await;
    assert_round_trip(&bootstrap, "health").await;

    let groups: u32 = 40_000_000;
    let mut frame = header_v2(API_DESCRIBE_GROUPS, 5, 9);
    // Compact array count (n + 1), n empty compact strings (length + 1 = 1), then
    // include_authorized_operations and an empty tagged-field section.
    let mut count = groups + 1;
    while count >= 0x80 {
        frame.extend_from_slice(&[count as u8 | 0x80]);
        count >>= 7;
    }
    frame.extend_from_slice(&[count as u8]);
    frame.resize(frame.len() + groups as usize, 1);
    frame.extend_from_slice(&[0, 0]);
    let mut bytes = (frame.len() as i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&frame);
    drop(frame);

    let baseline_kib = broker.status_kib("VmRSS");
    let mut s = TcpStream::connect(broker.addr).await.unwrap();
    s.write_all(&bytes).await.unwrap();
    assert_closed(&mut s, "a DescribeGroups frame decoding to 1.3 GB").await;
    let peak_kib = broker.status_kib("VmHWM");
    let frame_kib = bytes.len() as u64 / 1024;
    eprintln!(
        "broker RSS {baseline_kib} KiB before, peak {peak_kib} KiB after a {frame_kib} KiB frame"
    );
    assert!(
        peak_kib < baseline_kib + 64 * 1024 + frame_kib,
        "broker peak RSS {peak_kib} KiB vs {baseline_kib} KiB before a {frame_kib} KiB frame"
    );

    // A small DescribeGroups is still answered, and real clients still work.
    let mut s = TcpStream::connect(broker.addr).await.unwrap();
    let mut small = header_v2(API_DESCRIBE_GROUPS, 5, 10);
    small.extend_from_slice(&[2, 2, b'g', 0, 0]);
    let mut bytes = (small.len() as i32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&small);
    s.write_all(&bytes).await.unwrap();
    let mut resp = read_frame(&mut s)
        .await
        .expect("a one-group DescribeGroups was not answered");
    let h = ResponseHeader::decode(&mut resp, 1).unwrap();
    assert_eq!(h.correlation_id, 10);
    assert_round_trip(&bootstrap, "health").await;
}

/// `connections.max.idle.ms`: a connection that sends nothing for that long is closed; one that
/// keeps sending requests is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_connections_max_idle_ms() {
    use std::time::{Duration, Instant};
    let b = TestBroker::start_with(&[("connections.max.idle.ms", "1000")]).await;
    let started = Instant::now();
    let mut idle = connect(&b).await;
    let mut busy = connect(&b).await;
    assert!(answers(&mut idle, TIMEOUT).await);
    // The busy one sends a request every 250 ms for 2.5 idle periods.
    while started.elapsed() < Duration::from_millis(2500) {
        assert!(
            answers(&mut busy, TIMEOUT).await,
            "a connection with a request every 250 ms was closed"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_closed(&mut idle, "connections.max.idle.ms (1 s)").await;
    let closed_after = started.elapsed();
    assert!(
        closed_after >= Duration::from_millis(1000),
        "closed after {closed_after:?}"
    );
    // A raw connection that never sends anything is closed too.
    let mut silent = connect(&b).await;
    let opened = Instant::now();
    assert_closed(&mut silent, "connections.max.idle.ms (1 s), nothing sent").await;
    let silent_for = opened.elapsed();
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(10)).contains(&silent_for),
        "a silent connection was closed after {silent_for:?}"
    );
    assert!(answers(&mut busy, TIMEOUT).await);
    assert_still_serving(&b).await;
}

/// A connection with a receive buffer of a few KiB: a large response fills the broker's send
/// buffer quickly and then moves only as fast as the test reads.
async fn connect_small_window(b: &TestBroker) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 << 10).unwrap();
    let s = socket.connect(b.addr()).await.unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// The write timeout (connections.max.idle.ms without progress): a client that asks for 12 MB
/// and never reads is disconnected while everyone else is served; a client that reads the same
/// response slowly, for several times the timeout, gets all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_cut_off_and_a_slow_reader_is_not() {
    use kafka_protocol::messages::FetchResponse;
    use std::time::{Duration, Instant};
    const IDLE: Duration = Duration::from_millis(1500);
    let b = TestBroker::start_with(&[("connections.max.idle.ms", "1500")]).await;
    create_topic(&b.bootstrap(), "health", 1, &[]).await;
    create_topic(&b.bootstrap(), "big", 1, &[]).await;
    let records = 14;
    for i in 0..records {
        let one = batch(&[record(Bytes::from(vec![b'b'; 900_000]))]);
        assert_eq!(produce_raw(&b, "big", one.freeze(), i).await, 0);
    }
    // Never reads: the broker gives up on the write once it has made no progress for IDLE.
    let mut stalled = connect_small_window(&b).await;
    stalled
        .write_all(&fetch_everything("big", 1))
        .await
        .unwrap();
    let stalled_since = Instant::now();
    assert_still_serving(&b).await;
    tokio::time::sleep((IDLE * 4).saturating_sub(stalled_since.elapsed())).await;
    // What the kernel buffered still arrives, then the end of the stream: short of the frame.
    let mut len = [0u8; 4];
    stalled.read_exact(&mut len).await.unwrap();
    let size = i32::from_be_bytes(len) as usize;
    assert!(size > 12_000_000, "the Fetch response is only {size} bytes");
    let mut got = 0;
    let mut buf = vec![0u8; 1 << 16];
    let eof = tokio::time::timeout(TIMEOUT, async {
        loop {
            match stalled.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got += n,
            }
        }
    })
    .await;
    assert!(eof.is_ok(), "the stalled connection was never closed");
    assert!(
        got < size,
        "the client that stopped reading got the whole {size}-byte response"
    );
    eprintln!("stalled client: {got} of {size} bytes, then closed");

    // Reads 128 KiB every 50 ms: ~2.5 MB/s, so the response takes several times IDLE.
    let mut slow = connect_small_window(&b).await;
    slow.write_all(&fetch_everything("big", 2)).await.unwrap();
    let started = Instant::now();
    let mut response = Vec::new();
    let mut len = [0u8; 4];
    slow.read_exact(&mut len).await.unwrap();
    let size = i32::from_be_bytes(len) as usize;
    while response.len() < size {
        let chunk = (size - response.len()).min(128 << 10);
        let at = response.len();
        response.resize(at + chunk, 0);
        tokio::time::timeout(TIMEOUT, slow.read_exact(&mut response[at..]))
            .await
            .expect("the slow reader's response stopped")
            .unwrap_or_else(|e| {
                panic!("the slow reader was cut off after {at} of {size} bytes: {e}")
            });
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    eprintln!("slow reader: {size} bytes in {took:?}");
    assert!(took > IDLE * 2, "the slow read took only {took:?}");
    let mut response = Bytes::from(response);
    let h = ResponseHeader::decode(&mut response, 0).unwrap();
    assert_eq!(h.correlation_id, 2);
    let body = FetchResponse::decode(&mut response, 11).unwrap();
    let p = &body.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    assert!(p.records.as_ref().map_or(0, |r| r.len()) > 12_000_000);
    assert_still_serving(&b).await;
}
