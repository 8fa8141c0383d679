//! KafkaStreams in-process against a real broker: state listener, clean
//! restart without replay, restore after lost local state, co-partitioning
//! and missing-topic errors, and the RocksDB memory budget across many tasks.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brook_streams::{
    JoinWindows, KafkaStreams, Materialized, State, StreamsBuilder, StreamsConfig, StreamsError,
};
use common::*;

fn count_app(
    bootstrap: &str,
    app: &str,
    dir: &std::path::Path,
    extra: &[(&str, &str)],
) -> KafkaStreams {
    let b = StreamsBuilder::new();
    b.stream::<String, String>("events")
        .group_by_key()
        .count_with(Materialized::as_("per-key"))
        .to_stream()
        .map_values(|c| c.map(|c| c.to_string()))
        .to("per-key-counts");
    let mut cfg = StreamsConfig::new(app, bootstrap)
        .set("state.dir", dir.display())
        .set("commit.interval.ms", 100)
        .set("consumer.session.timeout.ms", 6000);
    for (k, v) in extra {
        cfg = cfg.set(k, v);
    }
    KafkaStreams::new(b.build().unwrap(), cfg).unwrap()
}

/// Closes cleanly (the close must succeed) and drops off the runtime.
async fn close_and_drop(mut app: KafkaStreams) {
    app = blocking(move || {
        app.close().unwrap();
        app
    })
    .await;
    drop_blocking(app).await;
}

async fn produce_events(bootstrap: &str, n: usize, partitions: usize) {
    let p = producer(bootstrap, false);
    let recs: Vec<Out> = (0..n)
        .map(|i| Out::kv(format!("k{}", i % 20), "x").to(((i % 20) % partitions) as i32))
        .collect();
    for r in produce_all(&p, "events", &recs).await {
        r.unwrap();
    }
}

fn total_of_latest(bootstrap: &str) -> i64 {
    let mut m = std::collections::BTreeMap::new();
    for r in read_all(bootstrap, "per-key-counts").unwrap_or_default() {
        m.insert(r.key_str(), r.value_str().parse::<i64>().unwrap_or(0));
    }
    m.values().sum()
}

