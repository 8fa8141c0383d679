//! State restoration throughput: a changelog of `--mb` MiB (records of
//! `--value-bytes`, `--keys` distinct keys) is written into an embedded
//! broker, then a count application with an empty state directory restores it.
//! Prints MB/s and records/s of the restoration alone (listener start → end)
//! and the time until the application is RUNNING.
//!
//! ```text
//! cargo run --release --example bench_restore -- --mb 1024
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use brook_streams::{
    KafkaStreams, Materialized, Serdes, StateRestoreListener, StreamsBuilder, StreamsConfig,
};
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::ClientConfig;
use std::sync::Mutex;

#[derive(Parser)]
struct Args {
    /// Changelog size in MiB (values only).
    #[arg(long, default_value_t = 1024)]
    mb: u64,
    /// Bytes per changelog value.
    #[arg(long, default_value_t = 1024)]
    value_bytes: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 100_000)]
    keys: u64,
    /// Restorations of the same changelog (each from an empty state directory).
    #[arg(long, default_value_t = 1)]
    repeat: usize,
    /// Restore into an in-memory store instead of RocksDB (isolates the consumer side).
    #[arg(long)]
    in_memory: bool,
    /// Any StreamsConfig key, e.g. `restore.consumer.max.partition.fetch.bytes=8388608`; repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    configs: Vec<String>,
}

#[derive(Default)]
struct Timing {
    started: Mutex<Option<Instant>>,
    ended: Mutex<Option<Instant>>,
    records: Mutex<u64>,
}

/// The listener: a handle on the shared timing.
struct Listener(Arc<Timing>);

impl StateRestoreListener for Listener {
    fn on_restore_start(&self, _: &str, _: i32, _: &str, _: i64, _: i64) {
        self.0
            .started
            .lock()
            .unwrap()
            .get_or_insert_with(Instant::now);
    }
    fn on_restore_end(&self, _: &str, _: i32, _: &str, total: u64) {
        *self.0.ended.lock().unwrap() = Some(Instant::now());
        *self.0.records.lock().unwrap() += total;
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let broker = brook_broker::Broker::builder()
        .data_dir(dir.path().join("broker"))
        .listen("127.0.0.1:0")
        .start()
        .await
        .context("broker")?;
    let bootstrap = broker.bootstrap_servers();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()?;
    let app_id = "bench-restore";
    let changelog = format!("{app_id}-counts-changelog");
    let topics = [
        NewTopic::new("restore-in", 1, TopicReplication::Fixed(1)),
        NewTopic::new("restore-out", 1, TopicReplication::Fixed(1)),
        NewTopic::new(&changelog, 1, TopicReplication::Fixed(1)).set("cleanup.policy", "compact"),
    ];
    admin.create_topics(&topics, &AdminOptions::new()).await?;

    let n = args.mb * (1 << 20) / args.value_bytes as u64;
    let (bs, keys, vb, cl) = (
        bootstrap.clone(),
        args.keys,
        args.value_bytes,
        changelog.clone(),
    );
    let t0 = Instant::now();
    tokio::task::spawn_blocking(move || -> Result<()> {
        let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &bs)
            .set("linger.ms", "5")
            .set("batch.size", "1000000")
            .create()?;
        let value = vec![b'v'; vb];
        for i in 0..n {
            let k = format!("key-{:08}", (i * 7919) % keys);
            let mut rec = BaseRecord::<str, [u8]>::to(&cl)
                .partition(0)
                .key(&k)
                .payload(&value);
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
        p.flush(Duration::from_secs(120))?;
        Ok(())
    })
    .await??;
    println!(
        "changelog: {n} records of {} bytes ({} MiB) written in {:.1} s",
        args.value_bytes,
        args.mb,
        t0.elapsed().as_secs_f64()
    );

    for round in 0..args.repeat {
        let b = StreamsBuilder::new();
        let mut store = Materialized::with(Serdes::bytes(), Serdes::i64()).named("counts");
        if args.in_memory {
            store = store.in_memory();
        }
        b.stream::<Vec<u8>, Vec<u8>>("restore-in")
            .group_by_key()
            .count_with(store)
            .to_stream()
            .to_with(
                "restore-out",
                brook_streams::Produced::with(Serdes::bytes(), Serdes::option(Serdes::i64())),
            );
        let state = dir.path().join(format!("state-{round}"));
        let mut cfg = StreamsConfig::new(app_id, &bootstrap).set("state.dir", state.display());
        for kv in &args.configs {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--config expects KEY=VALUE, got `{kv}`"))?;
            cfg = cfg.set(k, v);
        }
        let mut app = KafkaStreams::new(b.build()?, cfg)?;
        let timing = Arc::new(Timing::default());
        app.set_state_restore_listener(Listener(timing.clone()));
        let started = Instant::now();
        let app = tokio::task::spawn_blocking(move || -> Result<KafkaStreams> {
            app.start()?;
            app.wait_until_running(Duration::from_secs(3600))?;
            Ok(app)
        })
        .await??;
        let to_running = started.elapsed();
        let (Some(s), Some(e)) = (
            *timing.started.lock().unwrap(),
            *timing.ended.lock().unwrap(),
        ) else {
            anyhow::bail!("the listener saw no restoration");
        };
        let secs = (e - s).as_secs_f64();
        let records = *timing.records.lock().unwrap();
        let mb = records as f64 * args.value_bytes as f64 / (1 << 20) as f64;
        println!(
            "restore {round}: {records} records, {mb:.0} MiB in {secs:.2} s = {:.0} MiB/s, {:.0} records/s; RUNNING after {:.2} s",
            mb / secs,
            records as f64 / secs,
            to_running.as_secs_f64()
        );
        tokio::task::spawn_blocking(move || {
            let mut app = app;
            app.close()
        })
        .await??;
    }
    drop(admin);
    broker.shutdown().await?;
    Ok(())
}
