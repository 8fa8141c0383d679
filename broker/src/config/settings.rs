//! The broker configs Brook acts on, parsed once into typed fields.
//!
//! Call sites read `config.settings().fetch_max_bytes` instead of looking a key up by string:
//! a misspelt name is a compile error rather than a panic at run time, and every clamp to a
//! sane range lives here, next to the parsing, instead of at each caller.

use std::time::Duration;

use super::topic::CleanerConfig;
#[cfg(test)]
use super::BrokerConfig;

/// Typed broker settings, derived from a validated [`BrokerConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerSettings {
    /// `broker.id`.
    pub broker_id: i32,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `num.partitions`: partitions of auto-created topics and of CreateTopics with -1.
    pub num_partitions: i32,
    /// `delete.topic.enable`.
    pub delete_topic_enable: bool,
    /// `socket.request.max.bytes`: the largest request frame.
    pub socket_request_max_bytes: usize,
    /// `queued.max.request.bytes`; negative means unbounded.
    pub queued_max_request_bytes: i64,
    /// `num.io.threads`.
    pub num_io_threads: usize,
    /// `message.max.decompressed.bytes`: output cap when a batch is decompressed.
    pub message_max_decompressed_bytes: u64,
    /// `fetch.max.bytes`: the broker-side cap on one Fetch response.
    pub fetch_max_bytes: usize,
    /// `connections.max.idle.ms`: idle connections close; also the longest a write may stall.
    pub connections_max_idle: Duration,
    /// `max.connections`.
    pub max_connections: i64,
    /// `max.connections.per.ip`.
    pub max_connections_per_ip: i64,
    /// `log.retention.check.interval.ms`.
    pub log_retention_check_interval: Duration,
    /// `log.flush.scheduler.interval.ms`: how often `flush.ms` is checked.
    pub log_flush_scheduler_interval: Duration,
    /// `log.flush.offset.checkpoint.interval.ms`: how often recovery points are written.
    pub log_flush_offset_checkpoint_interval: Duration,
    /// `log.cleaner.backoff.ms`, in milliseconds.
    pub log_cleaner_backoff_ms: i64,
    /// The cleaner's memory settings.
    pub cleaner: CleanerConfig,
    /// The group coordinator's settings.
    pub group: GroupSettings,
}

/// The group coordinator's settings (`group.*`, `offsets.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSettings {
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms`.
    pub min_session_ms: i64,
    /// `group.max.session.timeout.ms`.
    pub max_session_ms: i64,
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_partitions: usize,
    /// `offsets.topic.segment.bytes`.
    pub offsets_topic_segment_bytes: i64,
    /// `offsets.retention.minutes`, in milliseconds.
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`.
    pub offsets_retention_check_interval: Duration,
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

impl BrokerSettings {
    /// Parses the settings from `get` (a config's values, validated against their types).
    pub(super) fn parse<'a>(get: impl Fn(&str) -> Option<&'a str>) -> BrokerSettings {
        let n = |name: &str| -> i64 {
            get(name)
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("broker config {name} is defined as a number"))
        };
        let b = |name: &str| get(name) == Some("true");
        BrokerSettings {
            broker_id: n("broker.id") as i32,
            auto_create_topics: b("auto.create.topics.enable"),
            num_partitions: n("num.partitions") as i32,
            delete_topic_enable: b("delete.topic.enable"),
            socket_request_max_bytes: n("socket.request.max.bytes").max(8) as usize,
            queued_max_request_bytes: n("queued.max.request.bytes"),
            num_io_threads: n("num.io.threads").clamp(1, 1024) as usize,
            message_max_decompressed_bytes: n("message.max.decompressed.bytes").max(0) as u64,
            fetch_max_bytes: n("fetch.max.bytes").max(1) as usize,
            connections_max_idle: millis(n("connections.max.idle.ms").max(1)),
            max_connections: n("max.connections"),
            max_connections_per_ip: n("max.connections.per.ip"),
            log_retention_check_interval: millis(n("log.retention.check.interval.ms").max(10)),
            log_flush_scheduler_interval: millis(
                n("log.flush.scheduler.interval.ms").clamp(10, 3_600_000),
            ),
            log_flush_offset_checkpoint_interval: millis(
                n("log.flush.offset.checkpoint.interval.ms").max(10),
            ),
            log_cleaner_backoff_ms: n("log.cleaner.backoff.ms").max(0),
            cleaner: CleanerConfig {
                dedupe_buffer_size: n("log.cleaner.dedupe.buffer.size").max(0) as u64,
                io_buffer_size: n("log.cleaner.io.buffer.size").max(0) as usize,
                load_factor: get("log.cleaner.io.buffer.load.factor")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0.9),
            },
            group: GroupSettings {
                initial_rebalance_delay: millis(n("group.initial.rebalance.delay.ms")),
                min_session_ms: n("group.min.session.timeout.ms"),
                max_session_ms: n("group.max.session.timeout.ms"),
                offsets_topic_partitions: n("offsets.topic.num.partitions").max(1) as usize,
                offsets_topic_segment_bytes: n("offsets.topic.segment.bytes"),
                offsets_retention_ms: n("offsets.retention.minutes").saturating_mul(60_000),
                offsets_retention_check_interval: millis(n("offsets.retention.check.interval.ms")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_numeric_broker_config_parses_with_its_default() {
        // parse() panics on a name that is not a numeric config: the defaults must all parse.
        let s = BrokerConfig::default().settings().clone();
        assert_eq!(s.fetch_max_bytes, 55 * 1024 * 1024);
        assert_eq!(s.num_io_threads, 8);
        assert_eq!(s.group.min_session_ms, 6000);
        assert_eq!(s.group.offsets_retention_ms, 7 * 24 * 60 * 60 * 1000);
        assert!(s.auto_create_topics && s.delete_topic_enable);
    }

    #[test]
    fn overrides_and_clamps_apply() {
        let cfg = BrokerConfig::from_overrides(
            [
                ("num.io.threads", "0"),
                ("connections.max.idle.ms", "250"),
                ("auto.create.topics.enable", "false"),
                ("offsets.retention.minutes", "2"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        )
        .unwrap();
        let s = cfg.settings();
        assert_eq!(s.num_io_threads, 1);
        assert_eq!(s.connections_max_idle, Duration::from_millis(250));
        assert!(!s.auto_create_topics);
        assert_eq!(s.group.offsets_retention_ms, 120_000);
    }
}
