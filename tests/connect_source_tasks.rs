//! A third-party source connector defined here (`ScriptedSource`: one
//! numbered record per poll, resuming from its stored offset) drives the
//! worker's source runtime through an embedded broker:
//! - a batch whose delivery fails stores no offset past it, and is read
//!   again when the task restarts;
//! - a task's `Retriable` errors are retried (errors.retry.timeout is 0);
//! - after a worker restart a STOPPED or PAUSED connector's task never
//!   starts, until it is resumed;
//! - connector files in both JSON shapes and as .properties run as given.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use brook_connect::serde_json::{json, Map, Value};
use brook_connect::{
    ConnectError, Connector, ConnectorConfig, SourceConnector, SourceRecord, SourceTask, State,
    StoredOffsets, TaskConfig, Worker, WorkerConfig,
};
use common::*;
use serde::{Deserialize, Serialize};

/// Starts and retriable failures per run (the `run` config key).
#[derive(Default)]
struct Journal {
    starts: BTreeMap<String, usize>,
    retriable_failures: BTreeMap<String, usize>,
}

static JOURNAL: Mutex<Option<Journal>> = Mutex::new(None);

fn journal<T>(f: impl FnOnce(&mut Journal) -> T) -> T {
    let mut guard = JOURNAL.lock().unwrap();
    f(guard.get_or_insert_with(Journal::default))
}

fn starts(run: &str) -> usize {
    journal(|j| j.starts.get(run).copied().unwrap_or(0))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptedSourceConfig {
    run: String,
    topic: String,
    /// Records numbered 0..count.
    #[serde(deserialize_with = "brook_connect::lenient::u64")]
    count: u64,
    /// Record `big.at` goes to `big.topic` with a 3,000-byte value.
    #[serde(rename = "big.at", default)]
    big_at: Option<u64>,
    #[serde(rename = "big.topic", default)]
    big_topic: Option<String>,
    /// The first polls of each task start fail with a Retriable error.
    #[serde(
        rename = "retriable.polls",
        default,
        deserialize_with = "brook_connect::lenient::u64"
    )]
    retriable_polls: u64,
}

#[typetag::serde(name = "ScriptedSource")]
impl ConnectorConfig for ScriptedSourceConfig {
    fn build(&self) -> Result<Connector, ConnectError> {
        Ok(Connector::Source(Box::new(ScriptedSource(self.clone()))))
    }
}

struct ScriptedSource(ScriptedSourceConfig);

impl SourceConnector for ScriptedSource {
    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<TaskConfig>, ConnectError> {
        let value = brook_connect::serde_json::to_value(&self.0)
            .map_err(|e| ConnectError::Fatal(e.to_string()))?;
        Ok(vec![value.as_object().cloned().unwrap_or_default()])
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(ScriptedTask::default())
    }
}

#[derive(Default)]
struct ScriptedTask {
    config: Option<ScriptedSourceConfig>,
    partition: Arc<Map<String, Value>>,
    next: u64,
    retriable_left: u64,
}

