//! librdkafka's `rd_kafka_produce_batch` for source records: one call and
//! one cached topic handle per batch instead of a topic lookup, a `CString`
//! and a varargs parse per record (what the safe `BaseProducer::send`
//! costs). This is what lets a file tail keep up with `kcat -P -l`.
//!
//! The only unsafe code of the crate; the invariants are stated where they
//! are relied on.

use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::bindings as rdsys;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::{BaseProducer, Producer as _};
use rdkafka::util::IntoOpaque;

use crate::producer::{AckContext, BatchAck};

/// A librdkafka topic handle (destroyed on drop) and what is known about
/// the topic's partitions.
pub(crate) struct TopicHandle {
    rkt: *mut rdsys::rd_kafka_topic_t,
    /// Partition count (0 = unknown) and when it was read.
    partitions: Mutex<(i32, Option<Instant>)>,
    /// Partition for the next batch of keyless records.
    next: AtomicU32,
}

// SAFETY: librdkafka topic handles may be used from any thread; this type
// only hands the pointer to librdkafka and destroys it once, on drop.
unsafe impl Send for TopicHandle {}
unsafe impl Sync for TopicHandle {}

impl Drop for TopicHandle {
    fn drop(&mut self) {
        // SAFETY: created by rd_kafka_topic_new, destroyed exactly once.
        unsafe { rdsys::rd_kafka_topic_destroy(self.rkt) }
    }
}

/// Topic handles by name. Must be dropped before the producer they were
/// created from (librdkafka requires handles to go first).
#[derive(Default)]
pub(crate) struct TopicHandles {
    by_name: Mutex<HashMap<String, Arc<TopicHandle>>>,
}

impl TopicHandles {
    fn get(
        &self,
        producer: &BaseProducer<AckContext>,
        topic: &str,
    ) -> Result<Arc<TopicHandle>, String> {
        let mut by_name = self.by_name.lock();
        if let Some(handle) = by_name.get(topic) {
            return Ok(handle.clone());
        }
        let name = CString::new(topic).map_err(|_| format!("invalid topic name {topic:?}"))?;
        // SAFETY: the client pointer is valid while `producer` lives; a NULL
        // topic config means "defaults".
        let rkt = unsafe {
            rdsys::rd_kafka_topic_new(
                producer.client().native_ptr(),
                name.as_ptr(),
                std::ptr::null_mut(),
            )
        };
        if rkt.is_null() {
            return Err(format!("cannot create a handle for topic {topic:?}"));
        }
        let handle = Arc::new(TopicHandle {
            rkt,
            partitions: Mutex::new((0, None)),
            next: AtomicU32::new(rand_seed()),
        });
        by_name.insert(topic.to_string(), handle.clone());
        Ok(handle)
    }
}

impl TopicHandle {
    /// The partition for a batch of keyless records: all of it goes to one
    /// partition, the next batch to the next one (sticky partitioning, as
    /// Kafka's producer does for keyless records), so librdkafka enqueues
    /// the batch under one lock instead of partitioning every record.
    /// `None` when the partition count is unknown.
    fn sticky_partition(&self, producer: &BaseProducer<AckContext>, topic: &str) -> Option<i32> {
        let count = {
            let mut known = self.partitions.lock();
            let age = if known.0 > 0 {
                METADATA_MAX_AGE
            } else {
                METADATA_RETRY
            };
            if known.1.is_none_or(|at| at.elapsed() >= age) {
                let count = producer
                    .client()
                    .fetch_metadata(Some(topic), METADATA_TIMEOUT)
                    .ok()
                    .and_then(|m| {
                        m.topics()
                            .iter()
                            .find(|t| t.name() == topic && t.error().is_none())
                            .map(|t| i32::try_from(t.partitions().len()).unwrap_or(0))
                    })
                    .unwrap_or(0);
                *known = (count, Some(Instant::now()));
            }
            known.0
        };
        let count = u32::try_from(count).ok().filter(|c| *c > 0)?;
        i32::try_from(self.next.fetch_add(1, Ordering::Relaxed) % count).ok()
    }
}

/// How long a topic's partition count is trusted (new partitions are used
/// after at most this long).
const METADATA_MAX_AGE: Duration = Duration::from_secs(30);
/// How soon an unknown partition count is asked for again.
const METADATA_RETRY: Duration = Duration::from_secs(1);
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// A start for the keyless-batch rotation that differs between workers.
fn rand_seed() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    nanos ^ std::process::id()
}

/// A record's key and value bytes (`None` = null).
pub(crate) type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Enqueues `records` for `topic`, in order; each delivery report settles
/// `acked` once. Records that could not be enqueued are settled at once
/// with their error, which is also returned (the first one).
pub(crate) fn produce_batch(
    producer: &BaseProducer<AckContext>,
    handles: &TopicHandles,
    topic: &str,
    records: &[KeyValue],
    acked: &Arc<BatchAck>,
) -> Result<(), String> {
    let handle = match handles.get(producer, topic) {
        Ok(h) => h,
        Err(e) => {
            for _ in records {
                acked.settle_one(Some(e.clone()));
            }
            return Err(e);
        }
    };
    let partition = if records.iter().all(|(key, _)| key.is_none()) {
        handle
            .sticky_partition(producer, topic)
            .unwrap_or(UNASSIGNED)
    } else {
        UNASSIGNED
    };
    let bytes = |b: &Option<Vec<u8>>| match b {
        Some(v) => (v.as_ptr() as *mut c_void, v.len()),
        None => (std::ptr::null_mut(), 0),
    };
    let mut messages: Vec<rdsys::rd_kafka_message_t> = records
        .iter()
        .map(|(key, value)| {
            let (payload, len) = bytes(value);
            let (key, key_len) = bytes(key);
            rdsys::rd_kafka_message_t {
                err: rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR,
                rkt: handle.rkt,
                partition,
                payload,
                len,
                key,
                key_len,
                offset: 0,
                // The delivery report turns this back into the Arc
                // (rdkafka's DeliveryOpaque for AckContext).
                _private: acked.clone().into_ptr(),
            }
        })
        .collect();
    let count = i32::try_from(messages.len()).map_err(|_| "batch too large".to_string())?;
    // SAFETY: `messages` points at `count` initialised messages whose
    // payload and key buffers (borrowed from `records`) outlive the call;
    // RD_KAFKA_MSG_F_COPY makes librdkafka copy them before returning.
    unsafe {
        rdsys::rd_kafka_produce_batch(
            handle.rkt,
            partition,
            rdsys::RD_KAFKA_MSG_F_COPY,
            messages.as_mut_ptr(),
            count,
        );
    }
    let mut first_error = None;
    for message in &messages {
        if message.err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            // Not enqueued: librdkafka did not take the opaque, so no
            // delivery report will release it.
            // SAFETY: produced by `into_ptr` above and not handed over.
            drop(unsafe { Arc::<BatchAck>::from_ptr(message._private) });
            let error = RDKafkaErrorCode::from(message.err).to_string();
            acked.settle_one(Some(error.clone()));
            first_error.get_or_insert(error);
        }
    }
    match first_error {
        None => Ok(()),
        Some(e) => Err(format!("producing to {topic}: {e}")),
    }
}

/// librdkafka's RD_KAFKA_PARTITION_UA: let the partitioner choose.
const UNASSIGNED: i32 = -1;
