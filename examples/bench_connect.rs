//! Connect throughput: FileTailSource vs `kcat -P -l` on the same log file
//! and broker, SqliteSource rows/s from a table, SqliteSink upsert rows/s.
//!
//! `cargo run --release --example bench_connect -- [--lines 1000000] [--rows 1000000]
//! [--bootstrap HOST:PORT] [--skip-kcat] [--repeat 3]`. Without `--bootstrap` a broker is
//! embedded in this process (its data in a temporary directory).

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use brook_connect::serde_json::json;
use brook_connect::{Worker, WorkerConfig};
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;
use rusqlite::Connection;

/// Connect benchmark options.
#[derive(Parser, Debug)]
struct Args {
    /// Log lines for the file tail runs
    #[arg(long, default_value_t = 1_000_000)]
    lines: u64,
    /// Rows for the SQLite runs
    #[arg(long, default_value_t = 1_000_000)]
    rows: u64,
    /// Use this broker instead of an embedded one
    #[arg(long)]
    bootstrap: Option<String>,
    /// Do not run the kcat reference
    #[arg(long)]
    skip_kcat: bool,
    /// batch.max.rows for SqliteSource
    #[arg(long, default_value_t = 10_000)]
    batch_max_rows: u64,
    /// batch.size for FileTailSource
    #[arg(long, default_value_t = 2_000)]
    tail_batch_size: u64,
    /// Runs of kcat and of the file tail (each into a fresh topic); the
    /// median is reported too
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let args = Args::parse();
    let dir = tempfile::tempdir().context("temp dir")?;
    let (broker, bootstrap) = match &args.bootstrap {
        Some(b) => (None, b.clone()),
        None => {
            let broker = brook_broker::Broker::builder()
                .data_dir(dir.path().join("broker"))
                .listen("127.0.0.1:0")
                .start()
                .await
                .context("starting the embedded broker")?;
            let bootstrap = broker.bootstrap_servers();
            (Some(broker), bootstrap)
        }
    };
    let result = run(&args, &bootstrap, dir.path()).await;
    if let Some(broker) = broker {
        broker.shutdown().await.context("broker shutdown")?;
    }
    result
}

