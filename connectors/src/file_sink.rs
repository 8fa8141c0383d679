//! FileSink: writes each record's value as one line; flush = fsync.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};

use async_trait::async_trait;
use brook_connect::{
    ConnectError, Connector, ConnectorConfig, SinkConnector, SinkRecord, SinkTask, TaskConfig,
    TopicPartition,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Configuration of the `FileSink` connector class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// File the lines are appended to.
    pub file: String,
    /// Comma-separated topics to consume.
    pub topics: String,
}

#[typetag::serde(name = "FileSink")]
impl ConnectorConfig for FileSinkConfig {
    fn build(&self) -> Result<Connector, ConnectError> {
        if topic_list(&self.topics).is_empty() {
            return Err(ConnectError::Fatal(
                "FileSink: \"topics\" names no topic".into(),
            ));
        }
        Ok(Connector::Sink(Box::new(FileSink {
            config: self.clone(),
        })))
    }
}

fn topic_list(topics: &str) -> Vec<String> {
    topics
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(String::from)
        .collect()
}

/// The FileSink connector.
struct FileSink {
    config: FileSinkConfig,
}

impl SinkConnector for FileSink {
    fn topics(&self) -> Vec<String> {
        topic_list(&self.config.topics)
    }

    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<TaskConfig>, ConnectError> {
        // Several writers appending to one file would interleave lines
        // unpredictably, so a FileSink always runs one task.
        let value =
            serde_json::to_value(&self.config).map_err(|e| ConnectError::Fatal(e.to_string()))?;
        Ok(vec![value.as_object().cloned().unwrap_or_default()])
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(FileSinkTask { out: None })
    }
}

/// A running FileSink task.
struct FileSinkTask {
    out: Option<BufWriter<File>>,
}

impl FileSinkTask {
    fn out(&mut self) -> Result<&mut BufWriter<File>, ConnectError> {
        self.out
            .as_mut()
            .ok_or_else(|| ConnectError::Fatal("FileSink task used before start".into()))
    }
}

#[async_trait]
impl SinkTask for FileSinkTask {
    async fn start(&mut self, config: TaskConfig) -> Result<(), ConnectError> {
        let config: FileSinkConfig = serde_json::from_value(Value::Object(config))
            .map_err(|e| ConnectError::Fatal(format!("invalid task config: {e}")))?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.file)
            .map_err(|e| ConnectError::Fatal(format!("opening {}: {e}", config.file)))?;
        self.out = Some(BufWriter::new(file));
        Ok(())
    }

    async fn open(&mut self, _partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError> {
        let out = self.out()?;
        for record in records {
            let line = match record.value {
                Value::String(s) => s,
                Value::Null => String::new(),
                other => other.to_string(),
            };
            writeln!(out, "{line}")
                .map_err(|e| ConnectError::Retriable(format!("writing: {e}")))?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ConnectError> {
        let out = self.out()?;
        out.flush()
            .map_err(|e| ConnectError::Retriable(format!("flushing: {e}")))?;
        // Offsets are committed once flush returns, so the lines must be on
        // disk, not just in the page cache.
        out.get_ref()
            .sync_data()
            .map_err(|e| ConnectError::Retriable(format!("fsync: {e}")))
    }

    async fn close(&mut self, _partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        self.flush().await
    }

    async fn stop(&mut self) {
        if self.out.is_some() {
            if let Err(e) = self.flush().await {
                tracing::warn!(error = %e, "FileSink: final flush failed");
            }
        }
        self.out = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_connect::ConnectorDefinition;
    use serde_json::json;

    #[tokio::test]
    async fn writes_values_as_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let d = ConnectorDefinition::from_json(&json!({"name": "s", "connector.class": "FileSink",
            "file": path.to_str().unwrap(), "topics": "a, b"}))
        .unwrap();
        let Connector::Sink(conn) = d.config.build().unwrap() else {
            panic!("not a sink")
        };
        assert_eq!(conn.topics(), ["a", "b"]);
        let mut task = conn.create_task();
        task.start(conn.task_configs(3).unwrap().remove(0))
            .await
            .unwrap();
        let rec = |v: Value| SinkRecord {
            topic: "a".into(),
            partition: 0,
            offset: 0,
            key: None,
            value: v,
        };
        task.put(vec![rec(json!("x")), rec(json!({"k": 1}))])
            .await
            .unwrap();
        task.flush().await.unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x\n{\"k\":1}\n");
        task.stop().await;
    }

    #[test]
    fn missing_topics_is_named() {
        let err = ConnectorDefinition::from_json(
            &json!({"name": "s", "connector.class": "FileSink", "file": "/x"}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("topics"), "{err}");
    }
}
