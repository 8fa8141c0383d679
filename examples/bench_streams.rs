//! Streams benchmarks: a stateless map/filter pipeline, a count by key on
//! RocksDB and a windowed count — through the TopologyTestDriver (operator
//! and store cost on one core) and end to end through an embedded broker.
//!
//! ```text
//! cargo run --release --example bench_streams -- --records 2000000
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use brook_streams::{
    KafkaStreams, Materialized, Serdes, StreamsBuilder, StreamsConfig, TimeWindows,
    TopologyTestDriver,
};
use clap::Parser;
use hdrhistogram::Histogram;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;

#[derive(Parser)]
struct Args {
    /// Records per test-driver run.
    #[arg(long, default_value_t = 2_000_000)]
    records: u64,
    /// Records per end-to-end run.
    #[arg(long, default_value_t = 1_000_000)]
    e2e_records: u64,
    /// Distinct keys.
    #[arg(long, default_value_t = 10_000)]
    keys: u64,
    /// Test-driver commit cadence in records (a running app commits every
    /// `commit.interval.ms`, 30 s by default).
    #[arg(long, default_value_t = 100_000)]
    commit_every: u64,
    /// Skip the end-to-end runs.
    #[arg(long)]
    driver_only: bool,
}

fn key(i: u64, keys: u64) -> Vec<u8> {
    format!("user-{:06}", (i * 7919) % keys).into_bytes()
}

fn report(name: &str, n: u64, elapsed: Duration, hist: Option<&Histogram<u64>>) {
    let rate = n as f64 / elapsed.as_secs_f64();
    match hist {
        Some(h) => println!(
            "{name:<44} {n:>9} records in {:>6.2} s = {:>10.0} records/s   per-record µs p50 {:.2} p99 {:.2} p99.9 {:.2}",
            elapsed.as_secs_f64(),
            rate,
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.value_at_quantile(0.999) as f64 / 1000.0
        ),
        None => println!("{name:<44} {n:>9} records in {:>6.2} s = {:>10.0} records/s", elapsed.as_secs_f64(), rate),
    }
}

/// Pipes `n` raw records through a driver, committing every `commit_every`
/// records as a running app would at its commit interval.
fn drive(name: &str, b: StreamsBuilder, args: &Args) -> Result<()> {
    let (n, keys, ts_step) = (args.records, args.keys, 1);
    let dir = tempfile::tempdir()?;
    let cfg = StreamsConfig::new("bench", "unused:9092").set("state.dir", dir.path().display());
    let d = TopologyTestDriver::new(b.build()?, cfg)?;
    d.commit_manually();
    let mut input = d.input_topic_with("in", Serdes::bytes(), Serdes::bytes());
    let value = b"GET /index.html 200 1234".to_vec();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let start = Instant::now();
    for i in 0..n {
        let t0 = Instant::now();
        input.pipe_raw(Some(&key(i, keys)), Some(&value), i as i64 * ts_step)?;
        if i % args.commit_every == args.commit_every - 1 {
            d.commit()?;
        }
        hist.record(t0.elapsed().as_nanos() as u64)?;
    }
    d.commit()?;
    report(name, n, start.elapsed(), Some(&hist));
    Ok(())
}

fn counting_sink() -> (
    Arc<AtomicU64>,
    impl Fn(&Vec<u8>, &Vec<u8>) + Send + Sync + 'static,
) {
    let c = Arc::new(AtomicU64::new(0));
    let c2 = c.clone();
    (c, move |_: &Vec<u8>, _: &Vec<u8>| {
        c2.fetch_add(1, Ordering::Relaxed);
    })
}

fn stateless(b: &StreamsBuilder) -> brook_streams::KStream<Vec<u8>, Vec<u8>> {
    b.stream::<Vec<u8>, Vec<u8>>("in")
        .filter(|_, v| !v.is_empty())
        .map_values(|mut v: Vec<u8>| {
            v.make_ascii_uppercase();
            v
        })
        .filter(|_, v| v[0] != b'#')
}

