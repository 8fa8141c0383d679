//! The word-count example against a real broker: end-to-end counts, a
//! `kill -9` and restart restored from the changelog, and two threads or two
//! instances sharing the partitions giving the same counts as one.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::consumer::Consumer;

struct App {
    child: Child,
    /// Where the program's stdout goes (state changes, restoration totals).
    out: PathBuf,
    _out_dir: tempfile::TempDir,
}

impl App {
    fn start(bootstrap: &str, app_id: &str, state: &std::path::Path, threads: usize) -> App {
        Self::start_with(bootstrap, app_id, state, threads, &[])
    }

    fn start_with(
        bootstrap: &str,
        app_id: &str,
        state: &std::path::Path,
        threads: usize,
        configs: &[&str],
    ) -> App {
        let out_dir = tempfile::tempdir().unwrap();
        let out = out_dir.path().join("stdout");
        let mut cmd = Command::new(example_bin("wordcount"));
        cmd.args([
            "--bootstrap-server",
            bootstrap,
            "--application-id",
            app_id,
            "--commit-interval-ms",
            "100",
        ])
        .args(["--threads", &threads.to_string()])
        // A killed member leaves the group only when its session expires.
        .args(["--config", "consumer.session.timeout.ms=6000"]);
        for c in configs {
            cmd.args(["--config", c]);
        }
        let child = cmd
            .arg("--state-dir")
            .arg(state)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
            .spawn()
            .expect("spawn wordcount");
        App {
            child,
            out,
            _out_dir: out_dir,
        }
    }
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    /// SIGTERM; the program must exit cleanly within 30 s.
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(
                    status.success(),
                    "wordcount exited with {status}:\n{}",
                    self.stdout()
                );
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "wordcount did not stop within 30 s of SIGTERM:\n{}",
                self.stdout()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }
    /// Records restored from changelogs, as the program reported them.
    fn restored(&self) -> u64 {
        self.stdout()
            .lines()
            .filter_map(|l| l.strip_prefix("restored "))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.kill();
    }
}

const WORDS: [&str; 12] = [
    "apple", "Banana", "cherry", "date", "elder", "fig", "grape", "HONEY", "ice", "jam", "kiwi",
    "lemon",
];

/// Deterministic lines and the counts they produce.
fn lines(from: usize, to: usize) -> (Vec<String>, BTreeMap<String, i64>) {
    let mut counts = BTreeMap::new();
    let mut out = Vec::new();
    for i in from..to {
        let n = 1 + i % 5;
        let words: Vec<&str> = (0..n)
            .map(|j| WORDS[(i * 7 + j * 3) % WORDS.len()])
            .collect();
        for w in &words {
            *counts.entry(w.to_lowercase()).or_insert(0) += 1;
        }
        out.push(format!("{}, {}!", words.join(" "), ""));
    }
    (out, counts)
}

fn merge(a: &mut BTreeMap<String, i64>, b: BTreeMap<String, i64>) {
    for (k, v) in b {
        *a.entry(k).or_insert(0) += v;
    }
}

async fn produce_lines(bootstrap: &str, lines: &[String]) {
    let recs: Vec<Out> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| Out::kv(format!("line-{i}"), l.as_str()))
        .collect();
    let p = producer(bootstrap, false);
    for r in produce_all(&p, "text-lines", &recs).await {
        r.expect("produce");
    }
}

/// Latest count per word in `word-counts`.
fn current_counts(bootstrap: &str) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for r in read_all(bootstrap, "word-counts").unwrap_or_default() {
        if let Ok(v) = r.value_str().parse() {
            m.insert(r.key_str(), v);
        }
    }
    m
}

