//! Produce → consume round trips through rdkafka: partitions, keys, headers, null keys and
//! values, every compression codec, large and tiny batches, big records, idempotence on and
//! off, and an idempotent producer whose connection drops before produce responses arrive.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;
use rdkafka::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Checks that the log holds exactly `sent` (whose deliveries were reported at `acked`), each
/// record once, in send order per partition, at the offset its delivery report gave.
fn verify(sent: &[Out], acked: &[(i32, i64)], read: &[Rec]) {
    assert_eq!(sent.len(), acked.len());
    assert_eq!(
        read.len(),
        sent.len(),
        "read {} records back, produced {}",
        read.len(),
        sent.len()
    );
    let mut at: BTreeMap<(i32, i64), &Rec> = BTreeMap::new();
    for r in read {
        assert!(
            at.insert((r.partition, r.offset), r).is_none(),
            "offset {}/{} read twice",
            r.partition,
            r.offset
        );
    }
    // Send order per partition must be offset order.
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for (i, (out, &(p, o))) in sent.iter().zip(acked).enumerate() {
        if let Some(want) = out.partition {
            assert_eq!(
                p, want,
                "record {i} delivered to partition {p}, sent to {want}"
            );
        }
        if let Some(prev) = last.insert(p, o) {
            assert!(
                o > prev,
                "record {i} at {p}/{o} is not after the previous one ({prev})"
            );
        }
        let r = at
            .get(&(p, o))
            .unwrap_or_else(|| panic!("record {i} acknowledged at {p}/{o} not read back"));
        assert_eq!(r.key, out.key, "key of record {i} at {p}/{o}");
        assert_eq!(r.value, out.value, "value of record {i} at {p}/{o}");
        assert_eq!(r.headers, out.headers, "headers of record {i} at {p}/{o}");
    }
    // Offsets are dense from 0 in every partition (a fresh topic, no retries that duplicate).
    for (p, recs) in by_partition(read) {
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(
                r.offset, i as i64,
                "partition {p}: offsets not dense from 0"
            );
        }
    }
}

/// Keys, null keys, null values, headers (one with a null value), spread over 4 partitions.
fn mixed_records(n: usize) -> Vec<Out> {
    (0..n)
        .map(|i| {
            let key = match i % 5 {
                0 => None,
                _ => Some(format!("key-{i}").into_bytes()),
            };
            let value = match i % 7 {
                3 => None,
                4 => Some(Vec::new()),
                _ => Some(format!("value-{i}-{}", "x".repeat(i % 50)).into_bytes()),
            };
            let headers = match i % 3 {
                0 => vec![],
                1 => vec![("h1".to_string(), Some(format!("hv-{i}").into_bytes()))],
                _ => vec![
                    ("trace".to_string(), Some(vec![0u8, 1, 2, 255])),
                    ("empty".to_string(), None),
                    ("trace".to_string(), Some(b"duplicate-key".to_vec())),
                ],
            };
            Out {
                partition: Some((i % 4) as i32),
                key,
                value,
                headers,
                timestamp: None,
            }
        })
        .collect()
}

