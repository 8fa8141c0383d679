//! The worker writes connector and task statuses to `status.storage.topic`
//! as Kafka Connect's `KafkaStatusBackingStore` does, driven here by a
//! source connector defined in this file (`StatusProbeSource`: one record per
//! poll when given a topic, failing once the test says so):
//! - every state change of the connector and its task is one record, in
//!   order, and a delete leaves tombstones;
//! - a status topic that refuses every write fails no task and does not
//!   hold up the worker's shutdown.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use brook_connect::serde_json::{self, json, Map, Value};
use brook_connect::{
    ConnectError, Connector, ConnectorConfig, SourceConnector, SourceRecord, SourceTask, State,
    StoredOffsets, TaskConfig, Worker, WorkerConfig,
};
use common::*;
use rdkafka::admin::ResourceSpecifier;
use serde::{Deserialize, Serialize};

/// Runs (the `run` config key) whose task's next poll fails.
static FAILING: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusProbeConfig {
    run: String,
    /// Where the task writes one record per poll; none without it.
    #[serde(default)]
    topic: Option<String>,
}

#[typetag::serde(name = "StatusProbeSource")]
impl ConnectorConfig for StatusProbeConfig {
    fn build(&self) -> Result<Connector, ConnectError> {
        Ok(Connector::Source(Box::new(StatusProbe(self.clone()))))
    }
}

struct StatusProbe(StatusProbeConfig);

impl SourceConnector for StatusProbe {
    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<TaskConfig>, ConnectError> {
        let value =
            serde_json::to_value(&self.0).map_err(|e| ConnectError::Fatal(e.to_string()))?;
        Ok(vec![value.as_object().cloned().unwrap_or_default()])
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(ProbeTask {
            config: self.0.clone(),
            polls: 0,
        })
    }
}

struct ProbeTask {
    config: StatusProbeConfig,
    polls: u64,
}

