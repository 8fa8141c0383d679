//! `brook bench`: producer and consumer benchmarks in the spirit of
//! kafka-producer-perf-test and kafka-consumer-perf-test.

mod producer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::broker_cmd::EmbeddedBroker;
use crate::client::{
    admin_options, fetch_all_metadata, unique_suffix, ClientOpts, REQUEST_TIMEOUT,
};
use producer::produce_records;

/// Bytes per MB in throughput figures (MiB, as the Kafka perf tools use).
const MB: f64 = 1024.0 * 1024.0;

/// Arguments of `brook bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    client: ClientOpts,

    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Produce records as fast as possible (or at --throughput) and report latency
    Produce(ProduceBench),
    /// Read records from the beginning of a topic and report throughput
    Consume(ConsumeBench),
}

#[derive(Args, Debug)]
struct EmbeddedOpts {
    /// Start a Brook broker inside this process and benchmark against it
    #[arg(long)]
    embedded: bool,
    /// Data dir of the embedded broker (default: ./brook-bench-data-<pid>, removed afterwards)
    #[arg(long, requires = "embedded")]
    data_dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct ProduceBench {
    #[command(flatten)]
    settings: ProduceSettings,
    /// Partitions of the topic if it has to be created
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    #[command(flatten)]
    embedded: EmbeddedOpts,
}

#[derive(Args, Debug, Clone)]
struct ProduceSettings {
    /// Topic to produce to (created if missing)
    #[arg(long)]
    topic: String,
    /// Number of records to produce
    #[arg(long)]
    num_records: u64,
    /// Size of each record value in bytes
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// Acknowledgements required
    #[arg(long, default_value = "all", value_parser = ["0", "1", "-1", "all"])]
    acks: String,
    /// linger.ms: how long to wait to fill a batch
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// batch.size in bytes (default: librdkafka's)
    #[arg(long)]
    batch_size: Option<u64>,
    /// Compression codec
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    compression: String,
    /// Cap on records per second (default: unthrottled)
    #[arg(long, value_name = "RECORDS_PER_SEC")]
    throughput: Option<u64>,
}

#[derive(Args, Debug)]
struct ConsumeBench {
    /// Topic to read
    #[arg(long)]
    topic: String,
    /// Number of records to read
    #[arg(long)]
    num_records: u64,
    /// Give up after this many milliseconds without a record
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
    /// First produce records until the topic holds --num-records (implied by --embedded)
    #[arg(long)]
    fill: bool,
    /// Record size used when filling
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// Partitions of the topic if filling has to create it
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    #[command(flatten)]
    embedded: EmbeddedOpts,
}

/// Runs a benchmark, around an embedded broker if asked for.
pub async fn run(args: BenchArgs) -> Result<()> {
    let embedded = match &args.command {
        BenchCommand::Produce(p) => &p.embedded,
        BenchCommand::Consume(c) => &c.embedded,
    };
    let broker = if embedded.embedded {
        Some(EmbeddedBroker::start(embedded.data_dir.clone()).await?)
    } else {
        None
    };
    let client = match &broker {
        Some(broker) => args.client.with_bootstrap(broker.bootstrap_servers()),
        None => args.client.clone(),
    };
    // Ctrl-C stops the run gracefully so partial results are still printed
    // and an embedded broker's data dir is still cleaned up.
    let stop = Arc::new(AtomicBool::new(false));
    let stop_on_signal = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            stop_on_signal.store(true, Ordering::Relaxed);
        }
    });

    let result = match args.command {
        BenchCommand::Produce(bench) => produce_bench(client, bench, stop).await,
        BenchCommand::Consume(bench) => consume_bench(client, bench, stop).await,
    };
    if let Some(broker) = broker {
        let stopped = broker.stop().await;
        if result.is_ok() {
            return stopped;
        }
        if let Err(e) = stopped {
            eprintln!("warning: {e:#}");
        }
    }
    result
}

async fn produce_bench(
    client: ClientOpts,
    bench: ProduceBench,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    ensure_topic(&client, &bench.settings.topic, bench.partitions).await?;
    let stats = blocking(move || produce_records(&client, &bench.settings, &stop)).await?;
    stats.report()
}

async fn consume_bench(
    client: ClientOpts,
    bench: ConsumeBench,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    if bench.fill || bench.embedded.embedded {
        ensure_topic(&client, &bench.topic, bench.partitions).await?;
        let held = records_held(&client, &bench.topic)?;
        if held < bench.num_records {
            let settings = ProduceSettings {
                topic: bench.topic.clone(),
                num_records: bench.num_records - held,
                record_size: bench.record_size,
                acks: "1".to_string(),
                linger_ms: 5,
                batch_size: None,
                compression: "none".to_string(),
                throughput: None,
            };
            eprintln!(
                "filling {} with {} records",
                bench.topic, settings.num_records
            );
            let (client, stop) = (client.clone(), stop.clone());
            blocking(move || produce_records(&client, &settings, &stop))
                .await?
                .check_complete()?;
        }
    }
    blocking(move || consume_records(&client, &bench, &stop)).await
}

