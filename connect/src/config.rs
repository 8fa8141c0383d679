//! Connector configuration: the keys the runtime owns plus the typed,
//! class-specific part registered by class name with `typetag`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::connector::{ConnectError, Connector};
use crate::converter::Converter;

/// A connector's class-specific configuration, registered under its class
/// name so `{"connector.class": "FileTailSource", ...}` picks the right type.
///
/// Implementations should use `#[serde(deny_unknown_fields)]` so a misspelt
/// key is reported by name before anything starts.
#[typetag::serde(tag = "connector.class")]
pub trait ConnectorConfig: std::fmt::Debug + Send + Sync {
    /// Builds the connector described by this configuration.
    fn build(&self) -> Result<Connector, ConnectError>;
}

/// A configuration problem, reported before anything starts.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration is not a JSON object.
    #[error("connector config must be a JSON object")]
    NotAnObject,
    /// The `name` key is missing or empty.
    #[error("connector config is missing a non-empty \"name\"")]
    MissingName,
    /// The `connector.class` key is missing.
    #[error("connector {name:?}: missing \"connector.class\"")]
    MissingClass {
        /// Connector name.
        name: String,
    },
    /// A runtime-owned key (tasks.max, converters, errors.*) is invalid.
    #[error("connector {name:?}: {message}")]
    Settings {
        /// Connector name.
        name: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// The class is unknown, or a class-specific key is unknown or mistyped.
    #[error("connector {name:?} ({class}): {message}")]
    Connector {
        /// Connector name.
        name: String,
        /// Value of connector.class.
        class: String,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// What to do with a record that fails conversion or delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorTolerance {
    /// Fail the task on the first bad record (Kafka Connect's default).
    #[default]
    None,
    /// Skip bad records (sending them to the DLQ when one is configured).
    All,
}

/// The runtime-owned keys every connector config may carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorSettings {
    /// Unique connector name.
    pub name: String,
    /// Upper bound on the number of tasks.
    #[serde(
        rename = "tasks.max",
        default = "one",
        deserialize_with = "lenient::usize"
    )]
    pub tasks_max: usize,
    /// Key converter class overriding the worker's.
    #[serde(rename = "key.converter", default)]
    pub key_converter: Option<String>,
    /// Value converter class overriding the worker's.
    #[serde(rename = "value.converter", default)]
    pub value_converter: Option<String>,
    /// Whether the JSON key converter uses the schema envelope.
    #[serde(
        rename = "key.converter.schemas.enable",
        default,
        deserialize_with = "lenient::opt_bool"
    )]
    pub key_schemas_enable: Option<bool>,
    /// Whether the JSON value converter uses the schema envelope.
    #[serde(
        rename = "value.converter.schemas.enable",
        default,
        deserialize_with = "lenient::opt_bool"
    )]
    pub value_schemas_enable: Option<bool>,
    /// errors.tolerance: none | all.
    #[serde(rename = "errors.tolerance", default)]
    pub errors_tolerance: ErrorTolerance,
    /// Dead letter queue topic for sink records that fail (tolerance=all).
    #[serde(rename = "errors.deadletterqueue.topic.name", default)]
    pub dlq_topic: Option<String>,
    /// Whether DLQ records carry `__connect.errors.*` context headers.
    #[serde(
        rename = "errors.deadletterqueue.context.headers.enable",
        default,
        deserialize_with = "lenient::opt_bool"
    )]
    pub dlq_context_headers: Option<bool>,
    /// Total time to retry a retriable failure, in ms (0 = no retries, -1 = forever).
    #[serde(
        rename = "errors.retry.timeout",
        default,
        deserialize_with = "lenient::i64"
    )]
    pub retry_timeout_ms: i64,
    /// Upper bound on the backoff between retries, in ms.
    #[serde(
        rename = "errors.retry.delay.max.ms",
        default = "sixty_seconds",
        deserialize_with = "lenient::i64"
    )]
    pub retry_delay_max_ms: i64,
    /// Whether failures are logged.
    #[serde(
        rename = "errors.log.enable",
        default,
        deserialize_with = "lenient::opt_bool"
    )]
    pub errors_log_enable: Option<bool>,
}

fn one() -> usize {
    1
}

fn sixty_seconds() -> i64 {
    60_000
}

