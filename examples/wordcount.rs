//! Word count on Brook streams: reads lines from `text-lines`, writes the
//! running count per lower-cased word to `word-counts` (key: the word, value:
//! the count as decimal text, so `kcat` and `brook consume` show it).
//!
//! ```text
//! cargo run --example wordcount -- --bootstrap-server 127.0.0.1:9092
//! ```

use std::time::Duration;

use anyhow::Result;
use brook_streams::{
    KafkaStreams, Materialized, State, StateRestoreListener, StreamsBuilder, StreamsConfig,
};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// Kafka (or Brook) bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap_server: String,
    /// `application.id`: consumer group and internal topic prefix.
    #[arg(long, default_value = "wordcount")]
    application_id: String,
    /// `state.dir` for RocksDB stores.
    #[arg(long)]
    state_dir: Option<String>,
    /// `num.stream.threads`.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// `commit.interval.ms`.
    #[arg(long, default_value_t = 1000)]
    commit_interval_ms: u64,
    /// Stop after this many seconds (default: run until Ctrl-C / SIGTERM).
    #[arg(long)]
    duration_secs: Option<u64>,
    /// Any other StreamsConfig key, e.g. `consumer.session.timeout.ms=6000`; repeatable.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    configs: Vec<String>,
}

/// Prints restoration progress (tests read the totals).
struct PrintRestore;

impl StateRestoreListener for PrintRestore {
    fn on_restore_start(&self, topic: &str, partition: i32, store: &str, start: i64, end: i64) {
        println!("restoring {store} from {topic}-{partition} offsets {start}..{end}");
    }
    fn on_restore_end(&self, topic: &str, partition: i32, store: &str, total: u64) {
        println!("restored {total} records of {store} from {topic}-{partition}");
    }
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,brook_streams=info")),
        )
        .init();
    let args = Args::parse();

    let builder = StreamsBuilder::new();
    builder
        .stream::<Option<String>, String>("text-lines")
        .flat_map_values(|line: String| {
            line.to_lowercase()
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .group_by(|_, word| word.clone())
        .count_with(Materialized::as_("counts"))
        .to_stream()
        .map_values(|count| count.map(|c| c.to_string()))
        .to("word-counts");
    let topology = builder.build()?;
    println!("{}", topology.describe());

    let mut config = StreamsConfig::new(&args.application_id, &args.bootstrap_server)
        .set("num.stream.threads", args.threads)
        .set("commit.interval.ms", args.commit_interval_ms);
    if let Some(dir) = &args.state_dir {
        config = config.set("state.dir", dir);
    }
    for kv in &args.configs {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--config expects KEY=VALUE, got `{kv}`"))?;
        config = config.set(k, v);
    }
    let mut app = KafkaStreams::new(topology, config)?;
    app.set_state_listener(|old, new| println!("state {old:?} -> {new:?}"));
    app.set_state_restore_listener(PrintRestore);
    app.start()?;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let timer = async {
            match args.duration_secs {
                Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                None => std::future::pending().await,
            }
        };
        // A failed application (state ERROR) ends the program with its error.
        let failed = async {
            while app.state() != State::Error {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = timer => {}
            _ = failed => {}
        }
        anyhow::Ok(())
    })?;
    let metrics = app.metrics();
    app.close()?;
    println!(
        "tasks opened {}, resumed {}",
        metrics.get("tasks-opened"),
        metrics.get("tasks-resumed")
    );
    println!("closed cleanly");
    Ok(())
}