/// Runs librdkafka's synchronous poll loops off the async worker threads,
/// which an embedded broker needs for itself.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow!("benchmark task failed: {e}"))?
}

/// Creates the topic with `partitions` partitions unless it already exists.
async fn ensure_topic(client: &ClientOpts, topic: &str, partitions: i32) -> Result<()> {
    let admin = client.admin()?;
    let metadata = fetch_all_metadata(admin.inner(), &client.bootstrap_server)?;
    if metadata.topics().iter().any(|t| t.name() == topic) {
        return Ok(());
    }
    let new_topic = rdkafka::admin::NewTopic::new(
        topic,
        partitions,
        rdkafka::admin::TopicReplication::Fixed(1),
    );
    let results = admin
        .create_topics([&new_topic], &admin_options())
        .await
        .with_context(|| format!("could not create topic {topic}"))?;
    for result in results {
        match result {
            // Someone else created it in the meantime: fine.
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => bail!("could not create topic {topic}: {code}"),
        }
    }
    eprintln!("created topic {topic} with {partitions} partition(s)");
    Ok(())
}

/// Records currently retained in a topic (sum of high - low watermarks).
fn records_held(client: &ClientOpts, topic: &str) -> Result<u64> {
    let admin = client.admin()?;
    let metadata = fetch_all_metadata(admin.inner(), &client.bootstrap_server)?;
    let Some(meta) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(0);
    };
    let mut held = 0;
    for p in meta.partitions() {
        let (low, high) = admin
            .inner()
            .fetch_watermarks(topic, p.id(), REQUEST_TIMEOUT)
            .with_context(|| format!("could not fetch watermarks of {topic}/{}", p.id()))?;
        held += (high - low).max(0) as u64;
    }
    Ok(held)
}

fn consume_records(client: &ClientOpts, bench: &ConsumeBench, stop: &AtomicBool) -> Result<()> {
    let mut config = client.config();
    config
        .set("group.id", format!("brook-bench-{}", unique_suffix()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        // librdkafka stops fetching once 100k records are queued and then backs off for
        // fetch.queue.backoff.ms (1 s): with small records that measures the back-off, not
        // the broker. Queue deeper, as a consumer built for throughput would.
        .set("queued.min.messages", "1000000")
        .set("queued.max.messages.kbytes", "1048576");
    for (key, value) in &client.client_config {
        config.set(key, value);
    }
    let consumer: BaseConsumer = config
        .create()
        .context("could not create the Kafka consumer")?;
    let metadata = fetch_all_metadata(consumer.client(), &client.bootstrap_server)?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == bench.topic)
        .ok_or_else(|| anyhow!("topic {} does not exist", bench.topic))?;
    // Direct assignment from the beginning: no group join to wait for.
    let mut assignment = TopicPartitionList::new();
    for p in topic.partitions() {
        assignment
            .add_partition_offset(&bench.topic, p.id(), Offset::Beginning)
            .context("could not build the partition assignment")?;
    }
    consumer
        .assign(&assignment)
        .context("could not assign partitions")?;

    let idle_limit = Duration::from_millis(bench.timeout_ms);
    let progress = progress_bar(bench.num_records, "read")?;
    let start = Instant::now();
    let (mut count, mut bytes, mut last_record) = (0u64, 0u64, Instant::now());
    while count < bench.num_records && !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                count += 1;
                bytes += (message.payload_len() + message.key().map_or(0, <[u8]>::len)) as u64;
                last_record = Instant::now();
                if count.is_multiple_of(1024) {
                    update_progress(&progress, count, (bytes / count) as usize, start);
                }
            }
            Some(Err(e)) => eprintln!("warning: {e}"),
            None if last_record.elapsed() >= idle_limit => break,
            None => {}
        }
    }
    let elapsed = start.elapsed();
    progress.finish_and_clear();
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!(
        "{count} records ({:.2} MB) consumed in {secs:.2} s: {:.1} records/sec ({:.2} MB/sec)",
        bytes as f64 / MB,
        count as f64 / secs,
        bytes as f64 / MB / secs
    );
    if count < bench.num_records {
        bail!("only {count} of {} records were read", bench.num_records);
    }
    Ok(())
}

fn progress_bar(len: u64, what: &str) -> Result<ProgressBar> {
    let style = ProgressStyle::with_template(&format!(
        "{{spinner}} {{elapsed_precise}} [{{bar:30}}] {{pos}}/{{len}} {what} ({{per_sec}}) {{msg}}"
    ))
    .context("bad progress bar template")?;
    Ok(ProgressBar::new(len).with_style(style))
}

fn update_progress(progress: &ProgressBar, done: u64, record_size: usize, start: Instant) {
    progress.set_position(done);
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    progress.set_message(format!(
        "{:.1} MB/s",
        done as f64 * record_size as f64 / MB / secs
    ));
}
