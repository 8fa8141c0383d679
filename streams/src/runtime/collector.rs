//! The record collector: a stream thread's producer, its delivery reports and
//! the acknowledged changelog offsets that checkpoints are made of.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::bindings;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext};

use crate::error::StreamsError;
use crate::processor::OutRecord;

/// Delivery opaque of a changelog record, whose acknowledged offset is tracked; other
/// records carry 0, so their (successful) reports are dropped without a look at the topic.
const TRACKED: usize = 1;

/// Delivery reports seen by the producer.
pub(crate) struct Deliveries {
    /// Set with the first failed delivery: read for every record sent, without the lock.
    failed: AtomicBool,
    /// The first failed delivery. Sticky: once a record is lost, nothing the
    /// thread processed after it may be committed or checkpointed (Kafka's dirty close).
    error: Mutex<Option<String>>,
    /// Next offset after the highest acknowledged one, per changelog topic and partition.
    acked: Mutex<HashMap<String, HashMap<i32, i64>>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        match result {
            Ok(m) => {
                if opaque == TRACKED {
                    let mut acked = self.acked.lock();
                    let topic = m.topic();
                    if !acked.contains_key(topic) {
                        acked.insert(topic.to_string(), HashMap::new());
                    }
                    let parts = acked.get_mut(topic).expect("inserted above");
                    let next = parts.entry(m.partition()).or_insert(0);
                    *next = (*next).max(m.offset() + 1);
                }
            }
            Err((e, m)) => {
                let mut err = self.error.lock();
                if err.is_none() {
                    *err = Some(format!("producing to `{}` failed: {e}", m.topic()));
                }
                self.failed.store(true, Ordering::Release);
            }
        }
    }
}

/// Sends a thread's output, repartition and changelog records.
pub(crate) struct Collector {
    producer: ThreadedProducer<Deliveries>,
}

impl Collector {
    pub fn new(config: &ClientConfig) -> Result<Self, StreamsError> {
        let producer = config.create_with_context(Deliveries {
            failed: AtomicBool::new(false),
            error: Mutex::new(None),
            acked: Mutex::new(HashMap::new()),
        })?;
        Ok(Collector { producer })
    }

    /// The first delivery failure, if any record was lost.
    pub fn failure(&self) -> Option<String> {
        let deliveries = self.producer.context();
        if !deliveries.failed.load(Ordering::Acquire) {
            return None;
        }
        deliveries.error.lock().clone()
    }

    fn check(&self) -> Result<(), StreamsError> {
        match self.failure() {
            Some(e) => Err(StreamsError::ProduceFailed(e)),
            None => Ok(()),
        }
    }

    /// Hands the records to the producer (waiting while its queue is full), leaving
    /// `records` empty for reuse.
    pub fn send(&self, records: &mut Vec<OutRecord>) -> Result<(), StreamsError> {
        if records.is_empty() {
            return Ok(());
        }
        self.check()?;
        for r in records.drain(..) {
            let opaque = if r.changelog { TRACKED } else { 0 };
            let mut rec: BaseRecord<'_, [u8], [u8], usize> =
                BaseRecord::with_opaque_to(&r.topic, opaque).timestamp(r.timestamp);
            if let Some(k) = &r.key {
                rec = rec.key(k.as_slice());
            }
            if let Some(v) = &r.value {
                rec = rec.payload(v.as_slice());
            }
            if let Some(p) = r.partition {
                rec = rec.partition(p);
            }
            if !r.headers.is_empty() {
                let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
                for h in r.headers.iter() {
                    headers = headers.insert(Header {
                        key: &h.key,
                        value: h.value.as_deref(),
                    });
                }
                rec = rec.headers(headers);
            }
            loop {
                match self.producer.send(rec) {
                    Ok(()) => break,
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                        back,
                    )) => {
                        rec = back;
                        // A full queue may be full of records that will fail: do not wait forever.
                        self.check()?;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// Waits until every record handed over is acknowledged; fails if any was lost.
    ///
    /// Calls librdkafka's `rd_kafka_flush` itself: rdkafka's `flush` polls the delivery
    /// queue for a fixed 100 ms whenever a record is still in flight, so every commit stalled
    /// the stream thread at least 100 ms. With delivery reports as events (rdkafka's mode),
    /// `rd_kafka_flush` sends at once regardless of `linger.ms` and waits until every message
    /// is destroyed, which the producer's polling thread does only after it has run this
    /// context's delivery callback for it: when it returns, every report has been seen.
    pub fn flush(&self, timeout: Duration) -> Result<(), StreamsError> {
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: the pointer is the producer's live client handle, valid while `self` is.
        let err = unsafe { bindings::rd_kafka_flush(self.producer.client().native_ptr(), ms) };
        self.check()?;
        match RDKafkaErrorCode::from(err) {
            RDKafkaErrorCode::NoError => Ok(()),
            e => Err(StreamsError::Timeout(format!(
                "waiting for acknowledgements: {e}"
            ))),
        }
    }

    /// Forgets acknowledgements of a changelog partition: a task opening or
    /// resuming there counts only its own writes.
    pub fn forget(&self, topic: &str, partition: i32) {
        if let Some(p) = self.producer.context().acked.lock().get_mut(topic) {
            p.remove(&partition);
        }
    }

    /// Next offset after the last acknowledged record of a changelog partition.
    pub fn acked(&self, topic: &str, partition: i32) -> Option<i64> {
        self.producer
            .context()
            .acked
            .lock()
            .get(topic)
            .and_then(|p| p.get(&partition))
            .copied()
    }
}
