//! The standalone worker's own configuration (the worker properties).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::WorkerError;
use crate::config::lenient;
use crate::converter::Converter;

/// Worker configuration (the standalone worker properties, as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Kafka bootstrap servers.
    #[serde(rename = "bootstrap.servers")]
    pub bootstrap_servers: String,
    /// Compacted topic holding source offsets.
    #[serde(rename = "offset.storage.topic", default = "default_offset_topic")]
    pub offset_storage_topic: String,
    /// Replication factor of the offset topic when the worker creates it; -1 means the
    /// cluster's `default.replication.factor`.
    #[serde(
        rename = "offset.storage.replication.factor",
        default = "broker_default",
        deserialize_with = "lenient::i64"
    )]
    pub offset_storage_replication_factor: i64,
    /// Compacted topic persisting connector configs and target states.
    #[serde(rename = "config.storage.topic", default = "default_config_topic")]
    pub config_storage_topic: String,
    /// Replication factor of the config topic when the worker creates it; -1 means the
    /// cluster's `default.replication.factor`.
    #[serde(
        rename = "config.storage.replication.factor",
        default = "broker_default",
        deserialize_with = "lenient::i64"
    )]
    pub config_storage_replication_factor: i64,
    /// REST API port; 0 picks a free port.
    #[serde(
        rename = "rest.port",
        default = "default_rest_port",
        deserialize_with = "lenient::u64"
    )]
    pub rest_port: u64,
    /// Default key converter class.
    #[serde(rename = "key.converter", default = "default_converter")]
    pub key_converter: String,
    /// Default value converter class.
    #[serde(rename = "value.converter", default = "default_converter")]
    pub value_converter: String,
    /// Whether the default JSON key converter uses the schema envelope.
    #[serde(
        rename = "key.converter.schemas.enable",
        default = "yes",
        deserialize_with = "lenient::bool"
    )]
    pub key_schemas_enable: bool,
    /// Whether the default JSON value converter uses the schema envelope.
    #[serde(
        rename = "value.converter.schemas.enable",
        default = "yes",
        deserialize_with = "lenient::bool"
    )]
    pub value_schemas_enable: bool,
    /// How often sink tasks flush and commit consumer offsets.
    #[serde(
        rename = "offset.flush.interval.ms",
        default = "default_flush_ms",
        deserialize_with = "lenient::u64"
    )]
    pub offset_flush_interval_ms: u64,
}

fn default_offset_topic() -> String {
    "connect-offsets".into()
}
fn default_config_topic() -> String {
    "connect-configs".into()
}
/// Kafka Connect's default is 3, which a one-node cluster (Brook's own broker) refuses; -1
/// (KIP-464) lets the cluster decide, so production clusters set `default.replication.factor`.
fn broker_default() -> i64 {
    -1
}
fn default_rest_port() -> u64 {
    8083
}
fn default_converter() -> String {
    "org.apache.kafka.connect.json.JsonConverter".into()
}
fn yes() -> bool {
    true
}
fn default_flush_ms() -> u64 {
    10_000
}

impl WorkerConfig {
    /// Parses a worker config, naming unknown or mistyped keys.
    pub fn from_json(value: &Value) -> Result<Self, WorkerError> {
        let config: WorkerConfig = serde_json::from_value(value.clone())
            .map_err(|e| WorkerError::InvalidWorkerConfig(e.to_string()))?;
        for class in [&config.key_converter, &config.value_converter] {
            Converter::from_class(class, true)
                .map_err(|e| WorkerError::InvalidWorkerConfig(e.to_string()))?;
        }
        u16::try_from(config.rest_port).map_err(|_| {
            WorkerError::InvalidWorkerConfig(format!(
                "rest.port {} is not a port",
                config.rest_port
            ))
        })?;
        for (name, rf) in [
            (
                "offset.storage.replication.factor",
                config.offset_storage_replication_factor,
            ),
            (
                "config.storage.replication.factor",
                config.config_storage_replication_factor,
            ),
        ] {
            replication_factor(name, rf)?;
        }
        Ok(config)
    }

    /// A config with defaults for everything but the bootstrap servers.
    pub fn new(bootstrap_servers: &str) -> Self {
        WorkerConfig {
            bootstrap_servers: bootstrap_servers.to_string(),
            offset_storage_topic: default_offset_topic(),
            offset_storage_replication_factor: broker_default(),
            config_storage_topic: default_config_topic(),
            config_storage_replication_factor: broker_default(),
            rest_port: default_rest_port(),
            key_converter: default_converter(),
            value_converter: default_converter(),
            key_schemas_enable: true,
            value_schemas_enable: true,
            offset_flush_interval_ms: default_flush_ms(),
        }
    }

    /// The offset topic's replication factor, as CreateTopics takes it.
    pub(super) fn offset_replication(&self) -> Result<i32, WorkerError> {
        replication_factor(
            "offset.storage.replication.factor",
            self.offset_storage_replication_factor,
        )
    }

    /// The config topic's replication factor, as CreateTopics takes it.
    pub(super) fn config_replication(&self) -> Result<i32, WorkerError> {
        replication_factor(
            "config.storage.replication.factor",
            self.config_storage_replication_factor,
        )
    }

    pub(super) fn converters(&self) -> (Converter, Converter) {
        let key =
            Converter::from_class(&self.key_converter, self.key_schemas_enable).unwrap_or_default();
        let value = Converter::from_class(&self.value_converter, self.value_schemas_enable)
            .unwrap_or_default();
        (key, value)
    }
}

/// A replication factor: -1 (the cluster's default) or 1..=32767, as Kafka Connect accepts.
fn replication_factor(name: &str, value: i64) -> Result<i32, WorkerError> {
    if value == -1 || (1..=i64::from(i16::MAX)).contains(&value) {
        Ok(value as i32)
    } else {
        Err(WorkerError::InvalidWorkerConfig(format!(
            "{name}={value}: must be -1 (the cluster's default.replication.factor) or a positive number of replicas"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn worker_config_defaults_and_errors() {
        let c = WorkerConfig::new("localhost:9092");
        assert_eq!(c.offset_storage_topic, "connect-offsets");
        assert_eq!(c.rest_port, 8083);
        assert_eq!(
            c.converters().1,
            Converter::Json {
                schemas_enable: true
            }
        );
        let err = WorkerConfig::from_json(&json!({"bootstrap.servers": "b", "rest.prot": 1}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("rest.prot"), "{err}");
        let err = WorkerConfig::from_json(&json!({"bootstrap.servers": "b", "rest.port": "70000"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("rest.port"), "{err}");
        assert_eq!(c.offset_replication().unwrap(), -1);
        assert_eq!(c.config_replication().unwrap(), -1);
        let c = WorkerConfig::from_json(&json!({"bootstrap.servers": "b",
            "offset.storage.replication.factor": "3", "config.storage.replication.factor": 2}))
        .unwrap();
        assert_eq!(c.offset_replication().unwrap(), 3);
        assert_eq!(c.config_replication().unwrap(), 2);
        let err = WorkerConfig::from_json(
            &json!({"bootstrap.servers": "b", "config.storage.replication.factor": "0"}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("config.storage.replication.factor=0"), "{err}");
        let c = WorkerConfig::from_json(
            &json!({"bootstrap.servers": "b", "value.converter.schemas.enable": "false"}),
        )
        .unwrap();
        assert_eq!(
            c.converters().1,
            Converter::Json {
                schemas_enable: false
            }
        );
    }
}