/// Waits until the counts equal `expected`, or with `at_least` until none is
/// under it (at-least-once: over is allowed).
async fn wait_counts(bootstrap: &str, expected: &BTreeMap<String, i64>, at_least: bool) {
    // A 3-node Kafka cluster shares this (2-core) machine with the application: after a
    // 10,000-lines/s run, catching up has taken longer than a minute there.
    let timeout = if cluster::is_external() {
        3 * TIMEOUT
    } else {
        TIMEOUT
    };
    let deadline = Instant::now() + timeout;
    loop {
        let b = bootstrap.to_string();
        let got = blocking(move || current_counts(&b)).await;
        let off: Vec<_> = expected
            .iter()
            .filter(|(w, n)| {
                let have = got.get(*w).copied().unwrap_or(0);
                if at_least {
                    have < **n
                } else {
                    have != **n
                }
            })
            .collect();
        if off.is_empty() && (at_least || got.len() == expected.len()) {
            return;
        }
        if Instant::now() >= deadline {
            let b = bootstrap.to_string();
            let lag = blocking(move || group_lag(&b)).await;
            panic!(
                "counts off the truth (at least: {at_least}): {off:?}\n got {got:?}\n\
                 committed offsets / end offsets per group (a stuck partition or a lagging \
                 one):\n{lag}"
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// For every group, its committed offset against the end offset of each partition it
/// committed: tells a partition left behind from an application that is only slow.
fn group_lag(bootstrap: &str) -> String {
    let q = query_consumer(bootstrap);
    let groups = match q.fetch_group_list(None, Duration::from_secs(10)) {
        Ok(list) => list
            .groups()
            .iter()
            .map(|g| g.name().to_string())
            .collect::<Vec<_>>(),
        Err(e) => return format!("listing groups: {e}"),
    };
    let topics = list_topics(bootstrap).unwrap_or_default();
    let mut out = String::new();
    for group in groups.iter().filter(|g| !g.starts_with("query")) {
        let c: rdkafka::consumer::BaseConsumer = match consumer_config(bootstrap, group).create() {
            Ok(c) => c,
            Err(e) => return format!("{out}{group}: {e}"),
        };
        let mut tpl = rdkafka::TopicPartitionList::new();
        for t in topics.iter().filter(|t| !t.starts_with("__")) {
            for p in 0..partition_count(bootstrap, t).ok().flatten().unwrap_or(0) as i32 {
                tpl.add_partition(t, p);
            }
        }
        let committed = match c.committed_offsets(tpl, Duration::from_secs(10)) {
            Ok(c) => c,
            Err(e) => return format!("{out}{group}: {e}"),
        };
        for e in committed.elements() {
            if let rdkafka::Offset::Offset(at) = e.offset() {
                let end = watermarks(bootstrap, e.topic(), e.partition())
                    .map(|(_, h)| h.to_string())
                    .unwrap_or_else(|e| e.to_string());
                out.push_str(&format!(
                    "  {group} {}-{}: {at} / {end}\n",
                    e.topic(),
                    e.partition()
                ));
            }
        }
    }
    out
}

async fn wait_for_counts(bootstrap: &str, expected: &BTreeMap<String, i64>) {
    wait_counts(bootstrap, expected, false).await
}

async fn wait_at_least(bootstrap: &str, expected: &BTreeMap<String, i64>) {
    wait_counts(bootstrap, expected, true).await
}

/// A broker with `text-lines` and `word-counts` of `partitions` partitions.
async fn broker_with_topics(partitions: i32) -> (TestBroker, String) {
    init_tracing();
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "text-lines", partitions, &[]).await;
    create_topic(&b, "word-counts", partitions, &[]).await;
    (broker, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_end_to_end_survives_kill_and_restart() {
    let (_broker, b) = broker_with_topics(4).await;
    let state = tempfile::tempdir().unwrap();
    let (first, mut expected) = lines(0, 400);
    produce_lines(&b, &first).await;
    let mut app = App::start(&b, "wc", state.path(), 1);
    wait_for_counts(&b, &expected).await;
    // Let the last commit land, then crash: no checkpoint is written, so the
    // restart must rebuild the counts from the changelog topic.
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.kill();
    let (second, more) = lines(400, 1000);
    merge(&mut expected, more);
    produce_lines(&b, &second).await;
    let mut app = App::start(&b, "wc", state.path(), 1);
    wait_for_counts(&b, &expected).await;
    // The changelog is compacted (key-value store) and keyed by word.
    let cfg = blocking({
        let b = b.clone();
        move || partition_count(&b, "wc-counts-changelog")
    })
    .await
    .unwrap();
    assert_eq!(cfg, Some(4));
    app.stop();
    // A clean stop writes checkpoints: the next start replays nothing.
    let ckpt = state.path().join("wc").join("0_0").join(".checkpoint");
    let ckpt1 = state.path().join("wc").join("1_0").join(".checkpoint");
    assert!(
        ckpt.exists() || ckpt1.exists(),
        "no checkpoint after a clean stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_threads_and_two_instances_match_one() {
    let (_broker, b) = broker_with_topics(4).await;
    let (all, expected) = lines(0, 600);
    produce_lines(&b, &all).await;
    let state = tempfile::tempdir().unwrap();
    // Two instances of one application split the partitions between them.
    let mut a = App::start(&b, "wc2", &state.path().join("a"), 1);
    let mut c = App::start(&b, "wc2", &state.path().join("c"), 2);
    wait_for_counts(&b, &expected).await;
    a.stop();
    c.stop();
}

/// Produces word-count lines at a steady rate on a thread of its own until
/// stopped; returns the counts of what the broker acknowledged.
struct Feeder {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<BTreeMap<String, i64>>,
}

impl Feeder {
    fn start(bootstrap: &str, lines_per_sec: usize, from: usize) -> Feeder {
        use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let p: BaseProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("linger.ms", "5")
            .create()
            .expect("producer");
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut counts = BTreeMap::new();
            let mut i = from;
            let tick = Duration::from_millis(50);
            let per_tick = (lines_per_sec / 20).max(1);
            while !flag.load(Ordering::Relaxed) {
                let (batch, c) = lines(i, i + per_tick);
                for (j, l) in batch.iter().enumerate() {
                    let key = format!("line-{}", i + j);
                    loop {
                        match p.send(
                            BaseRecord::<str, str>::to("text-lines")
                                .key(&key)
                                .payload(l),
                        ) {
                            Ok(()) => break,
                            Err(_) => {
                                p.poll(Duration::from_millis(10));
                            }
                        }
                    }
                }
                merge(&mut counts, c);
                i += per_tick;
                p.poll(Duration::ZERO);
                std::thread::sleep(tick);
            }
            p.flush(Duration::from_secs(30)).expect("flush the feeder");
            counts
        });
        Feeder { stop, handle }
    }

    fn finish(self) -> BTreeMap<String, i64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.handle.join().expect("feeder thread")
    }
}

/// The longest time the summed counts did not grow while lines were flowing.
struct Progress {
    total: i64,
    since: Instant,
    longest: Duration,
}

impl Progress {
    fn new() -> Self {
        Progress {
            total: 0,
            since: Instant::now(),
            longest: Duration::ZERO,
        }
    }

    /// Samples the counts for `d`.
    async fn watch(&mut self, bootstrap: &str, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            let b = bootstrap.to_string();
            let total: i64 = blocking(move || current_counts(&b)).await.values().sum();
            if total > self.total {
                self.total = total;
                self.since = Instant::now();
            }
            self.longest = self.longest.max(self.since.elapsed());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_join_and_leave_while_lines_flow() {
    let (_broker, b) = broker_with_topics(6).await;
    let state = tempfile::tempdir().unwrap();
    let mut a = App::start(&b, "wcj", &state.path().join("a"), 1);
    // Fast enough that revocations arrive while the thread drains fetched records.
    let feeder = Feeder::start(&b, 10_000, 0);
    let mut progress = Progress::new();
    progress.watch(&b, Duration::from_secs(4)).await;
    for round in 0..3 {
        // A second instance joins (tasks move to it) and later leaves cleanly.
        let mut second = App::start(&b, "wcj", &state.path().join("b"), 1);
        progress.watch(&b, Duration::from_secs(5)).await;
        second.stop();
        progress.watch(&b, Duration::from_secs(3)).await;
        eprintln!("round {round}: longest pause so far {:?}", progress.longest);
    }
    let expected = feeder.finish();
    wait_at_least(&b, &expected).await;
    a.stop();
    eprintln!(
        "join/leave: longest time without progress {:?}",
        progress.longest
    );
    // 12 tasks (2 sub-topologies × 6 partitions) opened at start; each round
    // gives back half and takes it again later: only those 6 are opened again,
    // the 6 the first instance keeps are resumed (an eager close/reopen of
    // every task at every rebalance would open 66).
    let out = a.stdout();
    let line = out
        .lines()
        .find_map(|l| l.strip_prefix("tasks opened "))
        .expect("task counts at exit");
    let (opened, resumed) = line.split_once(", resumed ").expect("counts");
    let (opened, resumed): (u64, u64) = (opened.parse().unwrap(), resumed.parse().unwrap());
    eprintln!("first instance: tasks opened {opened}, resumed {resumed}");
    assert!(opened <= 12 + 3 * 6, "tasks reopened: {opened}");
    assert!(resumed >= 3 * 6, "tasks resumed: {resumed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_while_lines_flow_loses_nothing() {
    let (_broker, b) = broker_with_topics(6).await;
    let state = tempfile::tempdir().unwrap();
    let mut a = App::start(&b, "wck", &state.path().join("a"), 1);
    let feeder = Feeder::start(&b, 10_000, 0);
    let mut progress = Progress::new();
    progress.watch(&b, Duration::from_secs(3)).await;
    let mut second = App::start(&b, "wck", &state.path().join("b"), 1);
    progress.watch(&b, Duration::from_secs(5)).await;
    // kill -9: its tasks come back to the first instance when its session (6 s) expires.
    second.kill();
    progress.watch(&b, Duration::from_secs(9)).await;
    let mut second = App::start(&b, "wck", &state.path().join("b"), 1);
    progress.watch(&b, Duration::from_secs(4)).await;
    let expected = feeder.finish();
    wait_at_least(&b, &expected).await;
    a.stop();
    second.stop();
    eprintln!(
        "kill -9: longest time without progress {:?}",
        progress.longest
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_after_kill_replays_only_the_tail() {
    let (_broker, b) = broker_with_topics(1).await;
    let state = tempfile::tempdir().unwrap();
    // No record cache: every word is a changelog record.
    let cfg = ["statestore.cache.max.bytes=0"];
    let mut app = App::start_with(&b, "wct", state.path(), 1, &cfg);
    let (first, mut expected) = lines(0, 8000);
    produce_lines(&b, &first).await;
    wait_for_counts(&b, &expected).await;
    // Commits write checkpoints once enough records were processed.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (second, more) = lines(8000, 8100);
    merge(&mut expected, more);
    produce_lines(&b, &second).await;
    wait_for_counts(&b, &expected).await;
    app.kill();
    let changelog_records = blocking({
        let b = b.clone();
        move || {
            query_consumer(&b)
                .fetch_watermarks("wct-counts-changelog", 0, TIMEOUT)
                .unwrap()
                .1
        }
    })
    .await;
    let app = App::start_with(&b, "wct", state.path(), 1, &cfg);
    wait_at_least(&b, &expected).await;
    let deadline = Instant::now() + TIMEOUT;
    while !app.stdout().contains("state Rebalancing -> Running") {
        assert!(
            Instant::now() < deadline,
            "never running:\n{}",
            app.stdout()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let restored = app.restored();
    eprintln!("changelog: {changelog_records} records, restored after kill -9: {restored}");
    assert!(changelog_records > 20_000, "{changelog_records}");
    assert!(
        (restored as i64) < changelog_records / 2,
        "restored {restored} of {changelog_records}: the checkpoint was not used\n{}",
        app.stdout()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_topic_that_cannot_be_written_commits_nothing_it_feeds() {
    init_tracing();
    let broker = TestBroker::start_with(&[("auto.create.topics.enable", "false")]).await;
    let b = broker.bootstrap();
    create_topic(&b, "text-lines", 2, &[]).await;
    // word-counts does not exist and cannot be created by producing to it.
    let state = tempfile::tempdir().unwrap();
    let cfg = [
        "producer.topic.metadata.propagation.max.ms=1000",
        "producer.message.timeout.ms=5000",
    ];
    let mut app = App::start_with(&b, "wcm", state.path(), 1, &cfg);
    let (first, _) = lines(0, 300);
    produce_lines(&b, &first).await;
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(s) = app.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the app kept running:\n{}",
            app.stdout()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success(), "a lost output must fail the app");
    // The counting sub-topology reads the repartition topic and writes
    // word-counts: none of its input offsets may be committed.
    let committed = blocking({
        let b = b.clone();
        move || {
            let topics = list_topics(&b).unwrap();
            let rep = topics
                .iter()
                .find(|t| t.starts_with("wcm-") && t.ends_with("-repartition"))
                .expect("a repartition topic")
                .clone();
            let c: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", &b)
                .set("group.id", "wcm")
                .create()
                .unwrap();
            let mut tpl = rdkafka::TopicPartitionList::new();
            tpl.add_partition(&rep, 0);
            tpl.add_partition(&rep, 1);
            let got = rdkafka::consumer::Consumer::committed_offsets(&c, tpl, TIMEOUT).unwrap();
            let high: i64 = (0..2)
                .map(|p| c.fetch_watermarks(&rep, p, TIMEOUT).unwrap().1)
                .sum();
            (
                got.elements()
                    .iter()
                    .map(|e| e.offset())
                    .collect::<Vec<_>>(),
                high,
            )
        }
    })
    .await;
    assert!(committed.1 > 0, "words reached the repartition topic");
    for o in committed.0.iter().copied() {
        assert!(
            !matches!(o, rdkafka::Offset::Offset(n) if n > 0),
            "input offsets committed although their outputs were lost: {committed:?}"
        );
    }
    drop(app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_repartition_records_are_purged() {
    let (_broker, b) = broker_with_topics(2).await;
    let state = tempfile::tempdir().unwrap();
    let cfg = ["repartition.purge.interval.ms=200"];
    let mut app = App::start_with(&b, "wcp", state.path(), 1, &cfg);
    let (first, expected) = lines(0, 500);
    produce_lines(&b, &first).await;
    wait_for_counts(&b, &expected).await;
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let bb = b.clone();
        let (low, high) = blocking(move || {
            let rep = list_topics(&bb)
                .unwrap()
                .into_iter()
                .find(|t| t.starts_with("wcp-") && t.ends_with("-repartition"))
                .expect("a repartition topic");
            let c = query_consumer(&bb);
            (0..2).fold((0, 0), |(l, h), p| {
                let (lo, hi) = c.fetch_watermarks(&rep, p, TIMEOUT).unwrap();
                (l + lo, h + hi)
            })
        })
        .await;
        // Everything was processed and committed: the topic is purged to its end.
        if low == high && high > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "repartition topic not purged: low {low}, high {high}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_replica_takes_over_without_a_full_restore() {
    let (_broker, b) = broker_with_topics(2).await;
    let state = tempfile::tempdir().unwrap();
    let cfg = ["statestore.cache.max.bytes=0", "num.standby.replicas=1"];
    let mut a = App::start_with(&b, "wcs", &state.path().join("a"), 1, &cfg);
    let mut second = App::start_with(&b, "wcs", &state.path().join("b"), 1, &cfg);
    let (first, mut expected) = lines(0, 6000);
    produce_lines(&b, &first).await;
    wait_for_counts(&b, &expected).await;
    // The standby on the other instance follows the changelog.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before_kill = second.restored();
    a.kill();
    let (more_lines, more) = lines(6000, 6100);
    merge(&mut expected, more);
    produce_lines(&b, &more_lines).await;
    // The survivor takes the killed instance's tasks once its session (6 s) expires.
    wait_at_least(&b, &expected).await;
    let changelog: i64 = blocking({
        let b = b.clone();
        move || {
            let c = query_consumer(&b);
            (0..2)
                .map(|p| {
                    c.fetch_watermarks("wcs-counts-changelog", p, TIMEOUT)
                        .unwrap()
                        .1
                })
                .sum()
        }
    })
    .await;
    let restored = second.restored() - before_kill;
    eprintln!("changelog {changelog} records; the survivor restored {restored} at the takeover");
    assert!(changelog > 15_000, "{changelog}");
    assert!(
        (restored as i64) < changelog / 10,
        "restored {restored} of {changelog}: no warm standby\n{}",
        second.stdout()
    );
    second.stop();
}

/// Failover on a Kafka cluster (RF 3, min.insync.replicas=2): one of three nodes is killed
/// with -9 while the word count and the quick-start pipeline run with data flowing, then
/// started again. Nothing is lost (at-least-once: counts may only exceed the truth), the
/// pipeline's own totals check passes, and both report their longest pause without progress.
/// Needs the cluster of `scripts/test-on-kafka.sh`, which sets BROOK_TEST_KAFKA_DIR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_node_killed_while_lines_flow_loses_nothing() {
    let Some(cluster) = cluster::kafka_dir() else {
        eprintln!(
            "needs a Kafka cluster of scripts/kafka-cluster.sh (BROOK_TEST_KAFKA_DIR): skipped"
        );
        return;
    };
    let (_broker, b) = broker_with_topics(6).await;
    let pipeline_dir = tempfile::tempdir().unwrap();
    let pipeline = Command::new(example_bin("log_pipeline"))
        .args(["--duration", "25", "--rate", "1000", "--quiet"])
        .arg("--data-dir")
        .arg(pipeline_dir.path())
        .args(["--bootstrap-server", &b])
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn log_pipeline");
    let state = tempfile::tempdir().unwrap();
    let mut app = App::start(&b, "wcf", state.path(), 2);
    let feeder = Feeder::start(&b, 2_000, 0);
    let mut progress = Progress::new();
    progress.watch(&b, Duration::from_secs(6)).await;
    // The pause that counts is the failover's, not the start-up's.
    progress.longest = Duration::ZERO;
    let c = cluster.clone();
    blocking(move || cluster::script(&c, &["kill-node", "2"])).await;
    progress.watch(&b, Duration::from_secs(10)).await;
    let c = cluster.clone();
    blocking(move || cluster::script(&c, &["start-node", "2"])).await;
    progress.watch(&b, Duration::from_secs(3)).await;
    let expected = blocking(move || feeder.finish()).await;
    wait_at_least(&b, &expected).await;
    app.stop();
    let out = blocking(move || pipeline.wait_with_output())
        .await
        .expect("log_pipeline");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("OK: "),
        "the pipeline's totals check failed across the node failure\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!(
        "node killed: word count's longest time without progress {:.1} s; pipeline: {}",
        progress.longest.as_secs_f64(),
        stdout
            .lines()
            .find(|l| l.starts_with("longest pause"))
            .unwrap_or("no pause line")
    );
}