/// Keys owned by the runtime; everything else goes to the connector class.
const SETTINGS_KEYS: &[&str] = &[
    "name",
    "tasks.max",
    "key.converter",
    "value.converter",
    "key.converter.schemas.enable",
    "value.converter.schemas.enable",
    "errors.tolerance",
    "errors.deadletterqueue.topic.name",
    "errors.deadletterqueue.context.headers.enable",
    "errors.retry.timeout",
    "errors.retry.delay.max.ms",
    "errors.log.enable",
];

/// A fully parsed connector configuration.
#[derive(Debug)]
pub struct ConnectorDefinition {
    /// Runtime-owned settings.
    pub settings: ConnectorSettings,
    /// Value of connector.class.
    pub class: String,
    /// Class-specific configuration.
    pub config: Box<dyn ConnectorConfig>,
    /// The configuration exactly as given (what GET /connectors/{name}/config returns).
    pub raw: Map<String, Value>,
}

impl ConnectorDefinition {
    /// Parses and validates a connector configuration, naming any bad key.
    pub fn from_json(value: &Value) -> Result<Self, ConfigError> {
        let raw = value.as_object().ok_or(ConfigError::NotAnObject)?.clone();
        let name = match raw.get("name") {
            Some(Value::String(n)) if !n.is_empty() => n.clone(),
            _ => return Err(ConfigError::MissingName),
        };
        let class = match raw.get("connector.class") {
            Some(Value::String(c)) => c.clone(),
            _ => return Err(ConfigError::MissingClass { name }),
        };
        // Split the map: flattening both parts into one struct would defeat
        // deny_unknown_fields, which is what names misspelt keys.
        let (settings_map, class_map): (Map<String, Value>, Map<String, Value>) = raw
            .clone()
            .into_iter()
            .partition(|(k, _)| SETTINGS_KEYS.contains(&k.as_str()));
        let settings: ConnectorSettings = serde_json::from_value(Value::Object(settings_map))
            .map_err(|e| ConfigError::Settings {
                name: name.clone(),
                message: e.to_string(),
            })?;
        if settings.tasks_max == 0 {
            return Err(ConfigError::Settings {
                name,
                message: "tasks.max must be at least 1".into(),
            });
        }
        for (key, class) in [
            ("key.converter", &settings.key_converter),
            ("value.converter", &settings.value_converter),
        ] {
            if let Some(class) = class {
                Converter::from_class(class, false).map_err(|e| ConfigError::Settings {
                    name: name.clone(),
                    message: format!("{key}: {e}"),
                })?;
            }
        }
        let config: Box<dyn ConnectorConfig> = serde_json::from_value(Value::Object(class_map))
            .map_err(|e| ConfigError::Connector {
                name: name.clone(),
                class: class.clone(),
                message: e.to_string(),
            })?;
        Ok(ConnectorDefinition {
            settings,
            class,
            config,
            raw,
        })
    }

    /// The key converter: the connector's override, else the worker default.
    pub fn key_converter(&self, worker_default: &Converter) -> Converter {
        self.converter(
            &self.settings.key_converter,
            self.settings.key_schemas_enable,
            worker_default,
        )
    }

    /// The value converter: the connector's override, else the worker default.
    pub fn value_converter(&self, worker_default: &Converter) -> Converter {
        self.converter(
            &self.settings.value_converter,
            self.settings.value_schemas_enable,
            worker_default,
        )
    }

    fn converter(
        &self,
        class: &Option<String>,
        schemas: Option<bool>,
        default: &Converter,
    ) -> Converter {
        match class {
            // Validated in from_json, so the fallback is unreachable in practice.
            Some(class) => Converter::from_class(class, schemas.unwrap_or(true))
                .unwrap_or_else(|_| default.clone()),
            None => match (default, schemas) {
                (Converter::Json { .. }, Some(enabled)) => Converter::Json {
                    schemas_enable: enabled,
                },
                _ => default.clone(),
            },
        }
    }
}

/// Deserialisers accepting Kafka Connect's all-strings style (`"tasks.max": "2"`)
/// as well as native JSON numbers and booleans.
pub mod lenient {
    use serde::{de::Error, Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrText {
        Num(i64),
        Text(String),
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BoolOrText {
        Bool(bool),
        Text(String),
    }

    /// An `i64` given as a number or a decimal string.
    pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        match NumOrText::deserialize(d).map_err(|_| D::Error::custom("expected an integer"))? {
            NumOrText::Num(n) => Ok(n),
            NumOrText::Text(t) => t
                .trim()
                .parse()
                .map_err(|_| D::Error::custom(format!("expected an integer, got {t:?}"))),
        }
    }

    /// A `u64` given as a number or a decimal string.
    pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let n = i64(d)?;
        u64::try_from(n)
            .map_err(|_| D::Error::custom(format!("expected a non-negative integer, got {n}")))
    }

