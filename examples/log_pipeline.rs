//! Log aggregation end to end, on one machine with nothing else installed:
//!
//! 1. an embedded broker (temporary directory, free port; or `--data-dir`);
//! 2. a generator appending a web access log, renamed (rotated) half-way;
//! 3. a connect worker tailing it with `FileTailSource` into `access-log`;
//! 4. a streams app parsing lines (malformed ones go to `access-log-dlq`), counting
//!    requests and p50/p99 latency per service and status class over 10-second
//!    tumbling windows, final results only (suppress), into `access-aggregates`;
//! 5. a `SqliteSink` upserting those rows into `aggregates.db`;
//! 6. a live view, then the last windows from SQLite and a check that SQLite's
//!    counts equal the lines generated minus the malformed ones.
//!
//! ```text
//! cargo run --example log_pipeline -- --duration 30
//! ```
//! Pieces can also run separately against `brook broker` (see the README):
//! `--only generate --log-file F` and `--only streams --bootstrap-server ADDR`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use brook_connect::serde_json::json;
use brook_connect::{Worker, WorkerConfig};
use brook_streams::{
    Consumed, DefaultSerde, Grouped, KafkaStreams, Produced, SerdeRef, Serdes, StreamsBuilder,
    StreamsConfig, Suppressed, TimeWindows,
};
use clap::{Parser, ValueEnum};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Only {
    /// Only append to the log file (for `brook connect standalone` to tail).
    Generate,
    /// Only run the streams application against `--bootstrap-server`.
    Streams,
}

#[derive(Parser)]
struct Args {
    /// How long to generate log lines, in seconds.
    #[arg(long, default_value_t = 30)]
    duration: u64,
    /// Lines per second.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// Keep the broker data and outputs here instead of a temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Run one piece only.
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// Broker for `--only streams` (default 127.0.0.1:9092); without `--only`, run the whole
    /// pipeline on this cluster (Kafka, Redpanda, `brook broker`) instead of an embedded broker.
    #[arg(long)]
    bootstrap_server: Option<String>,
    /// Log file for `--only generate`.
    #[arg(long, default_value = "access.log")]
    log_file: PathBuf,
    /// No live view (for tests and logs).
    #[arg(long)]
    quiet: bool,
}

const SERVICES: [&str; 4] = ["checkout", "search", "auth", "catalog"];
const PATHS: [&str; 6] = [
    "/api/cart",
    "/api/items",
    "/login",
    "/api/search?q=shoes",
    "/static/app.js",
    "/api/orders",
];
const WINDOW: Duration = Duration::from_secs(10);
const GRACE: Duration = Duration::from_secs(2);

/// One request line: `2026-11-25T10:00:00.123Z checkout 10.0.0.7 "GET /api/cart HTTP/1.1" 200 512 37ms`.
/// Heartbeat lines (`<ms> - heartbeat`) carry only time, so quiet periods still close windows.
fn line(ts_ms: i64, rng: &mut impl Rng) -> String {
    let service = SERVICES[rng.gen_range(0..SERVICES.len())];
    let status = match rng.gen_range(0..100) {
        0..=84 => 200,
        85..=89 => 304,
        90..=95 => 404,
        _ => 503,
    };
    let base = if status == 503 { 400 } else { 20 };
    let latency = base
        + rng.gen_range(0..60)
        + if rng.gen_ratio(1, 50) {
            rng.gen_range(200..900)
        } else {
            0
        };
    format!(
        "{} {service} 10.0.{}.{} \"GET {} HTTP/1.1\" {status} {} {latency}ms",
        ts_ms,
        rng.gen_range(0..4),
        rng.gen_range(1..250),
        PATHS[rng.gen_range(0..PATHS.len())],
        rng.gen_range(100..9000)
    )
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[derive(Default)]
struct Stats {
    generated: AtomicU64,
    malformed_written: AtomicU64,
    consumed: AtomicU64,
    malformed_seen: AtomicU64,
    windows_closed: AtomicU64,
}

/// Appends lines at `rate`/s for `duration`; renames the file half-way (rotation).
fn generate(
    path: &Path,
    duration: Duration,
    rate: u64,
    stats: &Stats,
    stop: &AtomicBool,
) -> Result<()> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let open = |p: &Path| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
    };
    let mut f = open(path)?;
    let start = Instant::now();
    let mut rotated = false;
    let mut last_heartbeat = Instant::now();
    while start.elapsed() < duration && !stop.load(Ordering::Relaxed) {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        let mut buf = String::new();
        while stats.generated.load(Ordering::Relaxed) < due {
            let n = stats.generated.fetch_add(1, Ordering::Relaxed);
            if n % 997 == 500 {
                buf.push_str("%%% corrupted line, not an access log entry\n");
                stats.malformed_written.fetch_add(1, Ordering::Relaxed);
            } else {
                buf.push_str(&line(now_ms(), &mut rng));
                buf.push('\n');
            }
        }
        if last_heartbeat.elapsed() >= Duration::from_secs(1) {
            buf.push_str(&format!("{} - heartbeat\n", now_ms()));
            last_heartbeat = Instant::now();
        }
        f.write_all(buf.as_bytes())?;
        if !rotated && start.elapsed() >= duration / 2 {
            // Rotation by rename, as logrotate does without copytruncate.
            let mut old = path.as_os_str().to_owned();
            old.push(".1");
            std::fs::rename(path, &old)?;
            f = open(path)?;
            rotated = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // A last heartbeat past the final window's end + grace closes it.
    let end = now_ms() + (WINDOW + GRACE).as_millis() as i64 + 1;
    writeln!(f, "{end} - heartbeat")?;
    f.sync_all()?;
    Ok(())
}

/// A parsed line.
#[derive(Clone, Debug)]
enum Entry {
    Request {
        ts: i64,
        service: String,
        status: u16,
        latency_ms: u32,
    },
    Heartbeat {
        ts: i64,
    },
    Malformed,
}

fn parse(l: &str) -> Entry {
    let mut it = l.split_whitespace();
    let Some(ts) = it.next().and_then(|t| t.parse::<i64>().ok()) else {
        return Entry::Malformed;
    };
    let service = it.next().unwrap_or_default().to_string();
    if service == "-" {
        return Entry::Heartbeat { ts };
    }
    let rest: Vec<&str> = l.rsplitn(4, ' ').collect();
    if rest.len() < 4 {
        return Entry::Malformed;
    }
    let latency = rest[0].strip_suffix("ms").and_then(|v| v.parse().ok());
    let status = rest[2].parse().ok();
    match (latency, status) {
        (Some(latency_ms), Some(status)) if !service.is_empty() => Entry::Request {
            ts,
            service,
            status,
            latency_ms,
        },
        _ => Entry::Malformed,
    }
}

/// Latencies of one window: count per millisecond value, enough for exact percentiles.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Latencies {
    count: u64,
    by_ms: BTreeMap<u32, u64>,
}

