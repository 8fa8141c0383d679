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
    let mut app = blocking(move || {
        let mut app = count_app(&bb, "rt", &d, &[]);
        app.start().unwrap();
        app.wait_until_running(TIMEOUT).unwrap();
        app
    })
    .await;
    wait_total(&b, 300).await;
    assert_eq!(app.metrics().get("restored-records"), 0);
    app = blocking(move || {
        app.close().unwrap();
        app
    })
    .await;
    drop_blocking(app).await;

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