    /// A `usize` given as a number or a decimal string.
    pub fn usize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        let n = u64(d)?;
        usize::try_from(n).map_err(|_| D::Error::custom(format!("integer {n} is too large")))
    }

    /// A `bool` given as a boolean or "true"/"false".
    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        match BoolOrText::deserialize(d).map_err(|_| D::Error::custom("expected true or false"))? {
            BoolOrText::Bool(b) => Ok(b),
            BoolOrText::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(D::Error::custom(format!(
                    "expected true or false, got {t:?}"
                ))),
            },
        }
    }

    /// An optional `bool`; use with `#[serde(default)]`.
    pub fn opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        bool(d).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::{SourceConnector, SourceTask, TaskConfig};
    use serde_json::json;

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct DummySource {
        topic: String,
        #[serde(rename = "batch.size", default, deserialize_with = "lenient::usize")]
        batch_size: usize,
    }

    struct Dummy;
    impl SourceConnector for Dummy {
        fn task_configs(&self, _max: usize) -> Result<Vec<TaskConfig>, ConnectError> {
            Ok(vec![TaskConfig::new()])
        }
        fn create_task(&self) -> Box<dyn SourceTask> {
            unreachable!("not used by config tests")
        }
    }

    #[typetag::serde(name = "DummySource")]
    impl ConnectorConfig for DummySource {
        fn build(&self) -> Result<Connector, ConnectError> {
            Ok(Connector::Source(Box::new(Dummy)))
        }
    }

    fn parse(v: Value) -> Result<ConnectorDefinition, ConfigError> {
        ConnectorDefinition::from_json(&v)
    }

    #[test]
    fn parses_typed_config_with_string_numbers() {
        let def = parse(
            json!({"name": "a", "connector.class": "DummySource", "tasks.max": "3",
            "topic": "t", "batch.size": "10", "errors.tolerance": "all"}),
        )
        .unwrap();
        assert_eq!(def.settings.tasks_max, 3);
        assert_eq!(def.settings.errors_tolerance, ErrorTolerance::All);
        assert_eq!(def.class, "DummySource");
        assert!(matches!(def.config.build().unwrap(), Connector::Source(_)));
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse(
            json!({"name": "a", "connector.class": "DummySource", "topic": "t", "topik": "x"}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("topik"), "{err}");
        assert!(err.contains("\"a\""), "{err}");
    }

    #[test]
    fn wrongly_typed_key_is_named() {
        let err = parse(json!({"name": "a", "connector.class": "DummySource", "topic": "t", "batch.size": "lots"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("lots"), "{err}");
        let err = parse(
            json!({"name": "a", "connector.class": "DummySource", "topic": "t", "tasks.max": "x"}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("integer"), "{err}");
    }

    #[test]
    fn unknown_class_and_missing_keys() {
        let err = parse(json!({"name": "a", "connector.class": "Nope"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("Nope"), "{err}");
        assert!(matches!(
            parse(json!({"connector.class": "DummySource"})),
            Err(ConfigError::MissingName)
        ));
        assert!(matches!(
            parse(json!({"name": "a"})),
            Err(ConfigError::MissingClass { .. })
        ));
        let err = parse(json!({"name": "a", "connector.class": "DummySource"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("topic"), "{err}");
        let err = parse(
            json!({"name": "a", "connector.class": "DummySource", "topic": "t", "tasks.max": 0}),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("tasks.max"), "{err}");
    }

    #[test]
    fn converter_overrides() {
        let def = parse(
            json!({"name": "a", "connector.class": "DummySource", "topic": "t",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
            "key.converter.schemas.enable": "false"}),
        )
        .unwrap();
        let worker = Converter::Json {
            schemas_enable: true,
        };
        assert_eq!(def.value_converter(&worker), Converter::String);
        assert_eq!(
            def.key_converter(&worker),
            Converter::Json {
                schemas_enable: false
            }
        );
        let err = parse(json!({"name": "a", "connector.class": "DummySource", "topic": "t", "value.converter": "Avro"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("value.converter"), "{err}");
    }
}