#[async_trait]
impl SourceTask for ProbeTask {
    async fn start(&mut self, _: TaskConfig, _: StoredOffsets) -> Result<(), ConnectError> {
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        if FAILING.lock().unwrap().contains(&self.config.run) {
            return Err(ConnectError::Fatal("the probe was told to fail".into()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let Some(topic) = &self.config.topic else {
            return Ok(Vec::new());
        };
        self.polls += 1;
        Ok(vec![SourceRecord {
            source_partition: Arc::new(Map::new()),
            source_offset: None,
            topic: topic.as_str().into(),
            key: None,
            value: Value::String(format!("poll {}", self.polls)),
        }])
    }

    async fn stop(&mut self) {}
}

fn worker_config(bootstrap: &str, extra: Value) -> WorkerConfig {
    let mut config = json!({"bootstrap.servers": bootstrap, "rest.port": 0,
        "value.converter": "org.apache.kafka.connect.storage.StringConverter"});
    if let (Some(c), Some(extra)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    WorkerConfig::from_json(&config).unwrap()
}

/// Creates connector `run` from `config`, then pauses and resumes it,
/// waiting for its task each time.
async fn create_pause_resume(worker: &Worker, run: &str, mut config: Value) {
    config["name"] = json!(run);
    config["connector.class"] = json!("StatusProbeSource");
    config["run"] = json!(run);
    worker.add_connector(&config).await.unwrap();
    wait_for_state(worker, run, State::Running).await;
    worker.pause(run).await.unwrap();
    wait_for_state(worker, run, State::Paused).await;
    worker.resume(run).await.unwrap();
    wait_for_state(worker, run, State::Running).await;
}

/// The values written under `key`, in order (`None` = tombstone).
fn values_of(records: &[Rec], key: &str) -> Vec<Option<Value>> {
    records
        .iter()
        .filter(|r| r.key_str() == key)
        .map(|r| {
            r.value
                .as_deref()
                .map(|v| serde_json::from_slice(v).expect("a JSON status"))
        })
        .collect()
}

/// A status value as Kafka Connect's standalone worker `standalone:0` writes it.
fn status(state: &str) -> Option<Value> {
    Some(json!({"state": state, "trace": null, "worker_id": "standalone:0", "generation": 0}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_and_a_delete_are_written_to_connect_status() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let worker = Worker::start(worker_config(&bs, json!({}))).await.unwrap();
    // Created as Kafka Connect creates it: 5 partitions, compacted.
    let b = bs.clone();
    let partitions = blocking(move || partition_count(&b, "connect-status")).await;
    assert_eq!(partitions.unwrap(), Some(5));
    let described = admin(&bs)
        .describe_configs(
            [&ResourceSpecifier::Topic("connect-status")],
            &admin_options(),
        )
        .await
        .unwrap()
        .remove(0)
        .expect("DescribeConfigs of connect-status");
    assert_eq!(
        described
            .get("cleanup.policy")
            .and_then(|e| e.value.as_deref()),
        Some("compact")
    );

    let run = unique("probe");
    create_pause_resume(&worker, &run, json!({})).await;
    // A stop ends the task: no task is listed until the connector resumes.
    worker.stop(&run).await.unwrap();
    assert!(worker.status(&run).unwrap().tasks.is_empty());
    worker.resume(&run).await.unwrap();
    wait_for_state(&worker, &run, State::Running).await;
    FAILING.lock().unwrap().insert(run.clone());
    wait_for_state(&worker, &run, State::Failed).await;
    worker.delete(&run).await.unwrap();

    // Written asynchronously: read until the connector's tombstone is there.
    let connector_key = format!("status-connector-{run}");
    let start = Instant::now();
    let records = loop {
        let records = read_all_async(&bs, "connect-status").await.unwrap();
        if values_of(&records, &connector_key).last() == Some(&None) {
            break records;
        }
        assert!(start.elapsed() < TIMEOUT, "no tombstone: {records:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let first = records
        .iter()
        .find(|r| r.key_str() == connector_key)
        .unwrap();
    assert_eq!(
        first.value_str(),
        r#"{"state":"RUNNING","trace":null,"worker_id":"standalone:0","generation":0}"#,
        "Kafka Connect's field order"
    );
    assert_eq!(
        values_of(&records, &connector_key),
        [
            status("RUNNING"),
            status("PAUSED"),
            status("RUNNING"),
            status("STOPPED"),
            status("RUNNING"),
            // Shut down by the delete, then forgotten.
            status("UNASSIGNED"),
            None,
        ]
    );
    let mut task = values_of(&records, &format!("status-task-{run}-0"));
    // The FAILED record's trace is the task's error.
    let failed = task.get_mut(5).and_then(Option::as_mut).expect("FAILED");
    let trace = failed["trace"].take();
    assert!(
        trace.as_str().unwrap_or("").contains("told to fail"),
        "{trace}"
    );
    failed["trace"] = Value::Null;
    assert_eq!(
        task,
        [
            status("RUNNING"),
            status("PAUSED"),
            status("RUNNING"),
            // Ended by the stop.
            status("UNASSIGNED"),
            status("RUNNING"),
            status("FAILED"),
            None,
        ]
    );
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_topic_that_refuses_writes_fails_no_task() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    // Every status record is larger than the broker takes on this topic.
    let status_topic = unique("refusing-status");
    create_topic(
        &bs,
        &status_topic,
        1,
        &[("cleanup.policy", "compact"), ("max.message.bytes", "10")],
    )
    .await;
    let records = unique("probe-records");
    create_topic(&bs, &records, 1, &[]).await;
    let config = worker_config(&bs, json!({"status.storage.topic": status_topic}));
    let worker = Worker::start(config).await.unwrap();
    let run = unique("probe");
    create_pause_resume(&worker, &run, json!({ "topic": records })).await;
    // The task keeps producing after its status writes were refused.
    let produced = |bs: &str| {
        let (b, t) = (bs.to_string(), records.clone());
        blocking(move || read_all(&b, &t).unwrap().len())
    };
    let before = produced(&bs).await;
    let start = Instant::now();
    while produced(&bs).await < before + 10 {
        assert!(start.elapsed() < TIMEOUT, "the task stopped producing");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(worker.status(&run).unwrap().tasks[0].state, State::Running);
    assert!(read_all_async(&bs, &status_topic).await.unwrap().is_empty());
    let start = Instant::now();
    worker.shutdown().await;
    assert!(start.elapsed() < Duration::from_secs(30), "shutdown hung");
}
