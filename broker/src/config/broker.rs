//! Broker-wide configuration (`--config key=value`), with Kafka's defaults.

use std::collections::BTreeMap;

use super::settings::BrokerSettings;
use super::{find, ConfigDef, ConfigType};
use crate::error::{Error, Result};

const MAX: &str = "9223372036854775807";

macro_rules! def {
    ($name:expr, $kind:ident, $default:expr, $enforced:expr, $doc:expr) => {
        def!($name, $kind, $default, &[], $enforced, $doc)
    };
    ($name:expr, $kind:ident, $default:expr, $allowed:expr, $enforced:expr, $doc:expr) => {
        ConfigDef {
            name: $name,
            kind: ConfigType::$kind,
            default: $default,
            broker_synonym: None,
            allowed: $allowed,
            enforced: $enforced,
            doc: $doc,
        }
    };
}

/// Every broker config Brook knows, with Kafka's default.
pub const BROKER_CONFIGS: &[ConfigDef] = &[
    def!("broker.id", Int, "0", true, "Node id reported in metadata"),
    def!(
        "auto.create.topics.enable",
        Boolean,
        "true",
        true,
        "Create unknown topics named in Metadata requests"
    ),
    def!(
        "num.partitions",
        Int,
        "1",
        true,
        "Partitions of auto-created topics and of CreateTopics with -1"
    ),
    def!(
        "default.replication.factor",
        Int,
        "1",
        true,
        "Replication factor reported for new topics (one broker: only 1 is accepted)"
    ),
    def!(
        "delete.topic.enable",
        Boolean,
        "true",
        true,
        "Whether DeleteTopics is allowed"
    ),
    def!(
        "message.max.bytes",
        Int,
        "1048588",
        true,
        "Default max.message.bytes (largest record batch)"
    ),
    def!(
        "socket.request.max.bytes",
        Int,
        "104857600",
        true,
        "Largest request frame; larger frames close the connection"
    ),
    def!(
        "queued.max.request.bytes",
        Long,
        "536870912",
        true,
        "Memory for requests read but not yet handled, across all connections: when none is free no more requests are read; -1: no limit (Kafka's default is -1)"
    ),
    def!(
        "num.io.threads",
        Int,
        "8",
        true,
        "Threads doing the disk work of requests (appends, reads, fsyncs, coordinator writes)"
    ),
    def!(
        "fetch.max.bytes",
        Int,
        "57671680",
        true,
        "Largest Fetch response the broker builds, whatever the request asks (at least one batch)"
    ),
    def!(
        "log.segment.bytes",
        Int,
        "1073741824",
        true,
        "Default segment.bytes"
    ),
    def!("log.roll.ms", Long, "604800000", true, "Default segment.ms"),
    def!(
        "log.retention.ms",
        Long,
        "604800000",
        true,
        "Default retention.ms"
    ),
    def!(
        "log.retention.bytes",
        Long,
        "-1",
        true,
        "Default retention.bytes"
    ),
    def!(
        "log.retention.check.interval.ms",
        Long,
        "300000",
        true,
        "How often retention and compaction run"
    ),
    def!(
        "log.cleanup.policy",
        List,
        "delete",
        &["delete", "compact"],
        true,
        "Default cleanup.policy"
    ),
    def!(
        "log.cleaner.delete.retention.ms",
        Long,
        "86400000",
        true,
        "Default delete.retention.ms"
    ),
    def!(
        "log.cleaner.min.cleanable.ratio",
        Double,
        "0.5",
        true,
        "Default min.cleanable.dirty.ratio"
    ),
    def!(
        "log.cleaner.min.compaction.lag.ms",
        Long,
        "0",
        true,
        "Default min.compaction.lag.ms"
    ),
    def!(
        "log.cleaner.max.compaction.lag.ms",
        Long,
        MAX,
        false,
        "Default max.compaction.lag.ms"
    ),
    def!(
        "log.cleaner.dedupe.buffer.size",
        Long,
        "134217728",
        true,
        "Memory of the cleaner's key map (24 bytes per key); a dirty section with more keys is cleaned over several passes"
    ),
    def!(
        "log.cleaner.io.buffer.size",
        Int,
        "524288",
        true,
        "Memory of the cleaner's read and write buffers, half each (a larger batch is read whole)"
    ),
    def!(
        "log.cleaner.io.buffer.load.factor",
        Double,
        "0.9",
        true,
        "How full the cleaner's key map may get before a pass stops indexing"
    ),
    def!(
        "log.cleaner.backoff.ms",
        Long,
        "15000",
        true,
        "Pause between compaction passes over a log"
    ),
    def!(
        "log.index.interval.bytes",
        Int,
        "4096",
        true,
        "Default index.interval.bytes"
    ),
    def!(
        "log.index.size.max.bytes",
        Int,
        "10485760",
        false,
        "Default segment.index.bytes"
    ),
    def!(
        "log.flush.interval.messages",
        Long,
        MAX,
        true,
        "Default flush.messages"
    ),
    def!("log.flush.interval.ms", Long, MAX, true, "Default flush.ms"),
    def!(
        "log.flush.scheduler.interval.ms",
        Long,
        "1000",
        true,
        "How often flush.ms is checked"
    ),
    def!(
        "log.flush.offset.checkpoint.interval.ms",
        Int,
        "60000",
        true,
        "How often each log's recovery point is written to recovery-point-offset.checkpoint (also on roll and clean shutdown)"
    ),
    def!(
        "log.message.timestamp.type",
        String,
        "CreateTime",
        &["CreateTime", "LogAppendTime"],
        true,
        "Default message.timestamp.type"
    ),
    def!(
        "log.message.timestamp.difference.max.ms",
        Long,
        MAX,
        true,
        "Default message.timestamp.difference.max.ms"
    ),
    def!(
        "log.message.timestamp.before.max.ms",
        Long,
        MAX,
        true,
        "Default message.timestamp.before.max.ms"
    ),
    def!(
        "log.message.timestamp.after.max.ms",
        Long,
        MAX,
        true,
        "Default message.timestamp.after.max.ms"
    ),
    def!(
        "message.max.decompressed.bytes",
        Long,
        "67108864",
        true,
        "Brook: largest decompressed records section of one produced batch; bigger batches get MESSAGE_TOO_LARGE"
    ),
    def!(
        "log.message.downconversion.enable",
        Boolean,
        "true",
        false,
        "Default message.downconversion.enable"
    ),
    def!(
        "log.preallocate",
        Boolean,
        "false",
        false,
        "Default preallocate"
    ),
    def!(
        "log.roll.jitter.ms",
        Long,
        "0",
        false,
        "Default segment.jitter.ms"
    ),
    def!(
        "log.segment.delete.delay.ms",
        Long,
        "60000",
        false,
        "Default file.delete.delay.ms"
    ),
    def!(
        "min.insync.replicas",
        Int,
        "1",
        true,
        "Default min.insync.replicas (one broker: always satisfied by 1)"
    ),
    def!(
        "compression.type",
        String,
        "producer",
        &["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"],
        true,
        "Default compression.type"
    ),
    def!(
        "unclean.leader.election.enable",
        Boolean,
        "false",
        false,
        "Default unclean.leader.election.enable"
    ),
    def!(
        "offsets.topic.num.partitions",
        Int,
        "50",
        true,
        "Partitions of __consumer_offsets"
    ),
    def!(
        "offsets.topic.segment.bytes",
        Int,
        "104857600",
        true,
        "segment.bytes of __consumer_offsets"
    ),
    def!(
        "offsets.retention.minutes",
        Int,
        "10080",
        true,
        "Committed offsets of a group empty this long are deleted"
    ),
    def!(
        "offsets.retention.check.interval.ms",
        Long,
        "600000",
        true,
        "How often expired committed offsets are looked for"
    ),
    def!(
        "group.initial.rebalance.delay.ms",
        Int,
        "3000",
        true,
        "Wait for more members before the first rebalance of an empty group"
    ),
    def!(
        "group.min.session.timeout.ms",
        Int,
        "6000",
        true,
        "Smallest session.timeout.ms a member may ask for"
    ),
    def!(
        "group.max.session.timeout.ms",
        Int,
        "1800000",
        true,
        "Largest session.timeout.ms a member may ask for"
    ),
    def!(
        "connections.max.idle.ms",
        Long,
        "600000",
        true,
        "Idle connections are closed after this; also the longest a response write may stall"
    ),
    def!(
        "max.connections",
        Int,
        "2147483647",
        true,
        "Connections the broker serves at once; beyond it new ones wait to be accepted"
    ),
    def!(
        "max.connections.per.ip",
        Int,
        "2147483647",
        true,
        "Connections one client address may hold; beyond it new ones are closed at once"
    ),
];

