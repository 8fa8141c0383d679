//! Per-topic configuration: Kafka's topic configs, their broker-level synonyms and defaults.

use std::collections::BTreeMap;

use super::{find, BrokerConfig, ConfigDef, ConfigType};

const MAX: &str = "9223372036854775807";

macro_rules! def {
    ($name:expr, $kind:ident, $default:expr, $syn:expr, $enforced:expr, $doc:expr) => {
        def!($name, $kind, $default, $syn, &[], $enforced, $doc)
    };
    ($name:expr, $kind:ident, $default:expr, $syn:expr, $allowed:expr, $enforced:expr, $doc:expr) => {
        ConfigDef {
            name: $name,
            kind: ConfigType::$kind,
            default: $default,
            broker_synonym: $syn,
            allowed: $allowed,
            enforced: $enforced,
            doc: $doc,
        }
    };
}

/// Every topic config Kafka 3.x lists in DescribeConfigs, with its default and broker synonym.
pub const TOPIC_CONFIGS: &[ConfigDef] = &[
    def!(
        "cleanup.policy",
        List,
        "delete",
        Some("log.cleanup.policy"),
        &["delete", "compact"],
        true,
        "delete: drop old segments by retention; compact: keep the latest value per key"
    ),
    def!(
        "compression.type",
        String,
        "producer",
        Some("compression.type"),
        &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"],
        true,
        "producer: store batches as sent; a codec: batches in another codec are recompressed"
    ),
    def!(
        "delete.retention.ms",
        Long,
        "86400000",
        Some("log.cleaner.delete.retention.ms"),
        true,
        "How long compaction keeps tombstones"
    ),
    def!(
        "file.delete.delay.ms",
        Long,
        "60000",
        Some("log.segment.delete.delay.ms"),
        false,
        "Segments are deleted at once"
    ),
    def!(
        "flush.messages",
        Long,
        MAX,
        Some("log.flush.interval.messages"),
        true,
        "fsync after this many appended batches' records"
    ),
    def!(
        "flush.ms",
        Long,
        MAX,
        Some("log.flush.interval.ms"),
        true,
        "fsync when the oldest unflushed write is this old"
    ),
    def!(
        "follower.replication.throttled.replicas",
        List,
        "",
        None,
        false,
        "No replication on one broker"
    ),
    def!(
        "index.interval.bytes",
        Int,
        "4096",
        Some("log.index.interval.bytes"),
        true,
        "Bytes between offset/time index entries"
    ),
    def!(
        "leader.replication.throttled.replicas",
        List,
        "",
        None,
        false,
        "No replication on one broker"
    ),
    def!(
        "local.retention.bytes",
        Long,
        "-2",
        None,
        false,
        "No tiered storage"
    ),
    def!(
        "local.retention.ms",
        Long,
        "-2",
        None,
        false,
        "No tiered storage"
    ),
    def!(
        "max.compaction.lag.ms",
        Long,
        MAX,
        Some("log.cleaner.max.compaction.lag.ms"),
        false,
        "Compaction runs every retention check"
    ),
    def!(
        "max.message.bytes",
        Int,
        "1048588",
        Some("message.max.bytes"),
        true,
        "Largest record batch accepted"
    ),
    def!(
        "message.downconversion.enable",
        Boolean,
        "true",
        Some("log.message.downconversion.enable"),
        false,
        "Fetch below v4 is not offered"
    ),
    def!(
        "message.timestamp.difference.max.ms",
        Long,
        MAX,
        Some("log.message.timestamp.difference.max.ms"),
        true,
        "Reject CreateTime batches further than this from broker time"
    ),
    def!(
        "message.timestamp.before.max.ms",
        Long,
        MAX,
        Some("log.message.timestamp.before.max.ms"),
        true,
        "Reject CreateTime records older than this relative to broker time (KIP-937)"
    ),
    def!(
        "message.timestamp.after.max.ms",
        Long,
        MAX,
        Some("log.message.timestamp.after.max.ms"),
        true,
        "Reject CreateTime records newer than this relative to broker time (KIP-937)"
    ),
    def!(
        "message.timestamp.type",
        String,
        "CreateTime",
        Some("log.message.timestamp.type"),
        &["CreateTime", "LogAppendTime"],
        true,
        "LogAppendTime: the broker stamps batches on append"
    ),
    def!(
        "min.cleanable.dirty.ratio",
        Double,
        "0.5",
        Some("log.cleaner.min.cleanable.ratio"),
        true,
        "Compact when this share of the log is uncleaned"
    ),
    def!(
        "min.compaction.lag.ms",
        Long,
        "0",
        Some("log.cleaner.min.compaction.lag.ms"),
        true,
        "Records younger than this are not compacted away"
    ),
    def!(
        "min.insync.replicas",
        Int,
        "1",
        Some("min.insync.replicas"),
        true,
        "acks=all needs this many in-sync replicas (one broker: 1)"
    ),
    def!(
        "preallocate",
        Boolean,
        "false",
        Some("log.preallocate"),
        false,
        "Segments are not preallocated"
    ),
    def!(
        "remote.storage.enable",
        Boolean,
        "false",
        None,
        false,
        "No tiered storage"
    ),
    def!(
        "retention.bytes",
        Long,
        "-1",
        Some("log.retention.bytes"),
        true,
        "Delete oldest segments while a partition is larger than this"
    ),
    def!(
        "retention.ms",
        Long,
        "604800000",
        Some("log.retention.ms"),
        true,
        "Delete segments whose newest record is older than this"
    ),
    def!(
        "segment.bytes",
        Int,
        "1073741824",
        Some("log.segment.bytes"),
        true,
        "Roll a new segment at this size"
    ),
    def!(
        "segment.index.bytes",
        Int,
        "10485760",
        Some("log.index.size.max.bytes"),
        false,
        "Indexes grow as needed"
    ),
    def!(
        "segment.jitter.ms",
        Long,
        "0",
        Some("log.roll.jitter.ms"),
        false,
        "No roll jitter"
    ),
    def!(
        "segment.ms",
        Long,
        "604800000",
        Some("log.roll.ms"),
        true,
        "Roll a new segment when the active one is this old"
    ),
    def!(
        "unclean.leader.election.enable",
        Boolean,
        "false",
        Some("unclean.leader.election.enable"),
        false,
        "One broker: no leader election"
    ),
];

