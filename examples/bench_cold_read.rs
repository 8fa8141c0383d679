//! Does a cold read of a large log cost an unrelated consumer group a rebalance?
//!
//! Produces `--mb` MiB of 1 KiB records to a topic of `--readers` partitions, evicts the
//! topic's segment files from the page cache (`posix_fadvise(DONTNEED)` on the broker's
//! `--data-dir`, so the same machine), then starts a bystander consumer group (its own topic,
//! `session.timeout.ms` 6000 by default) and, once it is assigned, reads the whole cold topic
//! from the beginning with `--readers` consumers at once. It prints the read's MiB/s, the
//! bystander's rebalances during the read, and the latency of a tiny request (ApiVersions on
//! its own connection, every 20 ms) while the read runs: a broker that reads on its network
//! threads stalls them all.
//!
//!   brook broker --data-dir D --listen 127.0.0.1:9092 &
//!   cargo run --example bench_cold_read -- --bootstrap 127.0.0.1:9092 --data-dir D
//!   (or scripts/bench-cold-read.sh BIN [args])

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::{Buf, BytesMut};
use clap::Parser;
use kafka_protocol::messages::{ApiVersionsRequest, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    bootstrap: String,
    /// The broker's data directory (segment files are evicted from the page cache there)
    #[arg(long)]
    data_dir: std::path::PathBuf,
    /// MiB of records to write and then read cold
    #[arg(long, default_value_t = 1024)]
    mb: usize,
    /// Concurrent readers, one partition each
    #[arg(long, default_value_t = 4)]
    readers: i32,
    /// The bystander group's session.timeout.ms
    #[arg(long, default_value_t = 6000)]
    session_ms: u32,
}

/// Counts the bystander's assignments and revocations.
#[derive(Default)]
struct Bystander {
    assigns: AtomicU64,
    revokes: AtomicU64,
}

impl ClientContext for Bystander {}

