//! Reading and changing a connector's committed offsets (KIP-875):
//! `GET|PATCH|DELETE /connectors/{name}/offsets`. Changes are only allowed
//! while the connector is STOPPED, so no task races them.

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use serde_json::Value;

use super::{State, Worker, WorkerError};
use crate::connector::{SourceOffset, SourcePartition};

/// A sink offset change: topic, partition, next offset to consume (`None`
/// forgets the committed one).
type SinkOffset = (String, i32, Option<i64>);
/// A source offset change: the partition and its new offset (`None` = forget it).
type SourceChange = (SourcePartition, Option<SourceOffset>);

impl Worker {
    /// The connector's kind ("source"/"sink"), if it is STOPPED.
    fn stopped_kind(&self, name: &str) -> Result<&'static str, WorkerError> {
        let connectors = self.inner.connectors.lock();
        let c = connectors
            .get(name)
            .ok_or_else(|| WorkerError::NotFound(name.to_string()))?;
        if c.state != State::Stopped {
            return Err(WorkerError::NotStopped(name.to_string()));
        }
        Ok(c.kind)
    }

    /// `PATCH /connectors/{name}/offsets`: writes the given offsets (source:
    /// into the offset topic, `null` forgets a partition; sink: commits
    /// `kafka_offset` in the `connect-<name>` group). Returns the message.
    pub async fn alter_offsets(&self, name: &str, body: &Value) -> Result<String, WorkerError> {
        let kind = self.stopped_kind(name)?;
        let entries = body
            .get("offsets")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                WorkerError::BadRequest(
                    "the body must be {\"offsets\": [{\"partition\": {..}, \"offset\": {..}}]}"
                        .into(),
                )
            })?;
        if kind == "sink" {
            let changes = entries
                .iter()
                .map(sink_change)
                .collect::<Result<Vec<_>, _>>()?;
            let (bootstrap, group) = (
                self.inner.config.bootstrap_servers.clone(),
                format!("connect-{name}"),
            );
            tokio::task::spawn_blocking(move || commit_sink_offsets(&bootstrap, &group, &changes))
                .await
                .map_err(|e| WorkerError::Kafka(e.to_string()))??;
        } else {
            let changes = entries
                .iter()
                .map(source_change)
                .collect::<Result<Vec<_>, _>>()?;
            for (partition, offset) in changes {
                match offset {
                    Some(o) => self.inner.offsets.write(name, &partition, &o).await?,
                    None => self.inner.offsets.remove(name, &partition).await?,
                }
            }
        }
        Ok("The offsets for this connector have been altered successfully".into())
    }

    /// `DELETE /connectors/{name}/offsets`: forgets every offset (source:
    /// tombstones in the offset topic; sink: deletes the `connect-<name>`
    /// group). Returns the message.
    pub async fn reset_offsets(&self, name: &str) -> Result<String, WorkerError> {
        let kind = self.stopped_kind(name)?;
        if kind == "sink" {
            let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
                .set("bootstrap.servers", &self.inner.config.bootstrap_servers)
                .create()
                .map_err(|e| WorkerError::Kafka(e.to_string()))?;
            let group = format!("connect-{name}");
            let results = admin
                .delete_groups(&[group.as_str()], &AdminOptions::new())
                .await
                .map_err(|e| WorkerError::Kafka(e.to_string()))?;
            for result in results {
                match result {
                    Ok(_) | Err((_, RDKafkaErrorCode::GroupIdNotFound)) => {}
                    Err((_, code)) => {
                        return Err(WorkerError::Kafka(format!(
                            "deleting group {group}: {code}"
                        )))
                    }
                }
            }
        } else {
            let stored = self.inner.offsets.load(name).await?;
            for (partition, _) in stored.iter() {
                self.inner.offsets.remove(name, partition).await?;
            }
        }
        Ok("The offsets for this connector have been reset successfully".into())
    }
}

fn source_change(entry: &Value) -> Result<SourceChange, WorkerError> {
    let partition = entry
        .get("partition")
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| {
            WorkerError::BadRequest("every entry needs a \"partition\" object".into())
        })?;
    let offset = match entry.get("offset") {
        Some(Value::Object(o)) => Some(o.clone()),
        Some(Value::Null) | None => None,
        Some(other) => {
            return Err(WorkerError::BadRequest(format!(
                "\"offset\" must be an object or null, got {other}"
            )))
        }
    };
    Ok((partition, offset))
}

fn sink_change(entry: &Value) -> Result<SinkOffset, WorkerError> {
    let bad = |m: &str| WorkerError::BadRequest(m.to_string());
    let partition = entry
        .get("partition")
        .ok_or_else(|| bad("every entry needs a \"partition\""))?;
    let topic = partition
        .get("kafka_topic")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("a sink partition needs \"kafka_topic\" (a string)"))?;
    let number = partition
        .get("kafka_partition")
        .and_then(Value::as_i64)
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| bad("a sink partition needs \"kafka_partition\" (an integer)"))?;
    let offset = match entry.get("offset") {
        // Forget the partition's committed offset (the sink then starts it
        // from the earliest record, like a new consumer group).
        Some(Value::Null) | None => None,
        Some(o) => Some(
            o.get("kafka_offset")
                .and_then(Value::as_i64)
                .filter(|o| *o >= 0)
                .ok_or_else(|| {
                    bad("a sink offset needs \"kafka_offset\" (a non-negative integer)")
                })?,
        ),
    };
    Ok((topic.to_string(), number, offset))
}

/// Commits offsets in `group` as a non-member (the group is empty while the
/// connector is stopped). Blocking.
fn commit_sink_offsets(
    bootstrap: &str,
    group: &str,
    changes: &[SinkOffset],
) -> Result<(), WorkerError> {
    let kafka = |e: rdkafka::error::KafkaError| WorkerError::Kafka(e.to_string());
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(kafka)?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    let mut forget = Vec::new();
    for (topic, partition, offset) in changes {
        match offset {
            Some(offset) => tpl
                .add_partition_offset(topic, *partition, rdkafka::Offset::Offset(*offset))
                .map_err(kafka)?,
            None => forget.push((topic.clone(), *partition)),
        }
    }
    if tpl.count() > 0 {
        consumer.commit(&tpl, CommitMode::Sync).map_err(kafka)?;
    }
    crate::group_offsets::delete_group_offsets(
        bootstrap,
        group,
        &forget,
        std::time::Duration::from_secs(30),
    )
    .map_err(WorkerError::Kafka)
}

/// Committed offsets of a sink's consumer group, one entry per partition.
pub(super) fn sink_offsets(
    bootstrap: &str,
    group: &str,
    topics: &[String],
) -> Result<Vec<Value>, WorkerError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let kafka = |e: rdkafka::error::KafkaError| WorkerError::Kafka(e.to_string());
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(kafka)?;
    let timeout = std::time::Duration::from_secs(30);
    let mut tpl = rdkafka::TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(kafka)?;
        for t in metadata.topics() {
            for p in t.partitions() {
                tpl.add_partition(t.name(), p.id());
            }
        }
    }
    let committed = consumer.committed_offsets(tpl, timeout).map_err(kafka)?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            rdkafka::Offset::Offset(offset) => Some(serde_json::json!({
                "partition": {"kafka_topic": e.topic(), "kafka_partition": e.partition()},
                "offset": {"kafka_offset": offset},
            })),
            _ => None,
        })
        .collect())
}