async fn run(args: &Args, bootstrap: &str, dir: &Path) -> Result<()> {
    let suffix = std::process::id();
    println!(
        "bench_connect: broker {bootstrap}, {} lines, {} rows",
        args.lines, args.rows
    );

    // --- file tail vs kcat -------------------------------------------------
    let log = dir.join("app.log");
    let bytes = write_log(&log, args.lines)?;
    println!(
        "log file: {} lines, {:.1} MB",
        args.lines,
        bytes as f64 / 1e6
    );
    let worker = Worker::start(WorkerConfig::from_json(&json!({
        "bootstrap.servers": bootstrap,
        "offset.storage.topic": format!("bench-offsets-{suffix}"),
        "config.storage.topic": format!("bench-configs-{suffix}"),
        "offset.flush.interval.ms": "1000",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
    }))?)
    .await?;
    assert!(!brook_connectors::PLUGINS.is_empty());
    let (mut kcat_rates, mut tail_rates) = (Vec::new(), Vec::new());
    for run in 1..=args.repeat.max(1) {
        if !args.skip_kcat {
            let topic = format!("bench-kcat-{suffix}-{run}");
            create_topic(bootstrap, &topic).await?;
            let start = Instant::now();
            let status = std::process::Command::new("kcat")
                .args(["-P", "-b", bootstrap, "-t", &topic, "-l"])
                .arg(&log)
                .status()
                .context("running kcat")?;
            if !status.success() {
                bail!("kcat failed: {status}");
            }
            wait_for_count(bootstrap, &topic, args.lines).await?;
            kcat_rates.push(report("kcat -P -l", args.lines, bytes, start.elapsed()));
            delete_topic(bootstrap, &topic).await?;
        }
        let topic = format!("bench-tail-{suffix}-{run}");
        create_topic(bootstrap, &topic).await?;
        let name = format!("tail-{run}");
        // The connector starts first, on a path that does not exist yet; the
        // clock starts when the whole file appears there (a hard link), so
        // connector start-up is not counted (kcat's process start is).
        let path = dir.join(format!("tail-{run}.log"));
        worker
            .add_connector(&json!({"name": name, "connector.class": "FileTailSource",
                "file": path.to_str().unwrap_or_default(), "topic": topic,
                "batch.size": args.tail_batch_size,
                "value.converter": "org.apache.kafka.connect.storage.StringConverter"}))
            .await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let start = Instant::now();
        std::fs::hard_link(&log, &path).context("linking the log file")?;
        wait_for_count(bootstrap, &topic, args.lines).await?;
        tail_rates.push(report(
            &format!("FileTailSource (batch.size={})", args.tail_batch_size),
            args.lines,
            bytes,
            start.elapsed(),
        ));
        worker.delete(&name).await?;
        // Deleted data is not written back to disk by later runs.
        delete_topic(bootstrap, &topic).await?;
        std::fs::remove_file(&path)?;
    }
    if !kcat_rates.is_empty() {
        println!(
            "median of {} runs (each timed from start to the last record in the topic): \
             kcat -P -l {:.0} lines/s, FileTailSource {:.0} lines/s",
            tail_rates.len(),
            median(&mut kcat_rates),
            median(&mut tail_rates)
        );
    }

    // --- SqliteSource ------------------------------------------------------
    let source_db = dir.join("source.db");
    let start = Instant::now();
    let table_bytes = create_table(&source_db, args.rows)?;
    println!(
        "source table: {} rows, {:.1} MB file, built in {:.2?}",
        args.rows,
        table_bytes as f64 / 1e6,
        start.elapsed()
    );
    let prefix = format!("bench-sqlite-{suffix}-");
    let rows_topic = format!("{prefix}rows");
    create_topic(bootstrap, &rows_topic).await?;
    let start = Instant::now();
    worker
        .add_connector(
            &json!({"name": "sqlite-source", "connector.class": "SqliteSource",
            "connection.url": source_db.to_str().unwrap_or_default(), "mode": "incrementing",
            "incrementing.column.name": "id", "table.whitelist": "rows",
            "topic.prefix": prefix, "batch.max.rows": args.batch_max_rows,
            "poll.interval.ms": 1000}),
        )
        .await?;
    wait_for_count(bootstrap, &rows_topic, args.rows).await?;
    report(
        &format!(
            "SqliteSource (incrementing, batch.max.rows={})",
            args.batch_max_rows
        ),
        args.rows,
        0,
        start.elapsed(),
    );
    worker.delete("sqlite-source").await?;

    // --- SqliteSink (upsert) -----------------------------------------------
    let sink_db = dir.join("sink.db");
    let start = Instant::now();
    worker
        .add_connector(
            &json!({"name": "sqlite-sink", "connector.class": "SqliteSink",
            "connection.url": sink_db.to_str().unwrap_or_default(), "topics": rows_topic,
            "table.name.format": "rows", "insert.mode": "upsert", "pk.mode": "record_key",
            "pk.fields": "id", "auto.create": true}),
        )
        .await?;
    let mut first_row = None;
    loop {
        let n = count_rows(&sink_db);
        if n > 0 && first_row.is_none() {
            first_row = Some((Instant::now(), n));
        }
        if n >= args.rows {
            break;
        }
        if start.elapsed() > Duration::from_secs(600) {
            bail!("SqliteSink: only {n} rows after 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    report(
        "SqliteSink (upsert, record_key)",
        args.rows,
        0,
        start.elapsed(),
    );
    // The total includes joining the consumer group, which waits
    // group.initial.rebalance.delay.ms (3 s by default, as in Kafka).
    if let Some((at, n)) = first_row {
        report(
            "  after the first rows were written",
            args.rows - n,
            0,
            at.elapsed(),
        );
    }
    worker.shutdown().await;
    println!(
        "process peak RSS: {} (broker included when embedded)",
        peak_rss()
    );
    Ok(())
}

/// Prints a rate; returns records per second.
fn report(what: &str, n: u64, bytes: u64, took: Duration) -> f64 {
    let secs = took.as_secs_f64();
    if bytes > 0 {
        println!(
            "{what:<45} {n} in {secs:.2} s = {:>10.0} records/s, {:.1} MB/s",
            n as f64 / secs,
            bytes as f64 / 1e6 / secs
        );
    } else {
        println!(
            "{what:<45} {n} in {secs:.2} s = {:>10.0} rows/s",
            n as f64 / secs
        );
    }
    n as f64 / secs
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// Writes `n` ~100-byte log lines; returns the file size.
fn write_log(path: &Path, n: u64) -> Result<u64> {
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    for i in 0..n {
        writeln!(
            out,
            "2026-11-25T08:{:02}:{:02}.{:03}Z INFO api[4242]: GET /api/v1/items/{i:08} status=200 bytes={} took_ms={}",
            (i / 60_000) % 60,
            (i / 1000) % 60,
            i % 1000,
            1000 + i % 9000,
            i % 250
        )?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// Creates table `rows` with `n` rows; returns the database size.
fn create_table(path: &Path, n: u64) -> Result<u64> {
    let mut conn = Connection::open(path)?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE rows (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, name TEXT, amount REAL);",
    )?;
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare("INSERT INTO rows VALUES (?1, ?2, ?3, ?4)")?;
        for i in 1..=n as i64 {
            stmt.execute(rusqlite::params![
                i,
                1_764_000_000_000 + i,
                format!("customer {}", i % 1000),
                i as f64 * 0.25
            ])?;
        }
    }
    tx.commit()?;
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    Ok(std::fs::metadata(path)?.len())
}

fn count_rows(path: &Path) -> u64 {
    Connection::open(path)
        .and_then(|c| c.query_row("SELECT count(*) FROM rows", [], |r| r.get::<_, i64>(0)))
        .map(|n| n as u64)
        .unwrap_or(0)
}

async fn create_topic(bootstrap: &str, topic: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    for r in admin
        .create_topics(
            [&NewTopic::new(topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await?
    {
        r.map_err(|(t, e)| anyhow::anyhow!("creating {t}: {e}"))?;
    }
    Ok(())
}

async fn delete_topic(bootstrap: &str, topic: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    for r in admin.delete_topics(&[topic], &AdminOptions::new()).await? {
        r.map_err(|(t, e)| anyhow::anyhow!("deleting {t}: {e}"))?;
    }
    Ok(())
}

/// Waits until partition 0 of `topic` holds `n` records.
async fn wait_for_count(bootstrap: &str, topic: &str, n: u64) -> Result<()> {
    let (b, t) = (bootstrap.to_string(), topic.to_string());
    tokio::task::spawn_blocking(move || -> Result<()> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &b)
            .set("group.id", "bench-watermarks")
            .create()?;
        let start = Instant::now();
        loop {
            let (_, high) = consumer.fetch_watermarks(&t, 0, Duration::from_secs(10))?;
            if high as u64 >= n {
                return Ok(());
            }
            if start.elapsed() > Duration::from_secs(600) {
                bail!("{t}: only {high} records after 10 minutes");
            }
            // Short: the poll interval bounds how precisely a run is timed.
            std::thread::sleep(Duration::from_millis(5));
        }
    })
    .await?
}

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}
