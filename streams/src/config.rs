//! `StreamsConfig`: Kafka Streams' configuration keys and defaults.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::StreamsError;

/// What to do with a record whose key or value does not deserialise
/// (`default.deserialization.exception.handler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeserializationHandler {
    /// Log, count in `dropped-records`, and go on.
    LogAndContinue,
    /// Stop the stream thread with an error (Kafka's default).
    LogAndFail,
}

/// What to do when user code panics or a processor returns an error
/// (`processing.exception.handler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessingHandler {
    /// Log, count in `dropped-records`, and go on.
    LogAndContinue,
    /// Stop the stream thread with an error (Kafka's default).
    LogAndFail,
}

/// Known keys with their Kafka defaults (`None`: required).
const KEYS: &[(&str, Option<&str>)] = &[
    ("application.id", None),
    ("bootstrap.servers", None),
    ("num.stream.threads", Some("1")),
    ("commit.interval.ms", Some("30000")),
    ("state.dir", None),
    ("processing.guarantee", Some("at_least_once")),
    ("statestore.cache.max.bytes", Some("10485760")),
    (
        "default.deserialization.exception.handler",
        Some("LogAndFail"),
    ),
    ("processing.exception.handler", Some("LogAndFail")),
    ("replication.factor", Some("-1")),
    ("poll.ms", Some("100")),
    ("max.task.idle.ms", Some("0")),
    // How long retriable failures (commits, flushes, a stalled restoration) are retried.
    ("task.timeout.ms", Some("300000")),
    // Standby replicas per stateful task, kept warm from the changelog on other instances.
    ("num.standby.replicas", Some("0")),
    // Committed records of repartition topics are deleted this often.
    ("repartition.purge.interval.ms", Some("30000")),
    // Brook: one budget for all RocksDB block cache + write buffers of the instance.
    ("statestore.rocksdb.memory.bytes", Some("67108864")),
];

/// Configuration of a streams application; keys and defaults follow Kafka Streams.
/// Keys prefixed `consumer.`, `producer.` or `admin.` go to the client unchanged.
#[derive(Debug, Clone)]
pub struct StreamsConfig {
    props: BTreeMap<String, String>,
}

impl StreamsConfig {
    /// A config with the two required keys.
    pub fn new(application_id: &str, bootstrap_servers: &str) -> Self {
        let mut props = BTreeMap::new();
        props.insert("application.id".into(), application_id.into());
        props.insert("bootstrap.servers".into(), bootstrap_servers.into());
        StreamsConfig { props }
    }

    /// Sets a key (validated by [`validate`](Self::validate) when the app starts).
    pub fn set(mut self, key: &str, value: impl ToString) -> Self {
        self.props.insert(key.to_string(), value.to_string());
        self
    }

