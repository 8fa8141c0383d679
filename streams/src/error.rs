//! Typed errors of the streams library.

use thiserror::Error;

/// A record could not be serialised or deserialised.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SerdeError {
    /// The bytes were null where the serde needs a value.
    #[error("null {0} where a value is required (use an Option<_> type for nullable data)")]
    Null(&'static str),
    /// The bytes did not decode.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was being decoded (`key`, `value`, a type name).
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// The value could not be encoded.
    #[error("cannot encode: {0}")]
    Encode(String),
}

/// Anything that stops a topology from being built or run.
#[derive(Debug, Error)]
pub enum StreamsError {
    /// The topology is inconsistent (e.g. unknown store, nothing to consume).
    #[error("invalid topology: {0}")]
    Topology(String),
    /// A configuration key has a bad or missing value.
    #[error("invalid config `{key}`: {reason}")]
    Config {
        /// The offending key.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Topics that must be co-partitioned (joined or merged into one task) are not.
    #[error("topics {topics:?} must be co-partitioned but have partition counts {counts:?}")]
    CoPartitioning {
        /// The topics of the sub-topology.
        topics: Vec<String>,
        /// Their partition counts, in the same order.
        counts: Vec<i32>,
    },
    /// A source topic does not exist on the cluster.
    #[error("source topic `{0}` does not exist")]
    MissingSourceTopic(String),
    /// A serde failed and the configured handler says fail.
    #[error("serde error on topic `{topic}`: {source}")]
    Serde {
        /// Topic of the record.
        topic: String,
        /// The underlying serde failure.
        #[source]
        source: SerdeError,
    },
    /// User code panicked and the configured handler says fail.
    #[error("processing failed in `{node}`: {message}")]
    Processing {
        /// Processor node name.
        node: String,
        /// Panic message.
        message: String,
    },
    /// State store I/O failed.
    #[error("state store `{store}`: {reason}")]
    Store {
        /// Store name.
        store: String,
        /// What failed.
        reason: String,
    },
    /// The Kafka client reported an error.
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Local file system error (state directory, checkpoints).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// A produced record (output, repartition or changelog) was not acknowledged:
    /// the thread's tasks are closed without committing (Kafka's dirty close).
    #[error("record lost, input not committed: {0}")]
    ProduceFailed(String),
    /// A retriable operation did not succeed within `task.timeout.ms`.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The application is not in a state that allows the call.
    #[error("illegal state: {0}")]
    IllegalState(String),
}

/// Result alias for the streams library.
pub type Result<T, E = StreamsError> = std::result::Result<T, E>;
