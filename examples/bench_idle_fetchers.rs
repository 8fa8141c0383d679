//! Produce throughput with and without many idle long-polling consumers on other partitions.
//!
//! Starts `--fetchers` raw Fetch loops (one TCP connection each, Kafka's consumer long poll:
//! `max.wait.ms=500`, `min.bytes=1`) on every partition of an idle topic, then produces
//! `--records` records to a busy topic with librdkafka and reports records/s, first without the
//! fetchers and then with them. Point `--bootstrap` at a running broker (`brook broker`).
//!
//!   cargo run --example bench_idle_fetchers -- --bootstrap 127.0.0.1:9092

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::{Buf, BytesMut};
use clap::Parser;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, RequestHeader, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    bootstrap: String,
    /// Idle long-polling consumers (one connection each)
    #[arg(long, default_value_t = 500)]
    fetchers: usize,
    /// Partitions of the idle topic; every fetcher polls all of them
    #[arg(long, default_value_t = 100)]
    partitions: i32,
    #[arg(long, default_value_t = 2_000_000)]
    records: usize,
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// Producer linger.ms: small values mean many small appends, each one a wake-up
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Producer batch.size
    #[arg(long, default_value_t = 1_000_000)]
    batch_size: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let suffix = std::process::id();
    let (idle, busy) = (format!("idle-{suffix}"), format!("busy-{suffix}"));
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .create()?;
    admin
        .create_topics(
            &[
                NewTopic::new(&idle, args.partitions, TopicReplication::Fixed(1)),
                NewTopic::new(&busy, 1, TopicReplication::Fixed(1)),
            ],
            &AdminOptions::new(),
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let alone = produce(&args, &busy)?;
    let stop = Arc::new(AtomicBool::new(false));
    let fetches = Arc::new(AtomicU64::new(0));
    let addr = args.bootstrap.clone();
    let mut tasks = Vec::new();
    for i in 0..args.fetchers {
        let (addr, idle, stop, fetches) =
            (addr.clone(), idle.clone(), stop.clone(), fetches.clone());
        let partitions = args.partitions;
        tasks.push(tokio::spawn(async move {
            if let Err(e) = fetch_loop(&addr, &idle, partitions, i as i32, &stop, &fetches).await {
                eprintln!("fetcher {i}: {e:#}");
            }
        }));
    }
    // Let every fetcher park in its long poll.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = fetches.load(Ordering::Relaxed);
    let started = Instant::now();
    let crowded = tokio::task::block_in_place(|| produce(&args, &busy))?;
    let polls = fetches.load(Ordering::Relaxed) - before;
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    println!(
        "records/s without fetchers: {alone:.0}\nrecords/s with {} idle fetchers on {} partitions: {crowded:.0} ({:.1}%)\nfetch responses while producing: {polls} ({:.0}/s)",
        args.fetchers,
        args.partitions,
        100.0 * crowded / alone,
        polls as f64 / elapsed
    );
    Ok(())
}

/// Produces `--records` records (acks=1) and returns records/s.
fn produce(args: &Args, topic: &str) -> Result<f64> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .set("acks", "1")
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", args.batch_size.to_string())
        .set("queue.buffering.max.kbytes", "1048576")
        .create()?;
    let value = vec![b'x'; args.record_size];
    let started = Instant::now();
    for _ in 0..args.records {
        let mut record = BaseRecord::<(), [u8]>::to(topic).payload(&value[..]);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(args.records as f64 / started.elapsed().as_secs_f64())
}

/// One idle consumer: Fetch v11 of every partition at its end, 500 ms long poll, forever.
async fn fetch_loop(
    addr: &str,
    topic: &str,
    partitions: i32,
    id: i32,
    stop: &AtomicBool,
    fetches: &AtomicU64,
) -> Result<()> {
    let mut s = TcpStream::connect(addr).await.context("connecting")?;
    s.set_nodelay(true)?;
    let req = FetchRequest::default()
        .with_replica_id(kafka_protocol::messages::BrokerId(-1))
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(
                (0..partitions)
                    .map(|p| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20)
                    })
                    .collect(),
            )]);
    let mut frame = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(1)
        .with_request_api_version(11)
        .with_correlation_id(id)
        .with_client_id(Some(StrBytes::from_static_str("idle-fetcher")))
        .encode(&mut frame, 1)?;
    req.encode(&mut frame, 11)?;
    let mut out = (frame.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&frame);
    let mut body = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        s.write_all(&out).await?;
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await?;
        body.resize((&len[..]).get_i32() as usize, 0);
        s.read_exact(&mut body).await?;
        fetches.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}