impl ConsumerContext for Bystander {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(_) => self.assigns.fetch_add(1, Ordering::SeqCst),
            _ => self.revokes.fetch_add(1, Ordering::SeqCst),
        };
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let suffix = std::process::id();
    let (cold, quiet) = (format!("cold-{suffix}"), format!("bystander-{suffix}"));
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .create()?;
    admin
        .create_topics(
            &[
                NewTopic::new(&cold, args.readers, TopicReplication::Fixed(1)),
                NewTopic::new(&quiet, 1, TopicReplication::Fixed(1)),
            ],
            &AdminOptions::new(),
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let records = args.mb * 1024;
    let t = Instant::now();
    tokio::task::block_in_place(|| produce(&args.bootstrap, &cold, records))?;
    println!(
        "wrote {} MiB in {:.1} s",
        args.mb,
        t.elapsed().as_secs_f64()
    );
    let cached_before = page_cache_kib()?;
    let evicted = evict(&args.data_dir, &cold)?;
    println!(
        "evicted {} MiB of segment files: the page cache shrank by {} MiB",
        evicted >> 20,
        (cached_before - page_cache_kib()?) >> 10
    );

    // The bystander: a group member with nothing to do but heartbeat.
    let stop = Arc::new(AtomicBool::new(false));
    let bystander: Arc<BaseConsumer<Bystander>> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", &args.bootstrap)
            .set("group.id", format!("bystander-{suffix}"))
            .set("session.timeout.ms", args.session_ms.to_string())
            .set("heartbeat.interval.ms", (args.session_ms / 3).to_string())
            .create_with_context(Bystander::default())?,
    );
    bystander.subscribe(&[&quiet])?;
    let poller = {
        let (c, stop) = (bystander.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = c.poll(Duration::from_millis(100));
            }
        })
    };
    let wait = Instant::now();
    while bystander.context().assigns.load(Ordering::SeqCst) == 0 {
        if wait.elapsed() > Duration::from_secs(30) {
            bail!("the bystander group was never assigned");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let member_before = bystander.context().assigns.load(Ordering::SeqCst);

    // A latency probe on its own connection.
    let latencies = Arc::new(Mutex::new(Vec::<f64>::new()));
    let reading = Arc::new(AtomicBool::new(false));
    let probe = {
        let (addr, stop, lat) = (args.bootstrap.clone(), stop.clone(), latencies.clone());
        let reading = reading.clone();
        tokio::spawn(async move { probe_loop(&addr, &stop, &reading, &lat).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    reading.store(true, Ordering::SeqCst);

    let t = Instant::now();
    let mut readers = Vec::new();
    for p in 0..args.readers {
        let (addr, topic) = (args.bootstrap.clone(), cold.clone());
        readers.push(std::thread::spawn(move || read_partition(&addr, &topic, p)));
    }
    let mut bytes = 0u64;
    for r in readers {
        bytes += r.join().expect("reader panicked")?;
    }
    let read_s = t.elapsed().as_secs_f64();
    reading.store(false, Ordering::SeqCst);
    // Give a missed session time to show up as a rebalance.
    tokio::time::sleep(Duration::from_millis(u64::from(args.session_ms) + 1000)).await;
    stop.store(true, Ordering::Relaxed);
    let _ = probe.await;
    poller.join().expect("poller panicked");
    let ctx = bystander.context();
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_by(f64::total_cmp);
    let pct = |q: f64| lat[((lat.len() - 1) as f64 * q) as usize];
    println!(
        "cold read: {:.0} MiB in {read_s:.1} s = {:.0} MiB/s with {} readers",
        bytes as f64 / 1048576.0,
        bytes as f64 / 1048576.0 / read_s,
        args.readers
    );
    println!(
        "bystander (session {} ms): {} rebalances during the read (assignments {} -> {}, revocations {})",
        args.session_ms,
        ctx.assigns.load(Ordering::SeqCst) - member_before,
        member_before,
        ctx.assigns.load(Ordering::SeqCst),
        ctx.revokes.load(Ordering::SeqCst)
    );
    if !lat.is_empty() {
        println!(
            "ApiVersions latency during the read: {} samples, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            lat.len(),
            pct(0.5),
            pct(0.99),
            pct(1.0)
        );
    }
    Ok(())
}

/// Produces `records` 1 KiB records (acks=1) spread over the topic's partitions.
fn produce(bootstrap: &str, topic: &str, records: usize) -> Result<()> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "1")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .create()?;
    let value = vec![b'x'; 1024];
    for i in 0..records {
        let key = i.to_string();
        let mut record = BaseRecord::<str, [u8]>::to(topic)
            .key(&key)
            .payload(&value[..]);
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
    producer.flush(Duration::from_secs(300))?;
    Ok(())
}

/// Writes back and drops every file of `topic`'s partition directories from the page cache;
/// returns the bytes covered.
fn evict(data_dir: &std::path::Path, topic: &str) -> Result<u64> {
    let mut total = 0;
    for dir in std::fs::read_dir(data_dir).context("reading the data directory")? {
        let dir = dir?;
        let name = dir.file_name().to_string_lossy().to_string();
        if !name.starts_with(&format!("{topic}-")) {
            continue;
        }
        for f in std::fs::read_dir(dir.path())? {
            let f = std::fs::File::open(f?.path())?;
            // Dirty pages are not dropped: write them back first.
            f.sync_all()?;
            total += f.metadata()?.len();
            // SAFETY: a valid open descriptor; the call only advises the kernel.
            let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            if rc != 0 {
                bail!("posix_fadvise failed: {rc}");
            }
        }
    }
    if total == 0 {
        bail!(
            "no partition directory of {topic} under {}",
            data_dir.display()
        );
    }
    Ok(total)
}

/// The kernel's page cache size (`Cached` in /proc/meminfo), in KiB.
fn page_cache_kib() -> Result<i64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("Cached:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no Cached line in /proc/meminfo")
}

/// Reads partition `p` of `topic` from the beginning to its end; returns the bytes read.
fn read_partition(bootstrap: &str, topic: &str, p: i32) -> Result<u64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{}-{p}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("max.partition.fetch.bytes", "8388608")
        .create()?;
    let (_, high) = c.fetch_watermarks(topic, p, Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    c.assign(&tpl)?;
    let mut bytes = 0u64;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        match c.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                bytes += m.payload().map_or(0, |v| v.len() as u64);
                if m.offset() + 1 >= high {
                    return Ok(bytes);
                }
            }
            Some(Err(e)) => bail!("reading partition {p}: {e}"),
            None if Instant::now() > deadline => bail!("partition {p} not read in time"),
            None => {}
        }
    }
}

/// ApiVersions v0 every 20 ms on one connection; records each round trip that started while
/// `reading`, in milliseconds.
async fn probe_loop(
    addr: &str,
    stop: &AtomicBool,
    reading: &AtomicBool,
    out: &Mutex<Vec<f64>>,
) -> Result<()> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let mut frame = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(18)
        .with_request_api_version(0)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("probe")))
        .encode(&mut frame, 1)?;
    ApiVersionsRequest::default().encode(&mut frame, 0)?;
    let mut req = (frame.len() as i32).to_be_bytes().to_vec();
    req.extend_from_slice(&frame);
    let mut body = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let during = reading.load(Ordering::SeqCst);
        s.write_all(&req).await?;
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await?;
        body.resize((&len[..]).get_i32() as usize, 0);
        s.read_exact(&mut body).await?;
        if during {
            out.lock().unwrap().push(t.elapsed().as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}