async fn wait_total(bootstrap: &str, want: i64) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let b = bootstrap.to_string();
        let got = blocking(move || total_of_latest(&b)).await;
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "total {got}, want {want}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_restart_replays_nothing_and_lost_state_is_restored() {
    init_tracing();
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "events", 2, &[]).await;
    create_topic(&b, "per-key-counts", 2, &[]).await;
    produce_events(&b, 200, 2).await;
    let dir = tempfile::tempdir().unwrap();
    let states = Arc::new(Mutex::new(Vec::new()));
    let (bb, d) = (b.clone(), dir.path().to_path_buf());
    let st = states.clone();
    let mut app = blocking(move || {
        let mut app = count_app(&bb, "rt", &d, &[]);
        app.set_state_listener(move |_, new| st.lock().unwrap().push(new));
        app.start().unwrap();
        app.wait_until_running(TIMEOUT).unwrap();
        app
    })
    .await;
    wait_total(&b, 200).await;
    let app = blocking(move || {
        app.close().unwrap();
        app
    })
    .await;
    assert_eq!(app.state(), State::NotRunning);
    assert_eq!(
        states.lock().unwrap().as_slice(),
        &[
            State::Rebalancing,
            State::Running,
            State::PendingShutdown,
            State::NotRunning
        ]
    );
    drop_blocking(app).await;

    // Clean restart: checkpoints say the stores are current.
    produce_events(&b, 100, 2).await;
    let (bb, d) = (b.clone(), dir.path().to_path_buf());
    let app = blocking(move || {
        let mut app = count_app(&bb, "rt", &d, &[]);
        app.start().unwrap();
        app.wait_until_running(TIMEOUT).unwrap();
        app
    })
    .await;
    wait_total(&b, 300).await;
    assert_eq!(app.metrics().get("restored-records"), 0);
    close_and_drop(app).await;

    // Local state lost (a new machine): everything comes back from the changelog.
    std::fs::remove_dir_all(dir.path()).unwrap();
    produce_events(&b, 100, 2).await;
    let (bb, d) = (b.clone(), dir.path().to_path_buf());
    let mut app = blocking(move || {
        let mut app = count_app(&bb, "rt", &d, &[]);
        app.start().unwrap();
        app.wait_until_running(TIMEOUT).unwrap();
        app
    })
    .await;
    wait_total(&b, 400).await;
    assert!(
        app.metrics().get("restored-records") >= 20,
        "{:?}",
        app.metrics().snapshot()
    );
    blocking(move || app.close().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_setups_fail_with_clear_errors() {
    init_tracing();
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "left", 2, &[]).await;
    create_topic(&b, "right", 3, &[]).await;
    let bb = b.clone();
    blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        // Missing source topic.
        let bld = StreamsBuilder::new();
        bld.stream::<String, String>("nope").to("out");
        let mut app = KafkaStreams::new(
            bld.build().unwrap(),
            StreamsConfig::new("bad1", &bb).set("state.dir", dir.path().display()),
        )
        .unwrap();
        match app.start() {
            Err(StreamsError::MissingSourceTopic(t)) => assert_eq!(t, "nope"),
            other => panic!("expected missing topic, got {other:?}"),
        }
        // Joined topics with different partition counts.
        let bld = StreamsBuilder::new();
        let l = bld.stream::<String, String>("left");
        let r = bld.stream::<String, String>("right");
        l.join(
            &r,
            |a, b| a + &b,
            JoinWindows::of_time_difference_without_grace(Duration::from_secs(1)),
        )
        .to("out");
        let mut app = KafkaStreams::new(
            bld.build().unwrap(),
            StreamsConfig::new("bad2", &bb).set("state.dir", dir.path().display()),
        )
        .unwrap();
        let e = app.start().unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("left") && msg.contains("right") && msg.contains("co-partitioned"),
            "{msg}"
        );
        // Bad config is named.
        let bld = StreamsBuilder::new();
        bld.stream::<String, String>("left").to("out");
        let e = KafkaStreams::new(
            bld.build().unwrap(),
            StreamsConfig::new("bad3", &bb).set("num.stream.threads", "two"),
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("num.stream.threads"), "{e}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_memory_stays_within_budget_across_many_tasks() {
    init_tracing();
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "events", 16, &[]).await;
    create_topic(&b, "per-key-counts", 16, &[]).await;
    produce_events(&b, 4000, 16).await;
    let dir = tempfile::tempdir().unwrap();
    let (bb, d) = (b.clone(), dir.path().to_path_buf());
    let budget = 8 << 20;
    let mut app = blocking(move || {
        let mut app = count_app(
            &bb,
            "mem",
            &d,
            &[
                ("statestore.rocksdb.memory.bytes", "8388608"),
                ("num.stream.threads", "2"),
            ],
        );
        app.start().unwrap();
        app.wait_until_running(TIMEOUT).unwrap();
        app
    })
    .await;
    wait_total(&b, 4000).await;
    let used = app.rocksdb_memory_usage();
    assert!(
        used <= budget,
        "RocksDB uses {used} bytes over a budget of {budget}"
    );
    blocking(move || app.close().unwrap()).await;
}

/// Counts per key in a store without a changelog and forwards the count.
struct UnloggedCounter {
    store: Option<brook_streams::KeyValueStore<String, i64>>,
}