/// How a topic's old data is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanupPolicy {
    /// Delete whole segments by retention.ms / retention.bytes.
    pub delete: bool,
    /// Keep only the latest record per key.
    pub compact: bool,
}

/// Which timestamp records carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// The producer's timestamp.
    CreateTime,
    /// The broker's clock when the batch was appended.
    LogAppendTime,
}

/// A topic's effective configuration: defaults, broker settings and topic overrides resolved.
#[derive(Debug, Clone)]
pub struct TopicConfig {
    /// The topic-level overrides as set by the user.
    pub overrides: BTreeMap<String, String>,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `compression.type` as a codec id; `None` for `producer`.
    pub compression: Option<u8>,
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// `flush.messages`.
    pub flush_messages: i64,
    /// `flush.ms`.
    pub flush_ms: i64,
    /// `index.interval.bytes`.
    pub index_interval_bytes: u32,
    /// `max.message.bytes`.
    pub max_message_bytes: usize,
    /// How far before broker time a CreateTime record may be: `message.timestamp.before.max.ms`,
    /// tightened by the deprecated `message.timestamp.difference.max.ms`.
    pub timestamp_before_max_ms: i64,
    /// How far after broker time: `message.timestamp.after.max.ms` and `difference.max.ms`.
    pub timestamp_after_max_ms: i64,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `retention.bytes`.
    pub retention_bytes: i64,
    /// `retention.ms`.
    pub retention_ms: i64,
    /// `segment.bytes`.
    pub segment_bytes: u64,
    /// `segment.ms`.
    pub segment_ms: i64,
    /// Broker-wide cleaner settings, carried here so a compaction pass reads one config.
    pub cleaner: CleanerConfig,
}

