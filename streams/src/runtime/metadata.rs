//! Cluster metadata that a multi-broker cluster propagates eventually.
//!
//! On one broker a topic is known everywhere the moment CreateTopics returns. On a Kafka
//! cluster every broker learns it from the controller a little later, and a partition has no
//! leader for a moment after its leader dies. Kafka Streams waits for its internal topics to
//! be ready and lets the consumer retry offset look-ups for `default.api.timeout.ms`; these
//! helpers do the same, so a new topic or a failover is a pause, not a fatal error.

use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::types::RDKafkaErrorCode;

const BACKOFF: Duration = Duration::from_millis(100);

/// Whether `e` means "not known or not led yet here": worth asking again.
fn transient(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::ReplicaNotAvailable
                | RDKafkaErrorCode::BrokerNotAvailable
                | RDKafkaErrorCode::NotEnoughReplicas
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
        )
    )
}

/// The (low, high) watermarks of `topic`-`p`, retrying transient errors for up to `timeout`.
pub(crate) fn watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    p: i32,
    timeout: Duration,
) -> KafkaResult<(i64, i64)> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match consumer.fetch_watermarks(topic, p, left.max(BACKOFF)) {
            Err(e) if transient(&e) && Instant::now() + BACKOFF < deadline => {
                tracing::debug!(topic, partition = p, "watermarks not available yet: {e}");
                std::thread::sleep(BACKOFF);
                // librdkafka answers from its metadata cache, refreshed only every few
                // minutes: after a leader died it keeps saying "unknown partition" until a
                // metadata request updates the cache. (A consumer's metadata request does not
                // auto-create topics.)
                let left = deadline.saturating_duration_since(Instant::now());
                let _ = consumer.fetch_metadata(Some(topic), left.max(BACKOFF));
            }
            other => return other,
        }
    }
}

/// Waits until the metadata lists every topic of `topics` with `partitions` partitions, each
/// with a leader; `Ok(false)` if it did not within `timeout`.
pub(crate) fn wait_for_topics<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    topics: &[(String, i32)],
    timeout: Duration,
) -> KafkaResult<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        // All topics: naming one could auto-create it on brokers that allow that.
        let md = client.fetch_metadata(None, timeout)?;
        let ready = topics.iter().all(|(name, n)| {
            md.topics().iter().any(|t| {
                t.name() == name
                    && t.error().is_none()
                    && t.partitions().len() == *n as usize
                    && t.partitions()
                        .iter()
                        .all(|p| p.leader() >= 0 && p.error().is_none())
            })
        });
        if ready {
            return Ok(true);
        }
        if Instant::now() + BACKOFF >= deadline {
            return Ok(false);
        }
        std::thread::sleep(BACKOFF);
    }
}