    /// Builds from `key=value` pairs, as read from a properties file.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        StreamsConfig {
            props: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// The raw value of a key, or its default.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.props
            .get(key)
            .map(String::as_str)
            .or_else(|| KEYS.iter().find(|(k, _)| *k == key).and_then(|(_, d)| *d))
    }

    fn bad(key: &str, reason: impl Into<String>) -> StreamsError {
        StreamsError::Config {
            key: key.to_string(),
            reason: reason.into(),
        }
    }

    fn num<T: std::str::FromStr>(&self, key: &str) -> Result<T, StreamsError> {
        let v = self.get(key).ok_or_else(|| Self::bad(key, "missing"))?;
        v.trim()
            .parse()
            .map_err(|_| Self::bad(key, format!("`{v}` is not a number")))
    }

    /// Checks every key and value; unknown keys are named.
    pub fn validate(&self) -> Result<(), StreamsError> {
        for k in self.props.keys() {
            let known = KEYS.iter().any(|(n, _)| n == k)
                || k.starts_with("consumer.")
                || k.starts_with("producer.")
                || k.starts_with("admin.")
                || k.starts_with("restore.consumer.");
            if !known {
                return Err(Self::bad(k, "unknown config key"));
            }
        }
        let app = self.application_id()?;
        if app.is_empty()
            || !app
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(Self::bad(
                "application.id",
                "must be non-empty and use only letters, digits, '.', '_' and '-' (it prefixes topic names)",
            ));
        }
        if self.get("bootstrap.servers").unwrap_or("").is_empty() {
            return Err(Self::bad("bootstrap.servers", "missing"));
        }
        if self.num_threads()? == 0 {
            return Err(Self::bad("num.stream.threads", "must be at least 1"));
        }
        self.commit_interval()?;
        self.task_timeout()?;
        self.repartition_purge_interval()?;
        self.num_standby_replicas()?;
        self.cache_max_bytes()?;
        self.rocksdb_memory_bytes()?;
        self.deserialization_handler()?;
        self.processing_handler()?;
        match self.get("processing.guarantee") {
            Some("at_least_once") => {}
            Some("exactly_once_v2") | Some("exactly_once") | Some("exactly_once_beta") => {
                return Err(Self::bad(
                    "processing.guarantee",
                    "exactly-once processing is not implemented yet; use at_least_once",
                ))
            }
            other => {
                return Err(Self::bad(
                    "processing.guarantee",
                    format!(
                        "`{}` is not one of at_least_once, exactly_once_v2",
                        other.unwrap_or("")
                    ),
                ))
            }
        }
        Ok(())
    }

    /// `application.id`.
    pub fn application_id(&self) -> Result<&str, StreamsError> {
        self.get("application.id")
            .ok_or_else(|| Self::bad("application.id", "missing"))
    }

    pub(crate) fn bootstrap_servers(&self) -> &str {
        self.get("bootstrap.servers").unwrap_or("")
    }

    pub(crate) fn num_threads(&self) -> Result<usize, StreamsError> {
        self.num("num.stream.threads")
    }

    pub(crate) fn commit_interval(&self) -> Result<Duration, StreamsError> {
        Ok(Duration::from_millis(self.num("commit.interval.ms")?))
    }

    pub(crate) fn num_standby_replicas(&self) -> Result<usize, StreamsError> {
        self.num("num.standby.replicas")
    }

    pub(crate) fn task_timeout(&self) -> Result<Duration, StreamsError> {
        Ok(Duration::from_millis(self.num("task.timeout.ms")?))
    }

    pub(crate) fn repartition_purge_interval(&self) -> Result<Duration, StreamsError> {
        Ok(Duration::from_millis(
            self.num("repartition.purge.interval.ms")?,
        ))
    }

    pub(crate) fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.num("poll.ms").unwrap_or(100))
    }

    pub(crate) fn cache_max_bytes(&self) -> Result<usize, StreamsError> {
        self.num("statestore.cache.max.bytes")
    }

    pub(crate) fn rocksdb_memory_bytes(&self) -> Result<usize, StreamsError> {
        let v: usize = self.num("statestore.rocksdb.memory.bytes")?;
        if v < (1 << 20) {
            return Err(Self::bad(
                "statestore.rocksdb.memory.bytes",
                "must be at least 1 MiB",
            ));
        }
        Ok(v)
    }

    pub(crate) fn replication_factor(&self) -> Result<i32, StreamsError> {
        self.num("replication.factor")
    }

    /// `state.dir`, default `<tmp>/kafka-streams` like Kafka.
    pub(crate) fn state_dir(&self) -> PathBuf {
        self.get("state.dir")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("kafka-streams"))
    }

    pub(crate) fn deserialization_handler(&self) -> Result<DeserializationHandler, StreamsError> {
        let key = "default.deserialization.exception.handler";
        match self.get(key).unwrap_or("") {
            "LogAndContinue"
            | "LogAndContinueExceptionHandler"
            | "org.apache.kafka.streams.errors.LogAndContinueExceptionHandler" => {
                Ok(DeserializationHandler::LogAndContinue)
            }
            "LogAndFail"
            | "LogAndFailExceptionHandler"
            | "org.apache.kafka.streams.errors.LogAndFailExceptionHandler" => {
                Ok(DeserializationHandler::LogAndFail)
            }
            v => Err(Self::bad(
                key,
                format!("`{v}` is not LogAndContinue or LogAndFail"),
            )),
        }
    }

    pub(crate) fn processing_handler(&self) -> Result<ProcessingHandler, StreamsError> {
        let key = "processing.exception.handler";
        match self.get(key).unwrap_or("") {
            "LogAndContinue"
            | "LogAndContinueProcessingExceptionHandler"
            | "org.apache.kafka.streams.errors.LogAndContinueProcessingExceptionHandler" => {
                Ok(ProcessingHandler::LogAndContinue)
            }
            "LogAndFail"
            | "LogAndFailProcessingExceptionHandler"
            | "org.apache.kafka.streams.errors.LogAndFailProcessingExceptionHandler" => {
                Ok(ProcessingHandler::LogAndFail)
            }
            v => Err(Self::bad(
                key,
                format!("`{v}` is not LogAndContinue or LogAndFail"),
            )),
        }
    }

    /// Client overrides with the given prefix stripped.
    pub(crate) fn client_overrides(&self, prefix: &str) -> Vec<(String, String)> {
        self.props
            .iter()
            .filter_map(|(k, v)| k.strip_prefix(prefix).map(|s| (s.to_string(), v.clone())))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let c = StreamsConfig::new("app", "localhost:9092");
        c.validate().unwrap();
        assert_eq!(c.commit_interval().unwrap(), Duration::from_secs(30));
        assert_eq!(c.cache_max_bytes().unwrap(), 10 * 1024 * 1024);
        let e = c
            .clone()
            .set("num.stream.thread", 2)
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("num.stream.thread"), "{e}");
        let e = c
            .clone()
            .set("processing.guarantee", "exactly_once_v2")
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("not implemented"), "{e}");
        let e = c
            .clone()
            .set("commit.interval.ms", "soon")
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("commit.interval.ms"), "{e}");
        assert!(StreamsConfig::new("bad app", "x").validate().is_err());
        c.set("consumer.fetch.max.bytes", 1).validate().unwrap();
    }
}