/// Bounds beyond the type for configs that need them.
fn check_range(name: &str, value: &str) -> std::result::Result<(), String> {
    let bad = |what: &str| {
        Err(format!(
            "invalid value '{value}' for config '{name}': {what}"
        ))
    };
    match name {
        "log.cleaner.dedupe.buffer.size" if value.trim().parse::<i64>().unwrap_or(0) < 1024 => {
            bad("must be at least 1024")
        }
        "log.cleaner.io.buffer.size" if value.trim().parse::<i64>().unwrap_or(-1) < 0 => {
            bad("must be at least 0")
        }
        "log.cleaner.io.buffer.load.factor" => {
            let f: f64 = value.trim().parse().unwrap_or(f64::NAN);
            if f > 0.0 && f <= 1.0 {
                Ok(())
            } else {
                bad("must be in (0, 1]")
            }
        }
        _ => Ok(()),
    }
}

/// The value of `name` in `overrides`, or its default.
fn value<'a>(overrides: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    overrides
        .get(name)
        .map(String::as_str)
        .or_else(|| find(BROKER_CONFIGS, name).map(|d| d.default))
}

/// The broker's effective configuration: Kafka defaults overlaid with explicit settings.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    overrides: BTreeMap<String, String>,
    settings: BrokerSettings,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig::with_overrides(BTreeMap::new())
    }
}

impl BrokerConfig {
    /// Builds a config from explicit `key=value` settings, rejecting unknown keys and bad values.
    pub fn from_overrides(overrides: BTreeMap<String, String>) -> Result<Self> {
        for (k, v) in &overrides {
            let def = find(BROKER_CONFIGS, k)
                .ok_or_else(|| Error::Config(format!("unknown broker config '{k}'")))?;
            def.validate(v).map_err(Error::Config)?;
            check_range(k, v).map_err(Error::Config)?;
        }
        Ok(BrokerConfig::with_overrides(overrides))
    }

    /// Builds the config from already validated overrides.
    fn with_overrides(overrides: BTreeMap<String, String>) -> Self {
        let settings = BrokerSettings::parse(|name| value(&overrides, name));
        BrokerConfig {
            overrides,
            settings,
        }
    }

    /// The typed settings the broker acts on.
    pub fn settings(&self) -> &BrokerSettings {
        &self.settings
    }

    /// The value of `name`, explicit or default; `None` for an unknown key.
    pub fn get(&self, name: &str) -> Option<&str> {
        value(&self.overrides, name)
    }

    /// Whether `name` was set explicitly.
    pub fn is_set(&self, name: &str) -> bool {
        self.overrides.contains_key(name)
    }
}