impl Latencies {
    fn percentile(&self, p: f64) -> u32 {
        let rank = ((p * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (ms, n) in &self.by_ms {
            seen += n;
            if seen >= rank {
                return *ms;
            }
        }
        0
    }
}

impl DefaultSerde for Latencies {
    fn default_serde() -> SerdeRef<Self> {
        Serdes::json()
    }
}

/// The streams application of step 4.
fn streams_app(bootstrap: &str, state_dir: &Path, stats: Arc<Stats>) -> Result<KafkaStreams> {
    let b = StreamsBuilder::new();
    let (s1, s2, s3) = (stats.clone(), stats.clone(), stats);
    let lines = b
        .stream_with(
            &["access-log"],
            Consumed::with(Serdes::option(Serdes::string()), Serdes::string())
                .with_timestamp_extractor(|_, v, kafka_ts| match parse(v) {
                    Entry::Request { ts, .. } | Entry::Heartbeat { ts } => ts,
                    Entry::Malformed => kafka_ts,
                }),
        )
        .peek(move |_, _| {
            s1.consumed.fetch_add(1, Ordering::Relaxed);
        });
    let branches = lines
        .split("lines-")
        .branch("malformed", |_, v| matches!(parse(v), Entry::Malformed))
        .default_branch("ok");
    branches["lines-malformed"]
        .peek(move |_, _| {
            s2.malformed_seen.fetch_add(1, Ordering::Relaxed);
        })
        .to_with(
            "access-log-dlq",
            Produced::with(Serdes::option(Serdes::string()), Serdes::string()),
        );
    branches["lines-ok"]
        .map(|_, v| match parse(&v) {
            Entry::Request { service, status, latency_ms, .. } => (format!("{service}|{}xx", status / 100), latency_ms),
            // Heartbeats flow through the windows (advancing time) under their own key.
            _ => ("~heartbeat|".to_string(), 0),
        })
        .group_by_key_with(Grouped::with(Serdes::string(), Serdes::decimal::<u32>()).named("by-service-status"))
        .windowed_by(TimeWindows::of_size_and_grace(WINDOW, GRACE))
        .aggregate(Latencies::default, |_, ms: u32, mut agg: Latencies| {
            agg.count += 1;
            *agg.by_ms.entry(ms).or_default() += 1;
            agg
        })
        .suppress(Suppressed::UntilWindowCloses)
        .to_stream()
        .filter(|w, _| !w.key.starts_with('~'))
        .map(move |w, lat| {
            s3.windows_closed.fetch_add(1, Ordering::Relaxed);
            let lat = lat.unwrap_or_default();
            let (service, class) = w.key.split_once('|').unwrap_or((&w.key, ""));
            let row = json!({
                "service": service, "status_class": class,
                "window_start": w.window.start, "window_end": w.window.end,
                "requests": lat.count, "p50_ms": lat.percentile(0.5), "p99_ms": lat.percentile(0.99),
            });
            (format!("{}@{}", w.key, w.window.start), row.to_string())
        })
        .to_with("access-aggregates", Produced::with(Serdes::string(), Serdes::string()));
    let cfg = StreamsConfig::new("log-aggregation", bootstrap)
        .set("state.dir", state_dir.display())
        .set("commit.interval.ms", 500);
    Ok(KafkaStreams::new(b.build()?, cfg)?)
}

fn connectors(log: &Path, db: &Path) -> (serde_json::Value, serde_json::Value) {
    (
        json!({"connector.class": "FileTailSource", "file": log.display().to_string(), "topic": "access-log",
               "poll.interval.ms": "100",
               "value.converter": "org.apache.kafka.connect.storage.StringConverter"}),
        json!({"connector.class": "SqliteSink", "connection.url": db.display().to_string(),
               "topics": "access-aggregates", "table.name.format": "access_aggregates",
               "insert.mode": "upsert", "pk.mode": "record_value",
               "pk.fields": "service,status_class,window_start", "auto.create": "true",
               "key.converter": "org.apache.kafka.connect.storage.StringConverter",
               "value.converter": "org.apache.kafka.connect.json.JsonConverter",
               "value.converter.schemas.enable": "false"}),
    )
}

fn sqlite_totals(db: &Path) -> (u64, u64) {
    let Ok(c) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return (0, 0);
    };
    c.query_row(
        "SELECT COUNT(*), COALESCE(SUM(requests), 0) FROM access_aggregates",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )
    .unwrap_or((0, 0))
}

fn print_last_windows(db: &Path) -> Result<()> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut q = c.prepare(
        "SELECT service, status_class, window_start, requests, p50_ms, p99_ms FROM access_aggregates \
         WHERE window_start = (SELECT MAX(window_start) FROM access_aggregates) ORDER BY service, status_class",
    )?;
    println!("last window in {}:", db.display());
    println!(
        "  {:<10} {:<6} {:>13} {:>8} {:>6} {:>6}",
        "service", "class", "window_start", "requests", "p50ms", "p99ms"
    );
    let rows = q.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, i64>(4)?,
            r.get::<_, i64>(5)?,
        ))
    })?;
    for row in rows {
        let (s, c, w, n, p50, p99) = row?;
        let secs = (w / 1000).rem_euclid(86_400);
        let hms = format!("{:02}:{:02}:{:02}Z", secs / 3600, secs / 60 % 60, secs % 60);
        println!("  {s:<10} {c:<6} {hms:>13} {n:>8} {p50:>6} {p99:>6}");
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error,rdkafka=off,librdkafka=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    match args.only {
        Some(Only::Generate) => {
            generate(
                &args.log_file,
                Duration::from_secs(args.duration),
                args.rate,
                &stats,
                &stop,
            )?;
            println!(
                "generated {} lines into {}",
                stats.generated.load(Ordering::Relaxed),
                args.log_file.display()
            );
            return Ok(());
        }
        Some(Only::Streams) => {
            let dir = args
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("brook-streams-state"));
            let bootstrap = args
                .bootstrap_server
                .clone()
                .unwrap_or_else(|| "127.0.0.1:9092".into());
            let mut app = streams_app(&bootstrap, &dir, stats.clone())?;
            app.start()?;
            println!("log-aggregation running against {bootstrap}; Ctrl-C to stop");
            tokio::signal::ctrl_c().await?;
            tokio::task::spawn_blocking(move || app.close()).await??;
            return Ok(());
        }
        None => {}
    }
    run_all(args, stats, stop).await
}

