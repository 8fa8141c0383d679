//! The connector and task traits that every connector implements.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};

/// Identifies what a source reads from (e.g. `{"file": "/var/log/a.log"}`).
pub type SourcePartition = Map<String, Value>;
/// How far a source got within its partition (e.g. `{"position": 120}`).
pub type SourceOffset = Map<String, Value>;
/// One task's share of a connector's work, as a flat JSON map.
pub type TaskConfig = Map<String, Value>;

/// Errors raised by connectors and tasks.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The failure may go away on retry (I/O hiccup, broker unavailable).
    #[error("transient failure: {0}")]
    Retriable(String),
    /// The failure will not go away by retrying; the task must fail.
    #[error("{0}")]
    Fatal(String),
    /// Record `index` of the batch given to `put` cannot be written (bad
    /// data, a constraint). Like Kafka Connect's errant record reporter: with
    /// `errors.tolerance=all` the worker sends it to the dead letter queue
    /// and puts the batch again without it (records before it may be put
    /// twice unless the task wrote none of the batch); otherwise the task
    /// fails.
    #[error("{message}")]
    BadRecord {
        /// Position of the record in the batch.
        index: usize,
        /// What is wrong with it.
        message: String,
    },
}

impl ConnectError {
    /// True when the worker should retry the operation with backoff.
    pub fn is_retriable(&self) -> bool {
        matches!(self, ConnectError::Retriable(_))
    }
}

/// A record produced by a source task.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceRecord {
    /// What the record was read from (shared: a batch usually has one).
    pub source_partition: Arc<SourcePartition>,
    /// The position *after* this record, stored once it and every record
    /// before it are acknowledged. `None` adds no offset (as a null offset
    /// in Kafka Connect): a task may leave it out on all but the last record
    /// of a partition in one poll, since the worker stores offsets per
    /// acknowledged poll batch, never in the middle of one.
    pub source_offset: Option<SourceOffset>,
    /// Destination topic.
    pub topic: Arc<str>,
    /// Record key, converted with the key converter.
    pub key: Option<Value>,
    /// Record value, converted with the value converter.
    pub value: Value,
}

/// A topic partition assigned to a sink task.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: i32,
}

/// A record delivered to a sink task.
#[derive(Debug, Clone, PartialEq)]
pub struct SinkRecord {
    /// Topic the record was consumed from.
    pub topic: String,
    /// Partition the record was consumed from.
    pub partition: i32,
    /// Offset of the record within its partition.
    pub offset: i64,
    /// Converted key.
    pub key: Option<Value>,
    /// Converted value.
    pub value: Value,
}

/// Source offsets recovered from the offset store, handed to a starting task.
#[derive(Debug, Clone, Default)]
pub struct StoredOffsets {
    // Keyed by the canonical JSON text of the partition: serde_json maps are
    // ordered, so equal partitions serialise identically.
    by_partition: HashMap<String, (SourcePartition, SourceOffset)>,
}

impl StoredOffsets {
    /// Records `offset` as the latest known offset of `partition`.
    pub fn insert(&mut self, partition: &SourcePartition, offset: SourceOffset) {
        let key = Value::Object(partition.clone()).to_string();
        self.by_partition.insert(key, (partition.clone(), offset));
    }

    /// Forgets the offset of `partition`.
    pub fn remove(&mut self, partition: &SourcePartition) {
        let key = Value::Object(partition.clone()).to_string();
        self.by_partition.remove(&key);
    }

    /// The latest offset stored for `partition`, if any.
    pub fn get(&self, partition: &SourcePartition) -> Option<&SourceOffset> {
        let key = Value::Object(partition.clone()).to_string();
        self.by_partition.get(&key).map(|(_, offset)| offset)
    }

    /// Every stored (partition, offset) pair, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&SourcePartition, &SourceOffset)> {
        self.by_partition.values().map(|(p, o)| (p, o))
    }

    /// Number of partitions with a stored offset.
    pub fn len(&self) -> usize {
        self.by_partition.len()
    }

    /// True when no offsets are stored.
    pub fn is_empty(&self) -> bool {
        self.by_partition.is_empty()
    }
}

/// A source connector: splits its work into task configs and builds tasks.
pub trait SourceConnector: Send + Sync {
    /// Splits the work into at most `max_tasks` task configurations.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<TaskConfig>, ConnectError>;
    /// Builds a task that will be started with one of the task configs.
    fn create_task(&self) -> Box<dyn SourceTask>;
}

/// A running unit of a source connector.
#[async_trait]
pub trait SourceTask: Send {
    /// Starts the task; `offsets` holds what was committed before a restart.
    async fn start(
        &mut self,
        config: TaskConfig,
        offsets: StoredOffsets,
    ) -> Result<(), ConnectError>;
    /// Returns the next batch of records; an empty batch means "nothing yet"
    /// (the task should wait a little itself before returning empty).
    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError>;
    /// Stops the task and releases its resources.
    async fn stop(&mut self);
}

/// A sink connector: splits its work into task configs and builds tasks.
pub trait SinkConnector: Send + Sync {
    /// Topics the connector consumes.
    fn topics(&self) -> Vec<String>;
    /// Splits the work into at most `max_tasks` task configurations.
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<TaskConfig>, ConnectError>;
    /// Builds a task that will be started with one of the task configs.
    fn create_task(&self) -> Box<dyn SinkTask>;
}

/// A running unit of a sink connector.
#[async_trait]
pub trait SinkTask: Send {
    /// Starts the task with its configuration.
    async fn start(&mut self, config: TaskConfig) -> Result<(), ConnectError>;
    /// Partitions were assigned to this task.
    async fn open(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError>;
    /// Accepts records; they need not be durable until `flush` returns.
    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError>;
    /// Makes everything `put` so far durable; the worker commits consumer
    /// offsets only after this returns `Ok`.
    async fn flush(&mut self) -> Result<(), ConnectError>;
    /// Partitions were revoked from this task.
    async fn close(&mut self, partitions: &[TopicPartition]) -> Result<(), ConnectError>;
    /// Stops the task and releases its resources.
    async fn stop(&mut self);
}

/// A built connector of either direction.
pub enum Connector {
    /// Reads from an external system into topics.
    Source(Box<dyn SourceConnector>),
    /// Writes from topics into an external system.
    Sink(Box<dyn SinkConnector>),
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Connector::Source(_) => f.write_str("Connector::Source"),
            Connector::Sink(_) => f.write_str("Connector::Sink"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stored_offsets_match_equal_partitions() {
        let mut offsets = StoredOffsets::default();
        let p = json!({"file": "/a"}).as_object().cloned().unwrap();
        offsets.insert(&p, json!({"position": 7}).as_object().cloned().unwrap());
        let same = json!({"file": "/a"}).as_object().cloned().unwrap();
        assert_eq!(offsets.get(&same).unwrap()["position"], 7);
        let other = json!({"file": "/b"}).as_object().cloned().unwrap();
        assert!(offsets.get(&other).is_none());
    }
}
