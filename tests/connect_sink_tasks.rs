//! A third-party sink connector, defined here and linked like any other,
//! with two tasks sharing a topic's partitions: partitions are opened and
//! closed as the group rebalances (another member joining and leaving),
//! every record is put by a task that has its partition open, and a pause
//! keeps the tasks in the group without delivering records.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use brook_connect::serde_json::{json, Value};
use brook_connect::{
    ConnectError, Connector, ConnectorConfig, SinkConnector, SinkRecord, SinkTask, State,
    TaskConfig, TopicPartition, Worker, WorkerConfig,
};
use common::*;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::Message;
use serde::{Deserialize, Serialize};

/// What every task did, by test run (the `run` config key) and task.
#[derive(Default)]
struct Journal {
    /// Partitions currently open, per (run, task).
    open: BTreeMap<(String, String), BTreeSet<(String, i32)>>,
    /// Values put, per run.
    put: BTreeMap<String, Vec<String>>,
    /// Puts of a record whose partition the task did not have open.
    violations: Vec<String>,
    /// Close calls, per run.
    closes: BTreeMap<String, usize>,
    /// What happened, in order (shown when a wait times out).
    log: Vec<String>,
}

static JOURNAL: Mutex<Option<Journal>> = Mutex::new(None);

fn journal<T>(f: impl FnOnce(&mut Journal) -> T) -> T {
    let mut guard = JOURNAL.lock().unwrap();
    f(guard.get_or_insert_with(Journal::default))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingSinkConfig {
    topics: String,
    run: String,
}

#[typetag::serde(name = "RecordingSink")]
impl ConnectorConfig for RecordingSinkConfig {
    fn build(&self) -> Result<Connector, ConnectError> {
        Ok(Connector::Sink(Box::new(RecordingSink(self.clone()))))
    }
}

struct RecordingSink(RecordingSinkConfig);

impl SinkConnector for RecordingSink {
    fn topics(&self) -> Vec<String> {
        vec![self.0.topics.clone()]
    }

    fn task_configs(&self, max_tasks: usize) -> Result<Vec<TaskConfig>, ConnectError> {
        Ok((0..max_tasks)
            .map(|i| {
                json!({"run": self.0.run, "task": i.to_string()})
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect())
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(RecordingTask::default())
    }
}

#[derive(Default)]
struct RecordingTask {
    id: (String, String),
}

#[async_trait]
impl SinkTask for RecordingTask {
    async fn start(&mut self, config: TaskConfig) -> Result<(), ConnectError> {
        let get = |k: &str| {
            config
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        self.id = (get("run"), get("task"));
        Ok(())
    }

    async fn open(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        journal(|j| {
            j.log.push(format!(
                "task {} open {:?}",
                self.id.1,
                partitions.iter().map(|tp| tp.partition).collect::<Vec<_>>()
            ));
            let open = j.open.entry(self.id.clone()).or_default();
            open.extend(partitions.iter().map(|tp| (tp.topic.clone(), tp.partition)));
        });
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError> {
        journal(|j| {
            let open = j.open.get(&self.id).cloned().unwrap_or_default();
            j.log.push(format!(
                "task {} put {:?}",
                self.id.1,
                records
                    .iter()
                    .map(|r| (r.partition, r.offset))
                    .collect::<Vec<_>>()
            ));
            for r in &records {
                if !open.contains(&(r.topic.clone(), r.partition)) {
                    j.violations.push(format!(
                        "task {:?} put {}-{} unopened",
                        self.id, r.topic, r.partition
                    ));
                }
                let value = r.value.as_str().unwrap_or_default().to_string();
                j.put.entry(self.id.0.clone()).or_default().push(value);
            }
        });
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ConnectError> {
        Ok(())
    }

    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        journal(|j| {
            *j.closes.entry(self.id.0.clone()).or_default() += 1;
            j.log.push(format!(
                "task {} close {:?}",
                self.id.1,
                partitions.iter().map(|tp| tp.partition).collect::<Vec<_>>()
            ));
            if let Some(open) = j.open.get_mut(&self.id) {
                for tp in partitions {
                    open.remove(&(tp.topic.clone(), tp.partition));
                }
            }
        });
        Ok(())
    }

    async fn stop(&mut self) {}
}

/// Partitions open per task of `run`.
fn open_by_task(run: &str) -> Vec<BTreeSet<(String, i32)>> {
    journal(|j| {
        j.open
            .iter()
            .filter(|((r, _), _)| r == run)
            .map(|(_, open)| open.clone())
            .collect()
    })
}

/// Distinct values put for `run`.
fn values_put(run: &str) -> BTreeSet<String> {
    journal(|j| {
        j.put
            .get(run)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect()
    })
}

async fn produce_values(bs: &str, topic: &str, range: std::ops::Range<usize>) {
    let records: Vec<Out> = range
        .map(|i| Out::kv(format!("k{i}"), format!("\"v{i}\"")).to(i as i32 % 4))
        .collect();
    produce_ok(&producer(bs, false), topic, &records).await;
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        if start.elapsed() > TIMEOUT {
            let state = journal(|j| {
                format!(
                    "open {:?}, puts {:?}, closes {:?}, violations {:?}, log {:#?}",
                    j.open,
                    j.put
                        .iter()
                        .map(|(r, v)| (r.clone(), v.len()))
                        .collect::<Vec<_>>(),
                    j.closes,
                    j.violations,
                    j.log
                )
            });
            panic!("timed out waiting for {what}: {state}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A worker running a RecordingSink with `tasks` tasks on a new 4-partition
/// topic; returns the topic, the run name (= connector name) and the worker.
async fn start_recording(bs: &str, prefix: &str, tasks: usize) -> (String, String, Worker) {
    start_recording_with(bs, prefix, tasks, 200).await
}

/// As [`start_recording`], committing every `flush_ms`.
async fn start_recording_with(
    bs: &str,
    prefix: &str,
    tasks: usize,
    flush_ms: u64,
) -> (String, String, Worker) {
    let topic = unique(prefix);
    create_topic(bs, &topic, 4, &[]).await;
    let run = unique(prefix);
    let worker = Worker::start(
        WorkerConfig::from_json(&json!({"bootstrap.servers": bs,
            "offset.flush.interval.ms": flush_ms.to_string(),
            "value.converter.schemas.enable": "false"}))
        .unwrap(),
    )
    .await
    .unwrap();
    worker
        .add_connector(&json!({"name": run, "connector.class": "RecordingSink",
            "tasks.max": tasks.to_string(), "topics": topic, "run": run,
            "key.converter": "org.apache.kafka.connect.storage.StringConverter"}))
        .await
        .unwrap();
    (topic, run, worker)
}

fn expected(range: std::ops::Range<usize>) -> BTreeSet<String> {
    range.map(|i| format!("v{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_tasks_open_and_close_partitions_on_rebalance() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let (topic, run, worker) = start_recording(&bs, "rebalance", 2).await;
    produce_values(&bs, &topic, 0..40).await;
    wait_for("the first records", || values_put(&run) == expected(0..40)).await;
    let all: BTreeSet<(String, i32)> = (0..4).map(|p| (topic.clone(), p)).collect();
    let covered = || {
        let open = open_by_task(&run);
        let union: BTreeSet<_> = open.iter().flatten().cloned().collect();
        let total: usize = open.iter().map(BTreeSet::len).sum();
        (union, total)
    };
    wait_for("both tasks to hold partitions", || {
        let (union, total) = covered();
        union == all && total == 4 && open_by_task(&run).iter().all(|o| !o.is_empty())
    })
    .await;

    // Another member joins the group: the tasks close what it takes.
    let outsider: BaseConsumer = consumer_config(&bs, &format!("connect-{run}"))
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    outsider.subscribe(&[topic.as_str()]).unwrap();
    let start = Instant::now();
    let taken: BTreeSet<(String, i32)> = loop {
        let _ = outsider.poll(Duration::from_millis(100));
        let assigned = outsider.assignment().unwrap();
        if assigned.count() > 0 {
            break assigned
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
        }
        assert!(start.elapsed() < TIMEOUT, "the outsider got no partitions");
    };
    wait_for("the tasks to close the outsider's partitions", || {
        let (union, total) = covered();
        union.is_disjoint(&taken) && union.len() + taken.len() == 4 && total == union.len()
    })
    .await;
    assert!(journal(|j| j.closes.get(&run).copied().unwrap_or(0)) > 0);

    // It leaves: the tasks take every partition back and keep delivering.
    blocking(move || drop(outsider)).await;
    wait_for("the tasks to reopen every partition", || {
        let (union, total) = covered();
        union == all && total == 4
    })
    .await;
    produce_values(&bs, &topic, 40..80).await;
    wait_for("records after the rebalances", || {
        values_put(&run).is_superset(&expected(0..80))
    })
    .await;
    let violations = journal(|j| j.violations.clone());
    assert!(violations.is_empty(), "{violations:?}");
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_sink_delivers_nothing_until_resumed() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let (topic, run, worker) = start_recording(&bs, "pause", 1).await;
    produce_values(&bs, &topic, 0..20).await;
    wait_for("the first records", || values_put(&run) == expected(0..20)).await;

    worker.pause(&run).await.unwrap();
    wait_for("PAUSED", || {
        worker.status(&run).map(|s| s.tasks[0].state) == Some(State::Paused)
    })
    .await;
    produce_values(&bs, &topic, 20..40).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(values_put(&run), expected(0..20), "delivered while paused");
    // Still a member with its partitions (paused, not evicted).
    assert_eq!(
        open_by_task(&run).iter().map(BTreeSet::len).sum::<usize>(),
        4
    );

    worker.resume(&run).await.unwrap();
    wait_for("records after resume", || {
        values_put(&run) == expected(0..40)
    })
    .await;
    assert_eq!(worker.status(&run).unwrap().tasks[0].state, State::Running);
    let violations = journal(|j| j.violations.clone());
    assert!(violations.is_empty(), "{violations:?}");
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_partitions_are_committed_before_they_are_given_away() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    // No periodic commit within the test: only the revocation commits.
    let (topic, run, worker) = start_recording_with(&bs, "revoke", 1, 600_000).await;
    produce_values(&bs, &topic, 0..40).await;
    wait_for("the first records", || values_put(&run) == expected(0..40)).await;

    // Another member joins: by the time it owns partitions, what the task
    // put there is committed, so it starts after those records.
    let outsider: BaseConsumer = consumer_config(&bs, &format!("connect-{run}"))
        .set("session.timeout.ms", "6000")
        .create()
        .unwrap();
    outsider.subscribe(&[topic.as_str()]).unwrap();
    let outsider = blocking(move || {
        let start = Instant::now();
        while outsider.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
            let _ = outsider.poll(Duration::from_millis(100));
            assert!(start.elapsed() < TIMEOUT, "the outsider got no partitions");
        }
        outsider
    })
    .await;
    let (outsider, committed) = blocking(move || {
        let assigned = outsider.assignment().unwrap();
        let committed = outsider
            .committed_offsets(assigned, Duration::from_secs(10))
            .unwrap();
        let offsets: Vec<(i32, rdkafka::Offset)> = committed
            .elements()
            .iter()
            .map(|e| (e.partition(), e.offset()))
            .collect();
        (outsider, offsets)
    })
    .await;
    assert!(!committed.is_empty());
    for (partition, offset) in &committed {
        // produce_values puts 10 records in each of the 4 partitions.
        assert_eq!(
            *offset,
            rdkafka::Offset::Offset(10),
            "partition {partition}: {committed:?}"
        );
    }
    // And it reads none of them again.
    let again = blocking(move || {
        let mut got = Vec::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(2) {
            if let Some(Ok(m)) = outsider.poll(Duration::from_millis(100)) {
                got.push((m.partition(), m.offset()));
            }
        }
        drop(outsider);
        got
    })
    .await;
    assert!(again.is_empty(), "re-read after the revocation: {again:?}");
    let violations = journal(|j| j.violations.clone());
    assert!(violations.is_empty(), "{violations:?}");
    worker.shutdown().await;
}
