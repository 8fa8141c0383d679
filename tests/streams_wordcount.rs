//! The word-count example against a real broker: end-to-end counts, a
//! `kill -9` and restart restored from the changelog, and two threads or two
//! instances sharing the partitions giving the same counts as one.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn example_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("examples").join("wordcount");
    assert!(
        bin.exists(),
        "build the example first: cargo build --example wordcount ({})",
        bin.display()
    );
    bin
}

struct App(Child);

impl App {
    fn start(bootstrap: &str, app_id: &str, state: &std::path::Path, threads: usize) -> App {
        let child = Command::new(example_bin())
            .args([
                "--bootstrap-server",
                bootstrap,
                "--application-id",
                app_id,
                "--commit-interval-ms",
                "100",
            ])
            .args(["--threads", &threads.to_string()])
            // A killed member leaves the group only when its session expires.
            .args(["--config", "consumer.session.timeout.ms=6000"])
            .arg("--state-dir")
            .arg(state)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn wordcount");
        App(child)
    }
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let status = self.0.wait().expect("wait");
        assert!(status.success(), "wordcount exited with {status}");
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

async fn wait_for_counts(bootstrap: &str, expected: &BTreeMap<String, i64>) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let b = bootstrap.to_string();
        let got = blocking(move || current_counts(&b)).await;
        if &got == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "counts never matched:\n got {got:?}\nwant {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_end_to_end_survives_kill_and_restart() {
    init_tracing();
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "text-lines", 4, &[]).await;
    create_topic(&b, "word-counts", 4, &[]).await;
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
    init_tracing();
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "text-lines", 4, &[]).await;
    create_topic(&b, "word-counts", 4, &[]).await;
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