/// The broker's `log.cleaner.*` memory settings (one cleaner thread: all of it is its budget).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanerConfig {
    /// `log.cleaner.dedupe.buffer.size`: bytes of the key → offset map.
    pub dedupe_buffer_size: u64,
    /// `log.cleaner.io.buffer.size`: bytes of read plus write buffer.
    pub io_buffer_size: usize,
    /// `log.cleaner.io.buffer.load.factor`: the share of map slots a pass may fill.
    pub load_factor: f64,
}

impl CleanerConfig {
    /// The cleaner settings of `broker` (defaults where unset).
    pub fn from_broker(broker: &BrokerConfig) -> CleanerConfig {
        broker.settings().cleaner
    }
}

impl TopicConfig {
    /// Resolves overrides against the broker config; an unknown key or bad value is an error naming it.
    pub fn resolve(
        overrides: BTreeMap<String, String>,
        broker: &BrokerConfig,
    ) -> Result<Self, String> {
        for (k, v) in &overrides {
            let def =
                find(TOPIC_CONFIGS, k).ok_or_else(|| format!("unknown topic config '{k}'"))?;
            def.validate(v)?;
        }
        if let Some(v) = overrides.get("segment.bytes") {
            if v.trim().parse::<i64>().unwrap_or(0) < 14 {
                return Err(format!(
                    "invalid value '{v}' for config 'segment.bytes': must be at least 14"
                ));
            }
        }
        let value = |name: &str| -> String { effective_value(name, &overrides, broker).0 };
        let long = |name: &str| -> i64 { value(name).trim().parse().unwrap_or(i64::MAX) };
        let policy = value("cleanup.policy");
        let cleanup_policy = CleanupPolicy {
            delete: policy.split(',').any(|p| p.trim() == "delete"),
            compact: policy.split(',').any(|p| p.trim() == "compact"),
        };
        let timestamp_type =
            if value("message.timestamp.type").eq_ignore_ascii_case("LogAppendTime") {
                TimestampType::LogAppendTime
            } else {
                TimestampType::CreateTime
            };
        Ok(TopicConfig {
            cleanup_policy,
            compression: crate::log::codec::codec_id(&value("compression.type")),
            delete_retention_ms: long("delete.retention.ms"),
            flush_messages: long("flush.messages").max(1),
            flush_ms: long("flush.ms"),
            index_interval_bytes: long("index.interval.bytes").clamp(0, u32::MAX as i64) as u32,
            max_message_bytes: long("max.message.bytes").max(0) as usize,
            timestamp_before_max_ms: long("message.timestamp.before.max.ms")
                .min(long("message.timestamp.difference.max.ms"))
                .max(0),
            timestamp_after_max_ms: long("message.timestamp.after.max.ms")
                .min(long("message.timestamp.difference.max.ms"))
                .max(0),
            timestamp_type,
            min_cleanable_dirty_ratio: value("min.cleanable.dirty.ratio")
                .trim()
                .parse()
                .unwrap_or(0.5),
            min_compaction_lag_ms: long("min.compaction.lag.ms"),
            retention_bytes: long("retention.bytes"),
            retention_ms: long("retention.ms"),
            segment_bytes: long("segment.bytes").max(14) as u64,
            segment_ms: long("segment.ms"),
            cleaner: CleanerConfig::from_broker(broker),
            overrides,
        })
    }
}

/// Where a config value came from, as DescribeConfigs' `config_source` numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConfigSource {
    DynamicTopic = 1,
    StaticBroker = 4,
    Default = 5,
}

