//! Connector and task statuses written to a compacted topic
//! (`status.storage.topic`, default `connect-status`), as Kafka Connect's
//! `KafkaStatusBackingStore` writes them, so tools that read that topic see
//! Brook's worker like a Kafka Connect one.
//!
//! Key `status-connector-<name>` or `status-task-<name>-<id>`; value
//! `{"state": "RUNNING", "trace": null, "worker_id": "...", "generation": 0}`
//! (a standalone worker's generation is always 0, as in Kafka Connect); a
//! tombstone for the connector and each of its tasks when the connector is
//! deleted.
//!
//! Write-only: the REST API answers from the worker's memory. A write is
//! only queued here; one writer task sends the queue in order and logs what
//! the broker refuses, so a task thread never waits for the broker and a
//! failed status write never fails a task.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::offsets::{ensure_compacted_topic, send_keyed};
use crate::producer::Producer;
use crate::worker::State;

/// One status record's value, its fields in Kafka Connect's order.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct StatusRecord {
    /// The connector's or task's state.
    state: State,
    /// Why it FAILED; `null` otherwise.
    trace: Option<String>,
    /// The worker that wrote the record.
    worker_id: String,
    /// The group generation the worker was in (0: standalone).
    generation: i32,
}

/// What the writer task is asked to do, in order.
enum Command {
    /// Sends one record (`None` = tombstone).
    Put { key: String, value: Option<String> },
    /// Answers once everything queued before was sent, then stops the writer.
    Close(oneshot::Sender<()>),
}

/// Queues status records for `status.storage.topic`; cheap to clone.
#[derive(Clone)]
pub(crate) struct StatusStore {
    queue: mpsc::UnboundedSender<Command>,
    worker_id: Arc<str>,
    /// Task ids written per connector, so a delete tombstones every one,
    /// also those of an earlier configuration with more tasks.
    tasks: Arc<Mutex<HashMap<String, usize>>>,
}

impl StatusStore {
    /// Creates the status topic (compacted) if missing and starts the
    /// writer task on the current runtime.
    pub async fn open(
        bootstrap: &str,
        topic: &str,
        partitions: i32,
        replication: i32,
        producer: Producer,
        worker_id: &str,
    ) -> Result<Self, String> {
        ensure_compacted_topic(bootstrap, topic, partitions, replication)
            .await
            .map_err(|e| format!("status store ({topic}): {e}"))?;
        Ok(Self::start(producer, topic, worker_id))
    }

    /// Starts the writer for an existing topic.
    fn start(producer: Producer, topic: &str, worker_id: &str) -> Self {
        let (queue, commands) = mpsc::unbounded_channel();
        tokio::spawn(write_in_order(commands, producer, topic.to_string()));
        StatusStore {
            queue,
            worker_id: worker_id.into(),
            tasks: Arc::default(),
        }
    }

    /// Records a connector's state (`trace` when FAILED).
    pub fn connector(&self, name: &str, state: State, trace: Option<&str>) {
        self.put(connector_key(name), Some(self.value(state, trace)));
    }

    /// Records a task's state (`trace` when FAILED).
    pub fn task(&self, connector: &str, id: usize, state: State, trace: Option<&str>) {
        {
            let mut tasks = self.tasks.lock();
            let known = tasks.entry(connector.to_string()).or_default();
            *known = (*known).max(id + 1);
        }
        self.put(task_key(connector, id), Some(self.value(state, trace)));
    }

    /// Tombstones a deleted connector: every task written for it first,
    /// then itself, as Kafka Connect does.
    pub fn remove(&self, connector: &str) {
        let known = self.tasks.lock().remove(connector).unwrap_or(0);
        for id in 0..known {
            self.put(task_key(connector, id), None);
        }
        self.put(connector_key(connector), None);
    }

    /// Waits (at most `timeout`, the broker may be gone) until every queued
    /// record was sent or refused, then stops the writer, letting go of its
    /// producer; later records are dropped.
    pub async fn close(&self, timeout: Duration) {
        let (done, sent) = oneshot::channel();
        if self.queue.send(Command::Close(done)).is_err() {
            return;
        }
        if tokio::time::timeout(timeout, sent).await.is_err() {
            tracing::warn!("status records still unsent after {timeout:?}; not waiting");
        }
    }

    fn value(&self, state: State, trace: Option<&str>) -> String {
        let record = StatusRecord {
            state,
            trace: trace.map(str::to_string),
            worker_id: self.worker_id.to_string(),
            generation: 0,
        };
        // A struct of strings and an integer always serializes.
        serde_json::to_string(&record).unwrap_or_default()
    }

    fn put(&self, key: String, value: Option<String>) {
        // Fails only once the writer stopped (after close): nothing to do then.
        if self.queue.send(Command::Put { key, value }).is_err() {
            tracing::debug!("status store closed; status record dropped");
        }
    }
}

fn connector_key(connector: &str) -> String {
    format!("status-connector-{connector}")
}

fn task_key(connector: &str, id: usize) -> String {
    format!("status-task-{connector}-{id}")
}

/// Sends queued records one at a time, so the topic keeps their order even
/// when the producer retries; logs the ones the broker refused.
async fn write_in_order(
    mut commands: mpsc::UnboundedReceiver<Command>,
    producer: Producer,
    topic: String,
) {
    while let Some(command) = commands.recv().await {
        match command {
            Command::Put { key, value } => {
                if let Err(e) = send_keyed(&producer, &topic, &key, value.as_deref()).await {
                    tracing::warn!(topic = %topic, key = %key, error = %e, "writing a status record failed");
                }
            }
            Command::Close(done) => {
                let _ = done.send(());
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_have_kafka_connects_layout() {
        let record = |state, trace: Option<&str>| StatusRecord {
            state,
            trace: trace.map(str::to_string),
            worker_id: "w:1".into(),
            generation: 0,
        };
        assert_eq!(
            serde_json::to_string(&record(State::Running, None)).unwrap(),
            r#"{"state":"RUNNING","trace":null,"worker_id":"w:1","generation":0}"#
        );
        assert_eq!(
            serde_json::to_value(record(State::Failed, Some("boom"))).unwrap(),
            json!({"state": "FAILED", "trace": "boom", "worker_id": "w:1", "generation": 0})
        );
        assert_eq!(connector_key("c-1"), "status-connector-c-1");
        assert_eq!(task_key("c-1", 2), "status-task-c-1-2");
    }

    #[tokio::test]
    async fn writes_never_wait_for_the_broker() {
        // Nothing listens on port 1: every send waits for librdkafka's
        // message timeout, yet queueing returns at once and close gives up.
        let producer = crate::producer::producer("127.0.0.1:1").unwrap();
        let store = StatusStore::start(producer, "connect-status", "w:1");
        let started = std::time::Instant::now();
        for id in 0..100 {
            store.task("c", id, State::Running, None);
        }
        store.connector("c", State::Failed, Some("boom"));
        store.remove("c");
        assert!(store.tasks.lock().is_empty());
        store.close(Duration::from_millis(100)).await;
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
