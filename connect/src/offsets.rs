//! Source offsets kept in a compacted Kafka topic, keyed like Kafka
//! Connect's: key `["<connector>", {partition}]`, value `{offset}`.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{FutureProducer, FutureRecord};
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
    producer: FutureProducer,
}

impl OffsetStore {
    /// Connects to the offset topic, creating it (compacted) if missing.
    pub async fn open(
        bootstrap: &str,
        topic: &str,
        replication: i32,
    ) -> Result<Self, OffsetStoreError> {
        let err = |m: String| OffsetStoreError {
            topic: topic.to_string(),
            message: m,
        };
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .map_err(|e| err(e.to_string()))?;
        let new = NewTopic::new(topic, 1, TopicReplication::Fixed(replication))
            .set("cleanup.policy", "compact");
        let results = admin
            .create_topics([&new], &AdminOptions::new())
            .await
            .map_err(|e| err(e.to_string()))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(err(format!("cannot create topic: {code}"))),
            }
        }
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("enable.idempotence", "true")
            .create()
            .map_err(|e| err(e.to_string()))?;
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
        let key = json!([connector, partition]).to_string();
        let value = Value::Object(offset.clone()).to_string();
        self.producer
            .send(
                FutureRecord::to(&self.topic).key(&key).payload(&value),
                Duration::from_secs(30),
            )
            .await
            .map(|_| ())
            .map_err(|(e, _)| OffsetStoreError {
                topic: self.topic.clone(),
                message: e.to_string(),
            })
    }
}

fn read_all(
    bootstrap: &str,
    topic: &str,
    connector: &str,
) -> Result<StoredOffsets, OffsetStoreError> {
    let err = |m: String| OffsetStoreError {
        topic: topic.to_string(),
        message: m,
    };
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "brook-connect-offset-reader")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| err(e.to_string()))?;
    let timeout = Duration::from_secs(30);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| err(e.to_string()))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut offsets = StoredOffsets::default();
    let mut tpl = TopicPartitionList::new();
    let mut remaining = Vec::new();
    for p in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(|e| err(e.to_string()))?;
        if high > low {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .map_err(|e| err(e.to_string()))?;
            remaining.push((p, high));
        }
    }
    if remaining.is_empty() {
        return Ok(offsets);
    }
    consumer.assign(&tpl).map_err(|e| err(e.to_string()))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !remaining.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(err("timed out reading offsets".into()));
        }
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let msg = msg.map_err(|e| err(e.to_string()))?;
        if let (Some(key), Some(value)) = (msg.key(), msg.payload()) {
            if let Ok(Value::Array(parts)) = serde_json::from_slice::<Value>(key) {
                if let [Value::String(name), Value::Object(partition)] = parts.as_slice() {
                    if name == connector {
                        if let Ok(Value::Object(offset)) = serde_json::from_slice::<Value>(value) {
                            offsets.insert(partition, offset);
                        }
                    }
                }
            }
        }
        let (p, next) = (msg.partition(), msg.offset() + 1);
        remaining.retain(|(rp, high)| !(*rp == p && next >= *high));
    }
    Ok(offsets)
}