async fn mixed_round_trip(idempotent: bool) {
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    create_topic(&bs, "mixed", 4, &[]).await;
    let p = producer(&bs, idempotent);
    let sent = mixed_records(400);
    let acked = produce_ok(&p, "mixed", &sent).await;
    let read = read_all_async(&bs, "mixed").await.unwrap();
    verify(&sent, &acked, &read);
    for part in 0..4 {
        assert_eq!(
            watermarks_async(&bs, "mixed", part).await.unwrap(),
            (0, 100),
            "watermarks of mixed-{part}"
        );
    }
    drop_blocking(p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_headers_nulls_idempotent() {
    mixed_round_trip(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_headers_nulls_not_idempotent() {
    mixed_round_trip(false).await;
}

/// Records without an explicit partition go through the default partitioner; a group
/// consumer (StreamConsumer) sees each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_consumer_in_a_group_reads_everything_once() {
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    create_topic(&bs, "streamed", 3, &[]).await;
    let p = producer(&bs, true);
    let sent: Vec<Out> = (0..300)
        .map(|i| Out::kv(format!("k{}", i % 17), format!("v{i}")))
        .collect();
    let acked = produce_ok(&p, "streamed", &sent).await;

    let c: StreamConsumer = consumer_config(&bs, "streamers").create().unwrap();
    c.subscribe(&["streamed"]).unwrap();
    let mut got: BTreeMap<(i32, i64), Rec> = BTreeMap::new();
    while got.len() < sent.len() {
        let m = tokio::time::timeout(TIMEOUT, c.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {} records consumed", got.len(), sent.len()))
            .expect("consumer error");
        let r = Rec::from_message(&m);
        assert!(
            got.insert((r.partition, r.offset), r).is_none(),
            "record at {}/{} delivered twice",
            m.partition(),
            m.offset()
        );
    }
    let read: Vec<Rec> = got.into_values().collect();
    verify(&sent, &acked, &read);
    // Records with the same key went to the same partition.
    let mut part_of_key: BTreeMap<Vec<u8>, i32> = BTreeMap::new();
    for r in &read {
        let k = r.key.clone().unwrap();
        assert_eq!(*part_of_key.entry(k).or_insert(r.partition), r.partition);
    }
    drop_blocking(c).await;
    drop_blocking(p).await;
}

async fn codec_round_trip(codec: &str) {
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    let topic = format!("codec-{codec}");
    create_topic(&bs, &topic, 2, &[]).await;
    let mut cfg = producer_config(&bs, true);
    cfg.set("compression.codec", codec).set("linger.ms", "20");
    let p: FutureProducer = cfg.create().unwrap();
    // Compressible values, so the codecs actually shrink the batches.
    let sent: Vec<Out> = (0..1000)
        .map(|i| Out {
            headers: vec![("codec".to_string(), Some(codec.as_bytes().to_vec()))],
            ..Out::kv(
                format!("key-{i}"),
                format!("{codec} value {i} {}", "abc".repeat(30)),
            )
            .to(i % 2)
        })
        .collect();
    let acked = produce_ok(&p, &topic, &sent).await;
    let read = read_all_async(&bs, &topic).await.unwrap();
    verify(&sent, &acked, &read);
    drop_blocking(p).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_none() {
    codec_round_trip("none").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_gzip() {
    codec_round_trip("gzip").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_snappy() {
    codec_round_trip("snappy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_lz4() {
    codec_round_trip("lz4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codec_zstd() {
    codec_round_trip("zstd").await;
}

/// 5000 records in big batches (long linger), one partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches() {
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    create_topic(&bs, "big-batches", 1, &[]).await;
    let mut cfg = producer_config(&bs, true);
    cfg.set("linger.ms", "100")
        .set("batch.num.messages", "10000")
        .set("batch.size", "1000000");
    let p: FutureProducer = cfg.create().unwrap();
    let sent: Vec<Out> = (0..5000)
        .map(|i| Out::kv(format!("{i}"), format!("record number {i}")).to(0))
        .collect();
    let acked = produce_ok(&p, "big-batches", &sent).await;
    let read = read_all_async(&bs, "big-batches").await.unwrap();
    verify(&sent, &acked, &read);
    drop_blocking(p).await;
}

/// One record per request: each send waits for its acknowledgement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_small_records() {
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    create_topic(&bs, "singles", 1, &[]).await;
    for idempotent in [false, true] {
        let mut cfg = producer_config(&bs, idempotent);
        cfg.set("linger.ms", "0");
        let p: FutureProducer = cfg.create().unwrap();
        for i in 0..20 {
            let (part, off) = produce_one(&p, "singles", Out::kv("k", format!("{i}")).to(0))
                .await
                .unwrap();
            let expected = if idempotent { 20 + i } else { i };
            assert_eq!((part, off), (0, expected), "offset of single record {i}");
        }
        drop_blocking(p).await;
    }
    let read = read_all_async(&bs, "singles").await.unwrap();
    let values: Vec<String> = read.iter().map(|r| r.value_str()).collect();
    let expected: Vec<String> = (0..2)
        .flat_map(|_| (0..20).map(|i| i.to_string()))
        .collect();
    assert_eq!(values, expected);
}

/// Records of 150 KB and 900 KB (one per batch, above the 100 KB mark).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_over_100_kb() {
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    create_topic(&bs, "big-records", 1, &[]).await;
    let p = producer(&bs, true);
    let sizes = [150_000usize, 900_000, 120_000, 300_000, 101_000];
    let sent: Vec<Out> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            // Incompressible-ish content so a wrong byte anywhere shows.
            let v: Vec<u8> = (0..n).map(|j| ((j * 31 + i * 7) % 251) as u8).collect();
            Out::kv(format!("big-{i}"), v).to(0)
        })
        .collect();
    let acked = produce_ok(&p, "big-records", &sent).await;
    let read = read_all_async(&bs, "big-records").await.unwrap();
    verify(&sent, &acked, &read);
    drop_blocking(p).await;
}

// ---------------------------------------------------------------------------------------------
// Idempotent retries through a connection that drops before produce responses.

/// A TCP proxy that forwards everything between clients and the broker, except that for the
/// first `drops` Produce requests (after `skip` Produce requests went through normally) it
/// forwards the request, waits for the broker to handle it, and closes the connection before
/// the response reaches the client.
struct DroppingProxy {
    produce_seen: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
}

impl DroppingProxy {
    async fn start(
        listener: TcpListener,
        target: std::net::SocketAddr,
        skip: usize,
        drops: usize,
    ) -> DroppingProxy {
        let produce_seen = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let (ps, dr) = (Arc::clone(&produce_seen), Arc::clone(&dropped));
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let (ps, dr) = (Arc::clone(&ps), Arc::clone(&dr));
                tokio::spawn(async move {
                    let Ok(upstream) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let (mut cr, mut cw) = client.into_split();
                    let (mut ur, mut uw) = upstream.into_split();
                    // broker → client: plain copy until told to stop.
                    let down = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut ur, &mut cw).await;
                    });
                    // client → broker: frame by frame, watching for Produce requests.
                    loop {
                        let mut len = [0u8; 4];
                        if cr.read_exact(&mut len).await.is_err() {
                            break;
                        }
                        let n = i32::from_be_bytes(len);
                        if n < 0 {
                            break;
                        }
                        let mut body = vec![0u8; n as usize];
                        if cr.read_exact(&mut body).await.is_err() {
                            break;
                        }
                        let api_key = if body.len() >= 2 {
                            i16::from_be_bytes([body[0], body[1]])
                        } else {
                            -1
                        };
                        if uw.write_all(&len).await.is_err() || uw.write_all(&body).await.is_err() {
                            break;
                        }
                        if api_key == 0 {
                            let seen = ps.fetch_add(1, Ordering::SeqCst);
                            if seen >= skip && dr.fetch_add(1, Ordering::SeqCst) < drops {
                                // Let the broker append the batch, then cut the connection
                                // before its response is forwarded.
                                down.abort();
                                tokio::time::sleep(Duration::from_millis(300)).await;
                                break;
                            }
                        }
                    }
                    down.abort();
                });
            }
        });
        DroppingProxy {
            produce_seen,
            dropped,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retry_after_dropped_connection() {
    // Clients must reach the broker only through the proxy, so the broker advertises the
    // proxy's address in its metadata.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = listener.local_addr().unwrap();
    let b = TestBroker::start_full(&[], Some(proxy_addr.to_string())).await;
    assert_eq!(b.bootstrap(), proxy_addr.to_string());
    let direct = b.addr().to_string();
    // Admin and metadata traffic also goes through the proxy (the broker advertises it);
    // only Produce requests are ever cut.
    let proxy = DroppingProxy::start(listener, b.addr(), 2, 3).await;
    create_topic(&direct, "retried", 2, &[]).await;
    let mut cfg = producer_config(&proxy_addr.to_string(), true);
    cfg.set("linger.ms", "20")
        .set("retry.backoff.ms", "50")
        .set("reconnect.backoff.ms", "50")
        .set("batch.num.messages", "100");
    let p: FutureProducer = cfg.create().unwrap();
    let sent: Vec<Out> = (0..2000)
        .map(|i| Out::kv(format!("k{i}"), format!("v{i}")).to(i % 2))
        .collect();
    let mut acked = Vec::new();
    // Produce in a few waves so several requests are in flight when connections drop.
    for chunk in sent.chunks(500) {
        acked.extend(produce_ok(&p, "retried", chunk).await);
    }
    drop_blocking(p).await;
    let dropped = proxy.dropped.load(Ordering::SeqCst).min(3);
    assert_eq!(
        dropped,
        3,
        "the proxy should have dropped 3 connections (saw {} produce requests)",
        proxy.produce_seen.load(Ordering::SeqCst)
    );

    // Read directly from the broker.
    let read = read_all_async(&direct, "retried").await.unwrap();
    verify(&sent, &acked, &read);
    for part in 0..2 {
        assert_eq!(
            watermarks_async(&direct, "retried", part).await.unwrap(),
            (0, 1000),
            "retried-{part}: duplicates or losses"
        );
    }
}

/// Codec ids found in the batch headers of a partition's segment files.
fn stored_codecs(dir: &std::path::Path) -> Vec<u8> {
    let mut codecs = Vec::new();
    for file in segment_files(dir) {
        let data = std::fs::read(&file).unwrap();
        let mut pos = 0;
        while pos + 61 <= data.len() {
            let len = i32::from_be_bytes(data[pos + 8..pos + 12].try_into().unwrap()) as usize;
            codecs.push(data[pos + 22] & 0x07);
            pos += 12 + len;
        }
    }
    codecs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_compression_type_recompresses_batches() {
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    create_topic(&bs, "recompress", 1, &[("compression.type", "zstd")]).await;
    let mut cfg = producer_config(&bs, true);
    cfg.set("compression.codec", "gzip").set("linger.ms", "20");
    let p: FutureProducer = cfg.create().unwrap();
    let sent: Vec<Out> = (0..500)
        .map(|i| Out {
            headers: vec![("h".to_string(), Some(format!("{i}").into_bytes()))],
            ..Out::kv(
                format!("key-{i}"),
                format!("value {i} {}", "xyz".repeat(20)),
            )
        })
        .collect();
    let acked = produce_ok(&p, "recompress", &sent).await;
    let read = read_all_async(&bs, "recompress").await.unwrap();
    verify(&sent, &acked, &read);
    let codecs = stored_codecs(&b.partition_dir("recompress", 0));
    assert!(!codecs.is_empty());
    assert!(
        codecs.iter().all(|c| *c == 4),
        "stored codecs {codecs:?}, want all zstd (4)"
    );
    drop_blocking(p).await;
}
