//! The record collector: a stream thread's producer, its delivery reports and
//! the acknowledged changelog offsets that checkpoints are made of.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext};

use crate::error::StreamsError;
use crate::processor::OutRecord;

/// Delivery reports seen by the producer.
pub(crate) struct Deliveries {
    /// The first failed delivery. Sticky: once a record is lost, nothing the
    /// thread processed after it may be committed or checkpointed (Kafka's dirty close).
    error: Mutex<Option<String>>,
    /// Changelog topics whose acknowledged offsets are tracked.
    tracked: HashSet<String>,
    /// Next offset after the highest acknowledged one, per tracked topic and partition.
    acked: Mutex<HashMap<String, HashMap<i32, i64>>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => {
                if self.tracked.contains(m.topic()) {
                    let mut acked = self.acked.lock();
                    let parts = acked.entry(m.topic().to_string()).or_default();
                    let next = parts.entry(m.partition()).or_insert(0);
                    *next = (*next).max(m.offset() + 1);
                }
            }
            Err((e, m)) => {
                let mut err = self.error.lock();
                if err.is_none() {
                    *err = Some(format!("producing to `{}` failed: {e}", m.topic()));
                }
            }
        }
    }
}

/// Sends a thread's output, repartition and changelog records.
pub(crate) struct Collector {
    producer: ThreadedProducer<Deliveries>,
}

impl Collector {
    pub fn new(config: &ClientConfig, changelogs: HashSet<String>) -> Result<Self, StreamsError> {
        let producer = config.create_with_context(Deliveries {
            error: Mutex::new(None),
            tracked: changelogs,
            acked: Mutex::new(HashMap::new()),
        })?;
        Ok(Collector { producer })
    }

    /// The first delivery failure, if any record was lost.
    pub fn failure(&self) -> Option<String> {
        self.producer.context().error.lock().clone()
    }

    fn check(&self) -> Result<(), StreamsError> {
        match self.failure() {
            Some(e) => Err(StreamsError::ProduceFailed(e)),
            None => Ok(()),
        }
    }

    /// Hands records to the producer (waiting while its queue is full).
    pub fn send(&self, records: Vec<OutRecord>) -> Result<(), StreamsError> {
        self.check()?;
        for r in records {
            let mut rec: BaseRecord<'_, [u8], [u8], ()> =
                BaseRecord::to(&r.topic).timestamp(r.timestamp);
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
    pub fn flush(&self, timeout: Duration) -> Result<(), StreamsError> {
        let flushed = self.producer.flush(timeout);
        self.check()?;
        flushed.map_err(|e| StreamsError::Timeout(format!("waiting for acknowledgements: {e}")))
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
