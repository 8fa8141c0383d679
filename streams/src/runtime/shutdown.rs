//! `ShutdownApplication`: one instance asks every instance to stop.
//!
//! Kafka Streams carries that request in its own assignor's subscription
//! data; librdkafka's built-in assignors cannot carry it, so Brook uses a
//! one-partition internal topic, `<application.id>-shutdown-signal`: the
//! failing instance appends a record, and every stream thread checks the
//! topic's end offset at each commit. Signals older than a thread's start are
//! ignored, so a restarted application runs again.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::error::StreamsError;

const TIMEOUT: Duration = Duration::from_secs(30);

/// The signal topic of an application.
pub(crate) fn topic(app_id: &str) -> String {
    format!("{app_id}-shutdown-signal")
}

/// Creates the signal topic if it is missing.
pub(crate) fn ensure_topic(
    admin: &AdminClient<DefaultClientContext>,
    app_id: &str,
    replication: i32,
) -> Result<(), StreamsError> {
    let name = topic(app_id);
    let new = NewTopic::new(&name, 1, TopicReplication::Fixed(replication))
        .set("retention.ms", "86400000");
    let results = futures::executor::block_on(admin.create_topics(
        [&new],
        &AdminOptions::new().operation_timeout(Some(TIMEOUT)),
    ))?;
    for r in results {
        if let Err((t, code)) = r {
            if code != RDKafkaErrorCode::TopicAlreadyExists {
                return Err(StreamsError::Topology(format!(
                    "cannot create internal topic `{t}`: {code}"
                )));
            }
        }
    }
    if !super::metadata::wait_for_topics(admin.inner(), &[(name.clone(), 1)], TIMEOUT)? {
        return Err(StreamsError::Topology(format!(
            "internal topic `{name}` has no leader {} s after it was created",
            TIMEOUT.as_secs()
        )));
    }
    Ok(())
}

/// Appends a shutdown request, naming the error that caused it.
pub(crate) fn signal(bootstrap: &str, app_id: &str, reason: &str) -> Result<(), StreamsError> {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("log_level", "3")
        .create()?;
    let name = topic(app_id);
    p.send(BaseRecord::<(), str>::to(&name).payload(reason))
        .map_err(|(e, _)| e)?;
    p.flush(TIMEOUT)?;
    Ok(())
}

/// Watches the signal topic for requests newer than the watcher.
pub(crate) struct Watch {
    topic: String,
    start: i64,
}

impl Watch {
    pub fn new<C: ConsumerContext>(
        consumer: &BaseConsumer<C>,
        app_id: &str,
    ) -> Result<Self, StreamsError> {
        let topic = topic(app_id);
        let (_, start) = super::metadata::watermarks(consumer, &topic, 0, TIMEOUT)?;
        Ok(Watch { topic, start })
    }

    /// Whether another instance asked the application to shut down.
    pub fn requested<C: ConsumerContext>(&self, consumer: &BaseConsumer<C>) -> bool {
        match consumer.fetch_watermarks(&self.topic, 0, Duration::from_secs(5)) {
            Ok((_, high)) => high > self.start,
            Err(e) => {
                tracing::debug!("checking the shutdown signal failed: {e}");
                false
            }
        }
    }
}