/// The effective value of topic config `name` and where it came from.
pub(crate) fn effective_value(
    name: &str,
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
) -> (String, ConfigSource) {
    if let Some(v) = overrides.get(name) {
        return (v.clone(), ConfigSource::DynamicTopic);
    }
    let def = find(TOPIC_CONFIGS, name);
    if let Some(syn) = def.and_then(|d| d.broker_synonym) {
        if broker.is_set(syn) {
            return (
                broker.get(syn).unwrap_or_default().to_string(),
                ConfigSource::StaticBroker,
            );
        }
        if name == "segment.ms" || name == "retention.ms" {
            // Kafka derives these from log.roll.hours / log.retention.hours when the ms form is unset.
            return (
                broker.get(syn).unwrap_or_default().to_string(),
                ConfigSource::Default,
            );
        }
    }
    (
        def.map(|d| d.default).unwrap_or_default().to_string(),
        ConfigSource::Default,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaner_settings_come_from_the_broker_and_are_range_checked() {
        let cfg = TopicConfig::resolve(BTreeMap::new(), &BrokerConfig::default()).unwrap();
        assert_eq!(
            cfg.cleaner,
            CleanerConfig {
                dedupe_buffer_size: 134217728,
                io_buffer_size: 524288,
                load_factor: 0.9
            }
        );
        let broker = |k: &str, v: &str| {
            BrokerConfig::from_overrides([(k.to_string(), v.to_string())].into_iter().collect())
        };
        let b = broker("log.cleaner.dedupe.buffer.size", "67108864").unwrap();
        let cfg = TopicConfig::resolve(BTreeMap::new(), &b).unwrap();
        assert_eq!(cfg.cleaner.dedupe_buffer_size, 64 << 20);
        assert!(broker("log.cleaner.dedupe.buffer.size", "100").is_err());
        assert!(broker("log.cleaner.io.buffer.size", "-1").is_err());
        assert!(broker("log.cleaner.io.buffer.load.factor", "0").is_err());
        assert!(broker("log.cleaner.io.buffer.load.factor", "1.5").is_err());
        assert!(broker("log.cleaner.io.buffer.load.factor", "0.5").is_ok());
    }

    #[test]
    fn resolves_defaults_and_overrides() {
        let broker = BrokerConfig::default();
        let cfg = TopicConfig::resolve(BTreeMap::new(), &broker).unwrap();
        assert_eq!(cfg.retention_ms, 604_800_000);
        assert_eq!(cfg.segment_bytes, 1_073_741_824);
        assert!(cfg.cleanup_policy.delete && !cfg.cleanup_policy.compact);
        let mut o = BTreeMap::new();
        o.insert("cleanup.policy".to_string(), "compact,delete".to_string());
        o.insert("retention.ms".to_string(), "1000".to_string());
        let cfg = TopicConfig::resolve(o, &broker).unwrap();
        assert!(cfg.cleanup_policy.delete && cfg.cleanup_policy.compact);
        assert_eq!(cfg.retention_ms, 1000);
    }

    #[test]
    fn rejects_unknown_and_bad_values() {
        let broker = BrokerConfig::default();
        let mut o = BTreeMap::new();
        o.insert("retention.msx".to_string(), "1".to_string());
        assert!(TopicConfig::resolve(o, &broker)
            .unwrap_err()
            .contains("retention.msx"));
        let mut o = BTreeMap::new();
        o.insert("cleanup.policy".to_string(), "shred".to_string());
        assert!(TopicConfig::resolve(o, &broker).is_err());
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "soon".to_string());
        assert!(TopicConfig::resolve(o, &broker).is_err());
    }

    #[test]
    fn broker_settings_are_topic_defaults() {
        let mut b = BTreeMap::new();
        b.insert("log.retention.ms".to_string(), "5000".to_string());
        let broker = BrokerConfig::from_overrides(b).unwrap();
        let cfg = TopicConfig::resolve(BTreeMap::new(), &broker).unwrap();
        assert_eq!(cfg.retention_ms, 5000);
        let (_, src) = effective_value("retention.ms", &BTreeMap::new(), &broker);
        assert_eq!(src, ConfigSource::StaticBroker);
    }
}