#[async_trait]
impl SourceTask for ScriptedTask {
    async fn start(
        &mut self,
        config: TaskConfig,
        offsets: StoredOffsets,
    ) -> Result<(), ConnectError> {
        let config: ScriptedSourceConfig =
            brook_connect::serde_json::from_value(Value::Object(config))
                .map_err(|e| ConnectError::Fatal(e.to_string()))?;
        let partition = json!({"script": config.run})
            .as_object()
            .cloned()
            .unwrap_or_default();
        self.next = offsets
            .get(&partition)
            .and_then(|o| o.get("next"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        self.partition = Arc::new(partition);
        self.retriable_left = config.retriable_polls;
        journal(|j| *j.starts.entry(config.run.clone()).or_default() += 1);
        self.config = Some(config);
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        let Some(config) = self.config.clone() else {
            return Err(ConnectError::Fatal("polled before start".into()));
        };
        if self.retriable_left > 0 {
            self.retriable_left -= 1;
            journal(|j| *j.retriable_failures.entry(config.run.clone()).or_default() += 1);
            return Err(ConnectError::Retriable(
                "the source is not ready yet".into(),
            ));
        }
        if self.next >= config.count {
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Ok(Vec::new());
        }
        let n = self.next;
        self.next += 1;
        let big = config.big_at == Some(n);
        let (topic, value) = match (&config.big_topic, big) {
            (Some(t), true) => (t.clone(), format!("big {n} {}", "x".repeat(3000))),
            _ => (config.topic.clone(), format!("r{n}")),
        };
        Ok(vec![SourceRecord {
            source_partition: self.partition.clone(),
            source_offset: Some(
                json!({"next": n + 1})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
            topic: topic.as_str().into(),
            key: None,
            value: Value::String(value),
        }])
    }

    async fn stop(&mut self) {}
}

fn worker_config(bootstrap: &str) -> WorkerConfig {
    WorkerConfig::from_json(&json!({
        "bootstrap.servers": bootstrap,
        "offset.flush.interval.ms": "100",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
    }))
    .unwrap()
}

fn values(bs: &str, topic: &str) -> Vec<String> {
    read_all(bs, topic)
        .unwrap()
        .iter()
        .map(Rec::value_str)
        .collect()
}

async fn wait_for_values(bs: &str, topic: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let start = Instant::now();
    loop {
        let (b, t) = (bs.to_string(), topic.to_string());
        let got = blocking(move || values(&b, &t)).await;
        if done(&got) {
            return got;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "{topic}: only {} records",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn stored_next(offsets: &Value) -> Option<u64> {
    offsets["offsets"]
        .as_array()?
        .first()
        .and_then(|o| o["offset"]["next"].as_u64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_fails_delivery_is_read_again_after_restart() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let (topic, tiny, roomy) = (unique("records"), unique("tiny"), unique("roomy"));
    create_topic(&bs, &topic, 1, &[]).await;
    // The broker refuses record batches above 1,000 bytes on this topic:
    // record 5 (3,000 bytes) cannot be delivered; 6.. go to `topic` and are.
    create_topic(&bs, &tiny, 1, &[("max.message.bytes", "1000")]).await;
    create_topic(&bs, &roomy, 1, &[]).await;
    let run = unique("fails");
    let config = |big_topic: &str| {
        json!({"connector.class": "ScriptedSource", "run": run, "topic": topic,
            "count": 30, "big.at": 5, "big.topic": big_topic})
    };
    let worker = Worker::start(worker_config(&bs)).await.unwrap();
    worker.put_config(&run, &config(&tiny)).await.unwrap();
    wait_for_state(&worker, &run, State::Failed).await;
    let trace = worker.status(&run).unwrap().tasks[0]
        .trace
        .clone()
        .unwrap_or_default();
    assert!(
        trace.contains("delivering source records failed"),
        "{trace}"
    );
    // Records after the failed one were delivered (another topic, so their
    // delivery does not depend on the failed one's), but no offset past the
    // failed record was stored.
    let after = wait_for_values(&bs, &topic, |v| v.iter().any(|r| r == "r6")).await;
    assert!(after.contains(&"r4".to_string()), "{after:?}");
    let stored = stored_next(&worker.offsets(&run).await.unwrap());
    assert!(
        stored.unwrap_or(0) <= 5,
        "offset stored past the failed record: {stored:?}"
    );
    worker.shutdown().await;

    // After a worker restart, with the record's topic fixed, the task
    // resumes at the failed record: it arrives, and so does everything after.
    let worker = Worker::start(worker_config(&bs)).await.unwrap();
    worker.put_config(&run, &config(&roomy)).await.unwrap();
    let big = wait_for_values(&bs, &roomy, |v| !v.is_empty()).await;
    assert!(big[0].starts_with("big 5 "), "{}", &big[0][..20]);
    let start = Instant::now();
    while stored_next(&worker.offsets(&run).await.unwrap()) != Some(30) {
        assert!(start.elapsed() < TIMEOUT, "the task never finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = wait_for_values(&bs, &topic, |v| v.iter().any(|r| r == "r29")).await;
    for n in (0..30).filter(|n| *n != 5) {
        assert!(all.contains(&format!("r{n}")), "r{n} missing");
    }
    assert_eq!(worker.status(&run).unwrap().tasks[0].state, State::Running);
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retriable_poll_errors_are_retried_not_fatal() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let topic = unique("retried");
    create_topic(&bs, &topic, 1, &[]).await;
    let run = unique("retriable");
    let worker = Worker::start(worker_config(&bs)).await.unwrap();
    // errors.retry.timeout is left at its default, 0.
    worker
        .add_connector(
            &json!({"name": run, "connector.class": "ScriptedSource", "run": run,
            "topic": topic, "count": 10, "retriable.polls": 3}),
        )
        .await
        .unwrap();
    let got = wait_for_values(&bs, &topic, |v| v.len() >= 10).await;
    assert_eq!(got, (0..10).map(|n| format!("r{n}")).collect::<Vec<_>>());
    assert_eq!(
        journal(|j| j.retriable_failures.get(&run).copied()),
        Some(3)
    );
    assert_eq!(worker.status(&run).unwrap().tasks[0].state, State::Running);
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_and_paused_connectors_stay_so_across_a_worker_restart() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let topic = unique("lifecycle");
    create_topic(&bs, &topic, 1, &[]).await;
    let (stopped, paused) = (unique("stopped"), unique("paused"));
    let config = |run: &str, count: u64| json!({"connector.class": "ScriptedSource", "run": run, "topic": topic, "count": count});
    let worker = Worker::start(worker_config(&bs)).await.unwrap();
    worker
        .put_config(&stopped, &config(&stopped, 5))
        .await
        .unwrap();
    worker
        .put_config(&paused, &config(&paused, 5))
        .await
        .unwrap();
    wait_for_values(&bs, &topic, |v| v.len() >= 10).await;
    worker.stop(&stopped).await.unwrap();
    worker.pause(&paused).await.unwrap();
    wait_for_state(&worker, &paused, State::Paused).await;
    worker.shutdown().await;
    let before = (starts(&stopped), starts(&paused));
    assert_eq!(before, (1, 1));

    // Restored from the config topic in their target states; re-applying
    // a changed config (more records) keeps them there too.
    let worker = Worker::start(worker_config(&bs)).await.unwrap();
    worker
        .put_config(&stopped, &config(&stopped, 8))
        .await
        .unwrap();
    worker
        .put_config(&paused, &config(&paused, 8))
        .await
        .unwrap();
    let status = worker.status(&stopped).unwrap();
    assert_eq!(status.connector.state, State::Stopped);
    assert!(status.tasks.is_empty(), "{status:?}");
    let status = worker.status(&paused).unwrap();
    assert_eq!(status.connector.state, State::Paused);
    assert_eq!(status.tasks[0].state, State::Paused);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        (starts(&stopped), starts(&paused)),
        before,
        "a task started"
    );
    assert_eq!(
        blocking({
            let (b, t) = (bs.clone(), topic.clone());
            move || values(&b, &t).len()
        })
        .await,
        10,
        "records produced while STOPPED/PAUSED"
    );

    // Resumed, each continues from its stored offset.
    worker.resume(&paused).await.unwrap();
    worker.resume(&stopped).await.unwrap();
    let got = wait_for_values(&bs, &topic, |v| v.len() >= 16).await;
    assert_eq!((starts(&stopped), starts(&paused)), (2, 2));
    for run in [&stopped, &paused] {
        assert_eq!(worker.status(run).unwrap().tasks[0].state, State::Running);
    }
    assert_eq!(got.len(), 16, "{got:?}");
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connector_files_in_every_shape_run_as_given() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let topic = unique("files");
    create_topic(&bs, &topic, 1, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let (flat, wrapped, props, paused) = (
        unique("flat"),
        unique("wrapped"),
        unique("props"),
        unique("initially-paused"),
    );
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let files = [
        write(
            "flat.json",
            json!({"name": flat, "connector.class": "ScriptedSource", "run": flat,
                "topic": topic, "count": "2"})
            .to_string(),
        ),
        // The POST /connectors body, as Kafka's standalone worker takes it.
        write(
            "wrapped.json",
            json!({"name": wrapped, "config": {"connector.class": "ScriptedSource",
                "run": wrapped, "topic": topic, "count": 2}})
            .to_string(),
        ),
        write(
            "props.properties",
            format!(
                "# a comment\nname={props}\nconnector.class = ScriptedSource\nrun:{props}\n\
                 topic {topic}\ncount=2\n"
            ),
        ),
        write(
            "paused.json",
            json!({"name": paused, "config": {"connector.class": "ScriptedSource",
                "run": paused, "topic": topic, "count": 2}, "initial_state": "PAUSED"})
            .to_string(),
        ),
    ];
    let worker = Worker::start(worker_config(&bs)).await.unwrap();
    for file in &files {
        let parsed = brook_connect::read_connector_file(file).unwrap();
        brook_connect::ConnectorDefinition::from_json(&parsed.config).unwrap();
        let name = parsed.config["name"].as_str().unwrap().to_string();
        assert!(worker
            .put_config_in(&name, &parsed.config, parsed.initial_state)
            .await
            .unwrap());
    }
    let mut got = wait_for_values(&bs, &topic, |v| v.len() >= 6).await;
    got.sort();
    assert_eq!(got, ["r0", "r0", "r0", "r1", "r1", "r1"]);
    assert_eq!(
        worker.status(&paused).unwrap().tasks[0].state,
        State::Paused
    );
    assert_eq!(starts(&paused), 0);

    // A wrapped config whose inner name disagrees is refused, naming both.
    let bad = write(
        "bad.json",
        json!({"name": "a", "config": {"name": "b", "connector.class": "ScriptedSource"}})
            .to_string(),
    );
    let err = brook_connect::read_connector_file(&bad)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.json") && err.contains("\"a\"") && err.contains("\"b\""),
        "{err}"
    );
    worker.shutdown().await;
}