fn driver_runs(args: &Args) -> Result<()> {
    println!("-- test driver (one core, no broker)");
    let b = StreamsBuilder::new();
    let (_, sink) = counting_sink();
    stateless(&b).foreach(sink);
    drive("stateless filter → map_values → filter", b, args)?;

    let b = StreamsBuilder::new();
    b.stream::<Vec<u8>, Vec<u8>>("in")
        .group_by_key()
        .count_with(Materialized::with(Serdes::bytes(), Serdes::i64()).named("counts"));
    drive("count by key, RocksDB + cache", b, args)?;

    let b = StreamsBuilder::new();
    b.stream::<Vec<u8>, Vec<u8>>("in")
        .group_by_key()
        .count_with(
            Materialized::with(Serdes::bytes(), Serdes::i64())
                .named("counts")
                .with_caching_disabled(),
        );
    drive("count by key, RocksDB, no cache", b, args)?;

    let b = StreamsBuilder::new();
    b.stream::<Vec<u8>, Vec<u8>>("in")
        .group_by_key()
        .count_with(
            Materialized::with(Serdes::bytes(), Serdes::i64())
                .named("counts")
                .in_memory(),
        );
    drive("count by key, in-memory store + cache", b, args)?;

    let b = StreamsBuilder::new();
    b.stream::<Vec<u8>, Vec<u8>>("in")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_secs(60),
            Duration::from_secs(5),
        ))
        .aggregate_with(
            || 0i64,
            |_, _, c| c + 1,
            Materialized::with(Serdes::bytes(), Serdes::i64()).named("w"),
        );
    drive("1-min tumbling count, RocksDB + cache", b, args)?;
    Ok(())
}

async fn e2e_runs(args: &Args) -> Result<()> {
    println!("-- end to end through an embedded broker (4 partitions, 1 stream thread)");
    let dir = tempfile::tempdir()?;
    let broker = brook_broker::Broker::builder()
        .data_dir(dir.path().join("broker"))
        .listen("127.0.0.1:0")
        .start()
        .await
        .context("broker")?;
    let bootstrap = broker.bootstrap_servers();
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()?;
    let topics: Vec<_> = ["in", "out"]
        .iter()
        .map(|t| rdkafka::admin::NewTopic::new(t, 4, rdkafka::admin::TopicReplication::Fixed(1)))
        .collect();
    admin
        .create_topics(&topics, &rdkafka::admin::AdminOptions::new())
        .await?;
    let n = args.e2e_records;
    let (bs, keys) = (bootstrap.clone(), args.keys);
    tokio::task::spawn_blocking(move || -> Result<()> {
        let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &bs)
            .set("linger.ms", "5")
            .set("partitioner", "murmur2_random")
            .create()?;
        let value = b"GET /index.html 200 1234";
        for i in 0..n {
            let k = key(i, keys);
            let mut rec = BaseRecord::<[u8], [u8]>::to("in")
                .key(&k[..])
                .payload(&value[..]);
            loop {
                match p.send(rec) {
                    Ok(()) => break,
                    Err((_, r)) => {
                        rec = r;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        p.flush(Duration::from_secs(60))?;
        Ok(())
    })
    .await??;
    for (name, which) in [("stateless → topic", 0), ("count by key → topic", 1)] {
        let b = StreamsBuilder::new();
        let counter = Arc::new(AtomicU64::new(0));
        let c = counter.clone();
        if which == 0 {
            stateless(&b)
                .peek(move |_, _| {
                    c.fetch_add(1, Ordering::Relaxed);
                })
                .to("out");
        } else {
            b.stream::<Vec<u8>, Vec<u8>>("in")
                .peek(move |_, _| {
                    c.fetch_add(1, Ordering::Relaxed);
                })
                .group_by_key()
                .count_with(Materialized::with(Serdes::bytes(), Serdes::i64()).named("counts"))
                .to_stream()
                .to_with(
                    "out",
                    brook_streams::Produced::with(Serdes::bytes(), Serdes::option(Serdes::i64())),
                );
        }
        let cfg = StreamsConfig::new(&format!("bench-e2e-{which}"), &bootstrap)
            .set("state.dir", dir.path().join("state").display())
            .set("commit.interval.ms", 1000)
            .set("consumer.fetch.max.bytes", 52428800)
            .set("consumer.queued.max.messages.kbytes", 131072);
        let mut app = KafkaStreams::new(b.build()?, cfg)?;
        let (elapsed, app) =
            tokio::task::spawn_blocking(move || -> Result<(Duration, KafkaStreams)> {
                app.start()?;
                while counter.load(Ordering::Relaxed) == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let start = Instant::now();
                while counter.load(Ordering::Relaxed) < n {
                    std::thread::sleep(Duration::from_millis(5));
                }
                let e = start.elapsed();
                println!(
                    "   RocksDB block cache + write buffers in use: {:.1} MiB (budget 64 MiB)",
                    app.rocksdb_memory_usage() as f64 / (1 << 20) as f64
                );
                app.close()?;
                Ok((e, app))
            })
            .await??;
        report(&format!("e2e {name}"), n, elapsed, None);
        drop(app);
    }
    drop(admin);
    broker.shutdown().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    driver_runs(&args)?;
    if !args.driver_only {
        e2e_runs(&args).await?;
    }
    Ok(())
}
