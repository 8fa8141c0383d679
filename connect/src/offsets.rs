//! Source offsets kept in a compacted Kafka topic, keyed like Kafka
//! Connect's: key `["<connector>", {partition}]`, value `{offset}`.

use std::time::Duration;

use crate::producer::Producer;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::{json, Value};

use crate::connector::{SourceOffset, SourcePartition, StoredOffsets};

/// The offset store could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("offset store ({topic}): {message}")]
pub struct OffsetStoreError {
    topic: String,
    message: String,
}

/// Reads and writes source offsets in `offset.storage.topic`.
#[derive(Clone)]
pub(crate) struct OffsetStore {
    bootstrap: String,
    topic: String,
    producer: Producer,
}

impl OffsetStore {
    /// Connects to the offset topic, creating it (compacted) if missing.
    pub async fn open(
        bootstrap: &str,
        topic: &str,
        replication: i32,
        producer: Producer,
    ) -> Result<Self, OffsetStoreError> {
        let err = |m: String| OffsetStoreError {
            topic: topic.to_string(),
            message: m,
        };
        // Kafka Connect's `offset.storage.partitions` is not taken (yet): one partition.
        ensure_compacted_topic(bootstrap, topic, 1, replication)
            .await
            .map_err(err)?;
        Ok(OffsetStore {
            bootstrap: bootstrap.to_string(),
            topic: topic.to_string(),
            producer,
        })
    }

    /// Reads the latest offset of every partition of `connector`.
    pub async fn load(&self, connector: &str) -> Result<StoredOffsets, OffsetStoreError> {
        let (bootstrap, topic, connector) = (
            self.bootstrap.clone(),
            self.topic.clone(),
            connector.to_string(),
        );
        let err_topic = topic.clone();
        tokio::task::spawn_blocking(move || read_all(&bootstrap, &topic, &connector))
            .await
            .map_err(|e| OffsetStoreError {
                topic: err_topic,
                message: e.to_string(),
            })?
    }

    /// Writes one offset and waits until the broker acknowledged it.
    pub async fn write(
        &self,
        connector: &str,
        partition: &SourcePartition,
        offset: &SourceOffset,
    ) -> Result<(), OffsetStoreError> {
        self.send(connector, partition, Some(offset)).await
    }

    /// Forgets the offset of one partition (a tombstone).
    pub async fn remove(
        &self,
        connector: &str,
        partition: &SourcePartition,
    ) -> Result<(), OffsetStoreError> {
        self.send(connector, partition, None).await
    }

    async fn send(
        &self,
        connector: &str,
        partition: &SourcePartition,
        offset: Option<&SourceOffset>,
    ) -> Result<(), OffsetStoreError> {
        let key = json!([connector, partition]).to_string();
        let value = offset.map(|o| Value::Object(o.clone()).to_string());
        send_keyed(&self.producer, &self.topic, &key, value.as_deref())
            .await
            .map_err(|message| OffsetStoreError {
                topic: self.topic.clone(),
                message,
            })
    }
}

/// Creates `topic` with `cleanup.policy=compact` unless it exists (an
/// existing one is left as it is, as Kafka Connect does). -1 partitions or
/// replicas: the cluster's `num.partitions` / `default.replication.factor`.
pub(crate) async fn ensure_compacted_topic(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    replication: i32,
) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(|e| e.to_string())?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication))
        .set("cleanup.policy", "compact");
    let results = admin
        .create_topics([&new], &AdminOptions::new())
        .await
        .map_err(|e| e.to_string())?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(format!("cannot create topic: {code}")),
        }
    }
    Ok(())
}

/// Sends one keyed record (`None` = tombstone) and waits for its acknowledgement.
pub(crate) async fn send_keyed(
    producer: &Producer,
    topic: &str,
    key: &str,
    value: Option<&str>,
) -> Result<(), String> {
    producer
        .send_one(topic, Some(key.as_bytes()), value.map(str::as_bytes), None)
        .await
}

fn read_all(
    bootstrap: &str,
    topic: &str,
    connector: &str,
) -> Result<StoredOffsets, OffsetStoreError> {
    let mut offsets = StoredOffsets::default();
    read_topic(bootstrap, topic, |key, value| {
        let Ok(Value::Array(parts)) = serde_json::from_slice::<Value>(key) else {
            return;
        };
        let [Value::String(name), Value::Object(partition)] = parts.as_slice() else {
            return;
        };
        if name != connector {
            return;
        }
        match value.map(serde_json::from_slice::<Value>) {
            Some(Ok(Value::Object(offset))) => offsets.insert(partition, offset),
            None => offsets.remove(partition),
            Some(_) => {}
        }
    })
    .map_err(|message| OffsetStoreError {
        topic: topic.to_string(),
        message,
    })?;
    Ok(offsets)
}

/// Reads a topic from the beginning to its current end, without a group,
/// handing every keyed record (value `None` = tombstone) to `visit`. Blocking.
pub(crate) fn read_topic(
    bootstrap: &str,
    topic: &str,
    mut visit: impl FnMut(&[u8], Option<&[u8]>),
) -> Result<(), String> {
    let err = |e: rdkafka::error::KafkaError| e.to_string();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "brook-connect-internal-reader")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(err)?;
    let timeout = Duration::from_secs(30);
    let metadata = consumer.fetch_metadata(Some(topic), timeout).map_err(err)?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut tpl = TopicPartitionList::new();
    let mut remaining = Vec::new();
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, timeout).map_err(err)?;
        if high > low {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(err)?;
            remaining.push((p, high));
        }
    }
    if remaining.is_empty() {
        return Ok(());
    }
    consumer.assign(&tpl).map_err(err)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !remaining.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(format!("timed out reading {topic}"));
        }
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let msg = msg.map_err(err)?;
        if let Some(key) = msg.key() {
            visit(key, msg.payload());
        }
        let (p, next) = (msg.partition(), msg.offset() + 1);
        remaining.retain(|(rp, high)| !(*rp == p && next >= *high));
    }
    Ok(())
}
