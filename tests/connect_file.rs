//! brook-connect end to end: FileTailSource → topic → FileSink through an
//! embedded broker, across a worker restart (no line lost, none duplicated),
//! and a failing task that does not take the worker down.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use brook_connect::serde_json::json;
use brook_connect::{State, Worker, WorkerConfig};
use common::*;

fn append_lines(path: &Path, range: std::ops::Range<usize>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in range {
        writeln!(f, "line {i}").unwrap();
    }
}

async fn wait_for_lines(path: &Path, n: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let lines: Vec<String> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect();
        if lines.len() >= n || start.elapsed() > TIMEOUT {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn worker_config(bootstrap: &str) -> WorkerConfig {
    WorkerConfig::from_json(&json!({
        "bootstrap.servers": bootstrap,
        "offset.flush.interval.ms": "200",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
    }))
    .unwrap()
}

async fn start_pipeline(bootstrap: &str, input: &Path, output: &Path, topic: &str) -> Worker {
    // Linking brook-connectors registers its connector classes.
    assert!(brook_connectors::PLUGINS
        .iter()
        .any(|p| p.class == "FileTailSource"));
    let worker = Worker::start(worker_config(bootstrap)).await.unwrap();
    // After a restart both are restored from the config topic; put_config
    // with the same config leaves them running.
    worker
        .put_config(
            "tail",
            &json!({"connector.class": "FileTailSource",
            "file": input.to_str().unwrap(), "topic": topic, "poll.interval.ms": "100"}),
        )
        .await
        .unwrap();
    worker
        .put_config(
            "sink",
            &json!({"connector.class": "FileSink",
            "file": output.to_str().unwrap(), "topics": topic}),
        )
        .await
        .unwrap();
    worker
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_to_topic_to_file_survives_restart() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let topic = unique("lines");
    create_topic(&bs, &topic, 1, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.log"), dir.path().join("out.txt"));
    append_lines(&input, 0..100);

    let worker = start_pipeline(&bs, &input, &output, &topic).await;
    assert_eq!(wait_for_lines(&output, 100).await.len(), 100);
    let status = worker.status("tail").unwrap();
    assert_eq!(status.kind, "source");
    assert_eq!(status.tasks[0].state, State::Running);
    // The sink can write the lines before the source's next offset flush (200 ms) lands.
    let want = 100 * "line 00\n".len() - 10;
    wait_until("the source offset of the 100 lines", TIMEOUT, || {
        let w = &worker;
        async move {
            let offsets = w.offsets("tail").await?;
            Ok(offsets["offsets"][0]["offset"]["position"] == want)
        }
    })
    .await
    .unwrap();
    worker.shutdown().await;

    // Lines written while the worker is down, then more after it is back.
    append_lines(&input, 100..150);
    let worker = start_pipeline(&bs, &input, &output, &topic).await;
    append_lines(&input, 150..200);
    let lines = wait_for_lines(&output, 200).await;
    // Give a duplicate (if any) time to show up.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let lines_after = wait_for_lines(&output, 200).await;
    assert_eq!(lines, lines_after, "extra lines appeared");
    let expected: Vec<String> = (0..200).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, expected);
    let start = Instant::now();
    let sink_offsets = loop {
        let o = worker.offsets("sink").await.unwrap();
        if o["offsets"][0]["offset"]["kafka_offset"] == 200 || start.elapsed() > TIMEOUT {
            break o;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        sink_offsets["offsets"][0]["partition"]["kafka_topic"],
        topic.as_str()
    );
    assert_eq!(sink_offsets["offsets"][0]["offset"]["kafka_offset"], 200);
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_task_is_reported_and_worker_survives() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let worker = Worker::start(worker_config(&bs)).await.unwrap();
    worker
        .add_connector(&json!({"name": "bad", "connector.class": "FileSink",
            "file": "/nonexistent-dir/out.txt", "topics": "t"}))
        .await
        .unwrap();
    let start = Instant::now();
    let status = loop {
        let s = worker.status("bad").unwrap();
        if s.tasks[0].state == State::Failed || start.elapsed() > TIMEOUT {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.tasks[0].state, State::Failed);
    assert!(
        status.tasks[0]
            .trace
            .as_deref()
            .unwrap_or("")
            .contains("nonexistent-dir"),
        "{status:?}"
    );
    // Bad configs are rejected by name before anything starts.
    let err = worker
        .add_connector(
            &json!({"name": "typo", "connector.class": "FileSink", "file": "/tmp/x", "topic": "t"}),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("topic"), "{err}");
    assert_eq!(worker.connectors(), ["bad"]);
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_go_to_the_dead_letter_queue() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let (topic, dlq) = (unique("json-in"), unique("dlq"));
    create_topic(&bs, &topic, 1, &[]).await;
    create_topic(&bs, &dlq, 1, &[]).await;
    let producer = producer(&bs, false);
    produce_ok(
        &producer,
        &topic,
        &[
            Out::kv("k1", "\"good 1\""),
            Out::kv("k2", "not json"),
            Out::kv("k3", "\"good 2\""),
        ],
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("out.txt");
    let worker = Worker::start(worker_config(&bs)).await.unwrap();
    worker
        .add_connector(&json!({"name": "tolerant", "connector.class": "FileSink",
            "file": output.to_str().unwrap(), "topics": topic,
            "value.converter": "org.apache.kafka.connect.json.JsonConverter",
            "value.converter.schemas.enable": "false",
            "errors.tolerance": "all",
            "errors.deadletterqueue.topic.name": dlq,
            "errors.deadletterqueue.context.headers.enable": "true"}))
        .await
        .unwrap();
    assert_eq!(wait_for_lines(&output, 2).await, ["good 1", "good 2"]);
    let start = Instant::now();
    let dead = loop {
        let recs = read_all_async(&bs, &dlq).await.unwrap();
        if !recs.is_empty() || start.elapsed() > TIMEOUT {
            break recs;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].value_str(), "not json");
    assert_eq!(dead[0].key_str(), "k2");
    let header = |name: &str| {
        dead[0]
            .headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.clone())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    };
    assert_eq!(header("__connect.errors.topic"), Some(topic.clone()));
    assert_eq!(header("__connect.errors.offset"), Some("1".into()));
    assert!(header("__connect.errors.exception.message").is_some());
    assert_eq!(
        worker.status("tolerant").unwrap().tasks[0].state,
        State::Running
    );
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_lines_spread_over_partitions_in_order() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let topic = unique("spread");
    create_topic(&bs, &topic, 3, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.log");
    append_lines(&input, 0..500);
    let worker = Worker::start(worker_config(&bs)).await.unwrap();
    // Small polls: each batch of keyless lines goes to one partition, the
    // next batch to the next partition.
    worker
        .add_connector(
            &json!({"name": "spread", "connector.class": "FileTailSource",
            "file": input.to_str().unwrap(), "topic": topic, "batch.size": "20"}),
        )
        .await
        .unwrap();
    let start = Instant::now();
    let recs = loop {
        let recs = read_all_async(&bs, &topic).await.unwrap();
        if recs.len() >= 500 {
            break recs;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "only {} lines arrived",
            recs.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let number = |r: &Rec| -> usize { r.value_str().trim_start_matches("line ").parse().unwrap() };
    let mut all: Vec<usize> = recs.iter().map(number).collect();
    all.sort_unstable();
    assert_eq!(all, (0..500).collect::<Vec<_>>(), "each line exactly once");
    let parts = by_partition(&recs);
    assert!(parts.len() > 1, "all lines went to one partition");
    for (p, recs) in parts {
        let numbers: Vec<usize> = recs.iter().map(number).collect();
        assert!(
            numbers.windows(2).all(|w| w[0] < w[1]),
            "partition {p} out of file order"
        );
    }
    worker.shutdown().await;
}

/// Writes `line {n:05}` lines to `file`, `pause` after each.
fn write_numbered(file: &mut std::fs::File, range: std::ops::Range<usize>, pause: Duration) {
    for n in range {
        writeln!(file, "line {n:05}").unwrap();
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
}

fn open_append(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap()
}

/// Waits until `topic` holds at least `n` records; their values.
async fn topic_values(bs: &str, topic: &str, n: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let recs = read_all_async(bs, topic).await.unwrap();
        if recs.len() >= n {
            return recs.iter().map(Rec::value_str).collect();
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "only {} of {n} lines arrived",
            recs.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_survives_rename_rotation_copytruncate_and_a_late_newline() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let topic = unique("rotated");
    create_topic(&bs, &topic, 1, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    let worker = Worker::start(worker_config(&bs)).await.unwrap();
    worker
        .add_connector(
            &json!({"name": "rotated", "connector.class": "FileTailSource",
            "file": log.to_str().unwrap(), "topic": topic, "poll.interval.ms": "100",
            "rotate.wait.ms": "2000"}),
        )
        .await
        .unwrap();

    let mut app = open_append(&log);
    write_numbered(&mut app, 0..300, Duration::ZERO);
    // The tail has the file open (a file renamed before it was ever opened
    // is not this test's subject).
    topic_values(&bs, &topic, 1).await;
    // The application, on a thread of its own (it writes while the tail reads).
    let (dir_path, log_path) = (dir.path().to_path_buf(), log.clone());
    let written = tokio::task::spawn_blocking(move || {
        // logrotate `create`: rename, create the new file at once...
        std::fs::rename(&log_path, dir_path.join("app.log.1")).unwrap();
        drop(open_append(&log_path));
        // ...while the application keeps writing to the renamed file for
        // a second, until it reopens the path.
        let start = Instant::now();
        let mut n = 300;
        while start.elapsed() < Duration::from_secs(1) {
            write_numbered(&mut app, n..n + 5, Duration::from_millis(1));
            n += 5;
        }
        let mut app = open_append(&log_path);
        write_numbered(&mut app, n..n + 300, Duration::ZERO);
        n + 300
    })
    .await
    .unwrap();
    let seen = topic_values(&bs, &topic, written).await;
    assert_eq!(seen.len(), written, "duplicates after the rename rotation");

    // logrotate `copytruncate` (nothing written between copy and truncate,
    // where it loses lines by design); the application keeps appending.
    let (dir_path, log_path) = (dir.path().to_path_buf(), log.clone());
    let total = tokio::task::spawn_blocking(move || {
        std::fs::copy(&log_path, dir_path.join("app.log.2")).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&log_path)
            .unwrap()
            .set_len(0)
            .unwrap();
        let mut app = open_append(&log_path);
        write_numbered(&mut app, written..written + 200, Duration::from_micros(200));
        // A last line whose newline comes well after a poll interval.
        write!(app, "line {:05}", written + 200).unwrap();
        app.flush().unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        writeln!(app).unwrap();
        written + 201
    })
    .await
    .unwrap();
    let seen = topic_values(&bs, &topic, total).await;
    // Give duplicates (or a cut-off copy of the last line) time to show up.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let seen_after = topic_values(&bs, &topic, total).await;
    assert_eq!(seen, seen_after, "extra lines appeared");
    let mut sorted = seen;
    sorted.sort();
    let expected: Vec<String> = (0..total).map(|n| format!("line {n:05}")).collect();
    assert_eq!(sorted.len(), expected.len());
    for (got, want) in sorted.iter().zip(&expected) {
        assert_eq!(got, want);
    }
    worker.shutdown().await;
}