impl brook_streams::Processor<String, String, String, String> for UnloggedCounter {
    fn init(
        &mut self,
        ctx: &mut brook_streams::ProcessorContext<'_, '_, String, String>,
    ) -> brook_streams::Result<()> {
        self.store = Some(ctx.key_value_store("unlogged")?);
        Ok(())
    }
    fn process(
        &mut self,
        ctx: &mut brook_streams::ProcessorContext<'_, '_, String, String>,
        r: brook_streams::Record<String, String>,
    ) -> brook_streams::Result<()> {
        let store = self.store.as_ref().expect("init ran");
        let n = store.get(&r.key)?.unwrap_or(0) + 1;
        store.put(&r.key, &n)?;
        ctx.forward(brook_streams::Record::new(
            r.key,
            n.to_string(),
            r.timestamp,
        ));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_without_changelog_survives_a_clean_restart() {
    init_tracing();
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "events", 2, &[]).await;
    create_topic(&b, "per-key-counts", 2, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let start = |b: String, d: std::path::PathBuf| {
        blocking(move || {
            let builder = StreamsBuilder::new();
            builder.add_state_store(
                brook_streams::Stores::key_value::<String, i64>("unlogged").with_logging_disabled(),
            );
            builder
                .stream::<String, String>("events")
                .process("count", || UnloggedCounter { store: None }, &["unlogged"])
                .to("per-key-counts");
            let cfg = StreamsConfig::new("unlogged", &b)
                .set("state.dir", d.display())
                .set("commit.interval.ms", 100);
            let mut app = KafkaStreams::new(builder.build().unwrap(), cfg).unwrap();
            app.start().unwrap();
            app.wait_until_running(TIMEOUT).unwrap();
            app
        })
    };
    produce_events(&b, 200, 2).await;
    let app = start(b.clone(), dir.path().to_path_buf()).await;
    wait_total(&b, 200).await;
    close_and_drop(app).await;
    // The latest count per key keeps growing from where it was: 300 events of
    // 20 keys give each key 15, so the latest counts sum to 300, not 100.
    produce_events(&b, 100, 2).await;
    let app = start(b.clone(), dir.path().to_path_buf()).await;
    wait_total(&b, 300).await;
    close_and_drop(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_longer_than_task_timeout_is_not_a_failure_and_bad_checkpoints_are_wiped() {
    init_tracing();
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "events", 1, &[]).await;
    create_topic(&b, "per-key-counts", 1, &[]).await;
    // A changelog of 30,000 records (no cache: one record per event).
    let p = producer(&b, false);
    let recs: Vec<Out> = (0..30_000)
        .map(|i| Out::kv(format!("k{}", i % 5000), "x"))
        .collect();
    for r in produce_all(&p, "events", &recs).await {
        r.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let extra = [("statestore.cache.max.bytes", "0")];
    let (bb, d) = (b.clone(), dir.path().to_path_buf());
    let app = blocking(move || {
        let mut app = count_app(&bb, "slow", &d, &extra);
        app.start().unwrap();
        app.wait_until_running(TIMEOUT).unwrap();
        app
    })
    .await;
    wait_total(&b, 30_000).await;
    close_and_drop(app).await;
    // Lose the local state, and leave a checkpoint beyond the changelog's end
    // for the store: it must be wiped and restored, not trusted.
    let task_dir = dir.path().join("slow").join("0_0");
    std::fs::remove_dir_all(task_dir.join("per-key")).unwrap();
    std::fs::write(task_dir.join(".checkpoint"), br#"{"per-key": 999999999}"#).unwrap();
    // Restoration in small fetches, slowed by the listener, takes longer than task.timeout.ms.
    #[derive(Default)]
    struct Counted {
        batches: std::sync::atomic::AtomicU64,
        total: std::sync::atomic::AtomicU64,
    }
    struct Listener(Arc<Counted>);
    impl brook_streams::StateRestoreListener for Listener {
        fn on_batch_restored(&self, _: &str, _: i32, _: &str, _: i64, _: u64) {
            // A slow store: the whole restoration outlasts task.timeout.ms.
            std::thread::sleep(Duration::from_millis(200));
            self.0
                .batches
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        fn on_restore_end(&self, _: &str, _: i32, _: &str, total: u64) {
            self.0
                .total
                .fetch_add(total, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let counted = Arc::new(Counted::default());
    let slow = [
        ("statestore.cache.max.bytes", "0"),
        ("task.timeout.ms", "300"),
        ("restore.consumer.message.max.bytes", "1000"),
        ("restore.consumer.fetch.max.bytes", "10000"),
        ("restore.consumer.max.partition.fetch.bytes", "10000"),
    ];
    let (bb, d, c) = (b.clone(), dir.path().to_path_buf(), counted.clone());
    let started = Instant::now();
    let mut app = blocking(move || {
        let mut app = count_app(&bb, "slow", &d, &slow);
        app.set_state_restore_listener(Listener(c));
        app.start().unwrap();
        app.wait_until_running(TIMEOUT).unwrap();
        app
    })
    .await;
    let took = started.elapsed();
    let total = counted.total.load(std::sync::atomic::Ordering::Relaxed);
    let batches = counted.batches.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("restored {total} records in {batches} batches, {took:?}");
    assert_eq!(total, 30_000, "the whole changelog is restored");
    assert!(batches > 2, "restoration reports its batches");
    assert!(
        took > Duration::from_millis(600),
        "restoration was not slowed: {took:?}"
    );
    // The restored counts are right: 5000 more events bring every key to 7.
    let recs: Vec<Out> = (0..5000).map(|i| Out::kv(format!("k{i}"), "x")).collect();
    for r in produce_all(&p, "events", &recs).await {
        r.unwrap();
    }
    wait_total(&b, 35_000).await;
    app = blocking(move || {
        app.close().unwrap();
        app
    })
    .await;
    assert!(app.error().is_none());
    drop_blocking(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_thread_is_replaced_when_the_handler_says_so() {
    init_tracing();
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "events", 1, &[]).await;
    create_topic(&b, "out", 1, &[]).await;
    let failed_once = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let dir = tempfile::tempdir().unwrap();
    let (bb, d, f) = (b.clone(), dir.path().to_path_buf(), failed_once.clone());
    let app = blocking(move || {
        let builder = StreamsBuilder::new();
        builder
            .stream::<String, String>("events")
            .map_values(move |v: String| {
                if v == "poison" && !f.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    panic!("poison record");
                }
                v
            })
            .to("out");
        let cfg = StreamsConfig::new("replace", &bb)
            .set("state.dir", d.display())
            .set("commit.interval.ms", 100);
        let mut app = KafkaStreams::new(builder.build().unwrap(), cfg).unwrap();
        app.set_uncaught_exception_handler(|e| {
            eprintln!("handler saw: {e}");
            brook_streams::StreamThreadExceptionResponse::ReplaceThread
        });
        app.start().unwrap();
        app.wait_until_running(TIMEOUT).unwrap();
        app
    })
    .await;
    let p = producer(&b, false);
    let recs = [
        Out::kv("a", "one"),
        Out::kv("b", "poison"),
        Out::kv("c", "three"),
    ];
    for r in produce_all(&p, "events", &recs).await {
        r.unwrap();
    }
    // The replaced thread processes the poison record again (it was not
    // committed) and this time it passes.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let bb = b.clone();
        let values: Vec<String> = blocking(move || {
            read_all(&bb, "out")
                .unwrap_or_default()
                .iter()
                .map(|r| r.value_str())
                .collect()
        })
        .await;
        if values.contains(&"poison".to_string()) && values.contains(&"three".to_string()) {
            break;
        }
        assert!(Instant::now() < deadline, "outputs: {values:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(failed_once.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(app.metrics().get("replaced-threads"), 1);
    assert_ne!(app.state(), State::Error);
    close_and_drop(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_application_stops_every_instance() {
    init_tracing();
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "events", 2, &[]).await;
    create_topic(&b, "out", 2, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let start = |b: String, d: std::path::PathBuf| {
        blocking(move || {
            let builder = StreamsBuilder::new();
            builder
                .stream::<String, String>("events")
                .map_values(|v: String| {
                    assert!(v != "poison", "poison record");
                    v
                })
                .to("out");
            let cfg = StreamsConfig::new("stop-all", &b)
                .set("state.dir", d.display())
                .set("commit.interval.ms", 100)
                .set("consumer.session.timeout.ms", 6000);
            let mut app = KafkaStreams::new(builder.build().unwrap(), cfg).unwrap();
            app.set_uncaught_exception_handler(|_| {
                brook_streams::StreamThreadExceptionResponse::ShutdownApplication
            });
            app.start().unwrap();
            app
        })
    };
    let one = start(b.clone(), dir.path().join("one")).await;
    let two = start(b.clone(), dir.path().join("two")).await;
    let (one, two) = blocking(move || {
        one.wait_until_running(TIMEOUT).unwrap();
        two.wait_until_running(TIMEOUT).unwrap();
        (one, two)
    })
    .await;
    // The poison record reaches one instance; both must stop.
    let p = producer(&b, false);
    for r in produce_all(&p, "events", &[Out::kv("k", "poison").to(0)]).await {
        r.unwrap();
    }
    let deadline = Instant::now() + TIMEOUT;
    while one.state() != State::Error || two.state() != State::Error {
        assert!(
            Instant::now() < deadline,
            "states {:?} and {:?}",
            one.state(),
            two.state()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let errors = [one.error().unwrap(), two.error().unwrap()];
    assert!(errors.iter().any(|e| e.contains("poison")), "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("shut down by another instance")),
        "{errors:?}"
    );
    drop_blocking(one).await;
    drop_blocking(two).await;
}
