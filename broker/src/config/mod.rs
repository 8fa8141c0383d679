//! Broker and topic configuration: Kafka's names, types and defaults.

mod broker;
mod settings;
mod topic;

pub use broker::{BrokerConfig, BROKER_CONFIGS};
pub(crate) use find as find_def;
pub use settings::{BrokerSettings, GroupSettings};
pub(crate) use topic::{effective_value, ConfigSource};
pub use topic::{TimestampType, TopicConfig, TOPIC_CONFIGS};

/// The type of a config value, numbered as DescribeConfigs v3+ reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// `true` or `false`.
    Boolean = 1,
    /// Free text, possibly restricted to a set of values.
    String = 2,
    /// A 32-bit integer.
    Int = 3,
    /// A 64-bit integer.
    Long = 5,
    /// A floating point number.
    Double = 6,
    /// A comma-separated list.
    List = 7,
}

/// The definition of one config key: name, type, default and whether Brook acts on it.
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    /// The Kafka config name.
    pub name: &'static str,
    /// Value type.
    pub kind: ConfigType,
    /// Default value as Kafka prints it.
    pub default: &'static str,
    /// For topic configs, the broker config that supplies the default.
    pub broker_synonym: Option<&'static str>,
    /// Allowed values, when the config is an enumeration.
    pub allowed: &'static [&'static str],
    /// Whether Brook enforces it (false: accepted and reported for compatibility).
    pub enforced: bool,
    /// One line on what it does in Brook.
    pub doc: &'static str,
}

impl ConfigDef {
    /// Checks that `value` parses as this config's type and allowed values.
    pub fn validate(&self, value: &str) -> Result<(), String> {
        let bad = |what: &str| {
            Err(format!(
                "invalid value '{value}' for config '{}': {what}",
                self.name
            ))
        };
        match self.kind {
            ConfigType::Boolean => {
                if !matches!(value, "true" | "false") {
                    return bad("expected true or false");
                }
            }
            ConfigType::Int => {
                if value.trim().parse::<i32>().is_err() {
                    return bad("expected a 32-bit integer");
                }
            }
            ConfigType::Long => {
                if value.trim().parse::<i64>().is_err() {
                    return bad("expected an integer");
                }
            }
            ConfigType::Double => {
                if value.trim().parse::<f64>().is_err() {
                    return bad("expected a number");
                }
            }
            ConfigType::String | ConfigType::List => {}
        }
        if !self.allowed.is_empty() {
            let items: Vec<&str> = if self.kind == ConfigType::List {
                value.split(',').map(str::trim).collect()
            } else {
                vec![value]
            };
            for item in items {
                if !self.allowed.iter().any(|a| a.eq_ignore_ascii_case(item)) {
                    return bad(&format!("must be one of {}", self.allowed.join(", ")));
                }
            }
        }
        Ok(())
    }
}

pub(crate) fn find(defs: &'static [ConfigDef], name: &str) -> Option<&'static ConfigDef> {
    defs.iter().find(|d| d.name == name)
}
