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
    /// Replication factor used when creating the offset topic.
    #[serde(
        rename = "offset.storage.replication.factor",
        default = "one",
        deserialize_with = "lenient::i64"
    )]
    pub offset_storage_replication_factor: i64,
    /// Compacted topic persisting connector configs and target states.
    #[serde(rename = "config.storage.topic", default = "default_config_topic")]
    pub config_storage_topic: String,
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
fn one() -> i64 {
    1
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
        Ok(config)
    }

    /// A config with defaults for everything but the bootstrap servers.
    pub fn new(bootstrap_servers: &str) -> Self {
        WorkerConfig {
            bootstrap_servers: bootstrap_servers.to_string(),
            offset_storage_topic: default_offset_topic(),
            offset_storage_replication_factor: one(),
            config_storage_topic: default_config_topic(),
            rest_port: default_rest_port(),
            key_converter: default_converter(),
            value_converter: default_converter(),
            key_schemas_enable: true,
            value_schemas_enable: true,
            offset_flush_interval_ms: default_flush_ms(),
        }
    }

    pub(super) fn converters(&self) -> (Converter, Converter) {
        let key =
            Converter::from_class(&self.key_converter, self.key_schemas_enable).unwrap_or_default();
        let value = Converter::from_class(&self.value_converter, self.value_schemas_enable)
            .unwrap_or_default();
        (key, value)
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
