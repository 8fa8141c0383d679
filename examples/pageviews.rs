//! Page views per user per 1-minute tumbling window, final results only.
//!
//! Starts an embedded broker (or uses `--bootstrap-server`), produces page
//! views spread over five minutes of event time, and runs a streams app that
//! counts views per user and window with `suppress(untilWindowCloses)`, so
//! each window is printed once, when it can no longer change.
//!
//! ```text
//! cargo run --example pageviews
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use brook_streams::{
    KafkaStreams, Produced, Serdes, StreamsBuilder, StreamsConfig, Suppressed, TimeWindows,
    Windowed,
};
use clap::Parser;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

#[derive(Parser)]
struct Args {
    /// Use this cluster instead of an embedded broker.
    #[arg(long)]
    bootstrap_server: Option<String>,
    /// Page views to generate.
    #[arg(long, default_value_t = 3000)]
    views: usize,
}

/// Final count per user and window, as printed.
type FinalCounts = Vec<(Windowed<String>, i64)>;

const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
const BASE: i64 = 1_700_000_000_000 - 1_700_000_000_000 % 60_000;

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let (broker, bootstrap) = match &args.bootstrap_server {
        Some(b) => (None, b.clone()),
        None => {
            let broker = brook_broker::Broker::builder()
                .data_dir(dir.path().join("broker"))
                .listen("127.0.0.1:0")
                .start()
                .await
                .context("could not start the embedded broker")?;
            let b = broker.bootstrap_servers();
            (Some(broker), b)
        }
    };

    // 1. Page views over five minutes of event time, one partition per user pair.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()?;
    let mut expected = 0usize;
    for i in 0..args.views {
        let user = USERS[i % USERS.len()];
        let ts = BASE + (i as i64 * 300_000) / args.views as i64;
        let page = format!("/page/{}", i % 7);
        producer
            .send(
                FutureRecord::to("pageviews")
                    .key(user)
                    .payload(&page)
                    .timestamp(ts),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)?;
        expected += 1;
    }
    // Stream time only moves with records: one later "tick" view per user
    // moves each partition past the last window's end + grace, so it closes
    // (the tick's own window stays open and is never printed).
    for user in USERS {
        let ts = BASE + 400_000;
        producer
            .send(
                FutureRecord::to("pageviews")
                    .key(user)
                    .payload("tick")
                    .timestamp(ts),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)?;
    }

    // 2. The streams application.
    let finals: Arc<Mutex<FinalCounts>> = Arc::default();
    let sink = finals.clone();
    let builder = StreamsBuilder::new();
    let per_minute = builder
        .stream::<String, String>("pageviews")
        .group_by_key()
        .windowed_by(TimeWindows::of_size_and_grace(
            Duration::from_secs(60),
            Duration::from_secs(10),
        ))
        .count()
        .suppress(Suppressed::UntilWindowCloses)
        .to_stream();
    per_minute.foreach(move |w, count| {
        if let Some(c) = count {
            println!(
                "{:>6} [{}s, {}s) {:>4} views",
                w.key,
                (w.window.start - BASE) / 1000,
                (w.window.end - BASE) / 1000,
                c
            );
            sink.lock().expect("not poisoned").push((w.clone(), *c));
        }
    });
    per_minute
        .map(|w, c| {
            (
                format!("{}@{}", w.key, w.window.start),
                c.map(|c| c.to_string()),
            )
        })
        .to_with(
            "pageviews-per-minute",
            Produced::with(Serdes::string(), Serdes::option(Serdes::string())),
        );
    let config = StreamsConfig::new("pageviews-example", &bootstrap)
        .set("state.dir", dir.path().join("state").display())
        .set("commit.interval.ms", 200);
    let mut app = KafkaStreams::new(builder.build()?, config)?;
    let app = tokio::task::spawn_blocking(move || -> Result<KafkaStreams> {
        app.start()?;
        app.wait_until_running(Duration::from_secs(30))?;
        let windows = 5 * USERS.len();
        let deadline = Instant::now() + Duration::from_secs(60);
        while finals.lock().expect("not poisoned").len() < windows {
            if Instant::now() > deadline {
                bail!("only {} of {windows} windows closed", finals.lock().expect("not poisoned").len());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let total: i64 = finals.lock().expect("not poisoned").iter().map(|(_, c)| c).sum();
        if total as usize != expected {
            bail!("final counts sum to {total}, expected {expected}");
        }
        println!("pageviews: {windows} final window counts, {total} views in total — matches what was produced");
        app.close()?;
        Ok(app)
    })
    .await??;
    drop(app);
    drop(producer);
    if let Some(b) = broker {
        b.shutdown().await?;
    }
    Ok(())
}
