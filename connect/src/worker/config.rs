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
    /// Compacted topic receiving connector and task statuses.
    #[serde(rename = "status.storage.topic", default = "default_status_topic")]
    pub status_storage_topic: String,
    /// Replication factor of the status topic when the worker creates it; -1 means the
    /// cluster's `default.replication.factor`.
    #[serde(
        rename = "status.storage.replication.factor",
        default = "broker_default",
        deserialize_with = "lenient::i64"
    )]
    pub status_storage_replication_factor: i64,
    /// Partitions of the status topic when the worker creates it; -1 means the cluster's
    /// `num.partitions`.
    #[serde(
        rename = "status.storage.partitions",
        default = "default_status_partitions",
        deserialize_with = "lenient::i64"
    )]
    pub status_storage_partitions: i64,
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
fn default_status_topic() -> String {
    "connect-status".into()
}
/// Kafka Connect's default.
fn default_status_partitions() -> i64 {
    5
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
        config.replication_factors()?;
        config.status_partitions()?;
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
            status_storage_topic: default_status_topic(),
            status_storage_replication_factor: broker_default(),
            status_storage_partitions: default_status_partitions(),
            rest_port: default_rest_port(),
            key_converter: default_converter(),
            value_converter: default_converter(),
            key_schemas_enable: true,
            value_schemas_enable: true,
            offset_flush_interval_ms: default_flush_ms(),
        }
    }

    /// The replication factors of the offset, config and status topics, in that order, as
    /// CreateTopics takes them.
    pub(super) fn replication_factors(&self) -> Result<[i32; 3], WorkerError> {
        let mut factors = [0; 3];
        for (factor, (name, value)) in factors.iter_mut().zip([
            (
                "offset.storage.replication.factor",
                self.offset_storage_replication_factor,
            ),
            (
                "config.storage.replication.factor",
                self.config_storage_replication_factor,
            ),
            (
                "status.storage.replication.factor",
                self.status_storage_replication_factor,
            ),
        ]) {
            *factor = minus_one_or_positive(name, value, REPLICAS)?;
        }
        Ok(factors)
    }

    /// The status topic's partition count, as CreateTopics takes it.
    pub(super) fn status_partitions(&self) -> Result<i32, WorkerError> {
        minus_one_or_positive(
            "status.storage.partitions",
            self.status_storage_partitions,
            PARTITIONS,
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

/// `(what is counted, the cluster config that -1 stands for, the largest count)`.
type Count = (&'static str, &'static str, i32);
const REPLICAS: Count = ("replicas", "default.replication.factor", i16::MAX as i32);
const PARTITIONS: Count = ("partitions", "num.partitions", i32::MAX);

/// A replication factor or partition count, or -1 for the cluster's default (KIP-464), as
/// Kafka Connect accepts them.
fn minus_one_or_positive(
    name: &str,
    value: i64,
    (what, default, max): Count,
) -> Result<i32, WorkerError> {
    match i32::try_from(value) {
        Ok(v) if v == -1 || (1..=max).contains(&v) => Ok(v),
        _ => Err(WorkerError::InvalidWorkerConfig(format!(
            "{name}={value}: must be -1 (the cluster's {default}) or a positive number of {what} up to {max}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The status topic's settings: Kafka Connect's names and defaults (but -1 replicas, as
    /// for the other internal topics), -1 or a positive count.
    #[test]
    fn status_storage_configs_are_validated() {
        let c = WorkerConfig::new("b");
        assert_eq!(c.status_storage_topic, "connect-status");
        assert_eq!(c.status_partitions().unwrap(), 5);
        assert_eq!(c.replication_factors().unwrap()[2], -1);
        let parsed = |extra: Value| {
            let mut config = json!({"bootstrap.servers": "b"});
            config
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            WorkerConfig::from_json(&config)
        };
        assert_eq!(parsed(json!({})).unwrap(), c);
        let c = parsed(
            json!({"status.storage.topic": "st", "status.storage.partitions": "-1",
            "status.storage.replication.factor": "1"}),
        )
        .unwrap();
        assert_eq!(c.status_storage_topic, "st");
        assert_eq!(c.status_partitions().unwrap(), -1);
        assert_eq!(c.replication_factors().unwrap()[2], 1);
        assert_eq!(
            parsed(json!({"status.storage.partitions": 2147483647}))
                .unwrap()
                .status_partitions()
                .unwrap(),
            i32::MAX
        );
        for (key, bad) in [
            ("status.storage.partitions", json!(0)),
            ("status.storage.partitions", json!(-2)),
            ("status.storage.partitions", json!(2147483648_i64)),
            ("status.storage.replication.factor", json!(0)),
            ("status.storage.replication.factor", json!(-5)),
            ("status.storage.replication.factor", json!(32768)),
        ] {
            let extra = Value::Object([(key.to_string(), bad.clone())].into_iter().collect());
            let err = parsed(extra).unwrap_err().to_string();
            assert!(err.contains(&format!("{key}={bad}")), "{err}");
        }
        let err = parsed(json!({"status.storage.partitions": "many"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"many\""), "{err}");
    }

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
        assert_eq!(c.replication_factors().unwrap(), [-1, -1, -1]);
        let c = WorkerConfig::from_json(&json!({"bootstrap.servers": "b",
            "offset.storage.replication.factor": "3", "config.storage.replication.factor": 2,
            "status.storage.replication.factor": 32767}))
        .unwrap();
        assert_eq!(c.replication_factors().unwrap(), [3, 2, 32767]);
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
