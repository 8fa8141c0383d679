//! Running a topology against Kafka: `KafkaStreams`.

/// Lifecycle state of a [`KafkaStreams`] instance (Kafka's `KafkaStreams.State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Built, not started.
    Created,
    /// Tasks are being (re)assigned or restored.
    Rebalancing,
    /// Processing.
    Running,
    /// `close()` was called.
    PendingShutdown,
    /// Stopped cleanly.
    NotRunning,
    /// A stream thread failed.
    Error,
}

/// Placeholder until the runtime lands.
pub struct KafkaStreams;