async fn run_all(args: Args, stats: Arc<Stats>, stop: Arc<AtomicBool>) -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(dir.join("logs"))?;
    let log = dir.join("logs").join("access.log");
    let db = dir.join("aggregates.db");

    // 1. Broker: embedded, or the cluster named by --bootstrap-server.
    let (broker, bootstrap) = match &args.bootstrap_server {
        Some(b) => (None, b.clone()),
        None => {
            let broker = brook_broker::Broker::builder()
                .data_dir(dir.join("broker"))
                .listen("127.0.0.1:0")
                .start()
                .await
                .context("could not start the embedded broker")?;
            let bootstrap = broker.bootstrap_servers();
            (Some(broker), bootstrap)
        }
    };
    println!("broker on {bootstrap}, data in {}", dir.display());
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .create()?;
    // Replication -1: the cluster's default.replication.factor (1 on the embedded broker).
    let topics: Vec<_> = ["access-log", "access-log-dlq", "access-aggregates"]
        .iter()
        .map(|t| rdkafka::admin::NewTopic::new(t, 1, rdkafka::admin::TopicReplication::Fixed(-1)))
        .collect();
    for r in admin
        .create_topics(&topics, &rdkafka::admin::AdminOptions::new())
        .await?
    {
        if let Err((t, e)) = r {
            // Records of an earlier run would spoil the totals check.
            bail!(
                "cannot create topic {t}: {e} (run against a cluster without this demo's topics)"
            );
        }
    }
    drop(admin);

    // 2. Generator (a thread: plain blocking file writes).
    std::fs::File::create(&log)?;
    let (gl, gs, gstop, dur, rate) = (
        log.clone(),
        stats.clone(),
        stop.clone(),
        Duration::from_secs(args.duration),
        args.rate,
    );
    let generator = std::thread::spawn(move || generate(&gl, dur, rate, &gs, &gstop));

    // 3 + 5. Connect worker: file tail in, SQLite out.
    assert!(!brook_connectors::PLUGINS.is_empty());
    let worker = Worker::start(WorkerConfig::from_json(&json!({
        "bootstrap.servers": bootstrap, "offset.flush.interval.ms": "500",
    }))?)
    .await?;
    let (tail, sink) = connectors(&log, &db);
    worker.put_config("access-log-tail", &tail).await?;
    worker.put_config("aggregates-sink", &sink).await?;

    // 4. Streams application (its own threads).
    let (bs, sd, st) = (bootstrap.clone(), dir.join("streams"), stats.clone());
    let app = tokio::task::spawn_blocking(move || -> Result<KafkaStreams> {
        let mut app = streams_app(&bs, &sd, st)?;
        app.start()?;
        Ok(app)
    })
    .await??;

    // 6. Live view until the generator is done and SQLite has every request.
    let start = Instant::now();
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new_spinner()
    };
    let mut generator = Some(generator);
    let deadline_after_gen = Duration::from_secs(60);
    let mut gen_done_at: Option<Instant> = None;
    // The longest time the streams app, once reading, read nothing new while lines were written:
    // what a broker failure or a rebalance costs.
    let (mut last_consumed, mut last_progress, mut longest_pause) =
        (0u64, Instant::now(), Duration::ZERO);
    let outcome = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (rows, requests) = sqlite_totals(&db);
        let generated = stats.generated.load(Ordering::Relaxed);
        let malformed = stats.malformed_written.load(Ordering::Relaxed);
        let consumed = stats.consumed.load(Ordering::Relaxed);
        if consumed > last_consumed || consumed >= generated {
            last_consumed = consumed;
            last_progress = Instant::now();
        } else if gen_done_at.is_none() && last_consumed > 0 {
            longest_pause = longest_pause.max(last_progress.elapsed());
        }
        bar.set_message(format!(
            "{:>4}s  lines {generated}  malformed {}  windows closed {}  rows in sqlite {rows}  lag {} lines",
            start.elapsed().as_secs(),
            stats.malformed_seen.load(Ordering::Relaxed),
            stats.windows_closed.load(Ordering::Relaxed),
            generated.saturating_sub(consumed)
        ));
        bar.tick();
        if generator.as_ref().is_some_and(|g| g.is_finished()) {
            generator
                .take()
                .expect("present")
                .join()
                .map_err(|_| anyhow::anyhow!("generator panicked"))??;
            gen_done_at = Some(Instant::now());
        }
        if let Some(t) = gen_done_at {
            if requests == generated - malformed
                && stats.malformed_seen.load(Ordering::Relaxed) == malformed
            {
                break Ok((generated, malformed, requests));
            }
            if t.elapsed() > deadline_after_gen {
                break Err((generated, malformed, requests));
            }
        }
        if app.state() == brook_streams::State::Error {
            bail!(
                "streams application failed: {}",
                app.error().unwrap_or_default()
            );
        }
    };
    bar.finish_and_clear();
    stop.store(true, Ordering::Relaxed);

    // Clean shutdown: streams, then connect, then the broker.
    tokio::task::spawn_blocking(move || {
        let mut app = app;
        app.close()
    })
    .await??;
    worker.shutdown().await;
    if let Some(broker) = broker {
        broker.shutdown().await?;
    }

    println!(
        "longest pause without progress: {:.1} s",
        longest_pause.as_secs_f64()
    );
    match outcome {
        Ok((generated, malformed, requests)) => {
            print_last_windows(&db)?;
            println!(
                "OK: {requests} requests in SQLite = {generated} lines generated - {malformed} malformed (sent to access-log-dlq), across a log rotation"
            );
            Ok(())
        }
        Err((generated, malformed, requests)) => {
            bail!("MISMATCH: {requests} requests in SQLite, expected {generated} generated - {malformed} malformed")
        }
    }
}
