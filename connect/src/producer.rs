//! The worker's one producer (source records, offsets, configs, dead letter
//! queue), with batch acknowledgements: one shared counter per batch instead
//! of a future per record (what `FutureProducer` costs), so a source task
//! can keep up with a fast file or table.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, ProducerContext};
use tokio::sync::Notify;

use crate::produce_batch::{produce_batch, KeyValue, TopicHandles};

/// Counts the outstanding deliveries of one batch.
#[derive(Debug)]
pub(crate) struct BatchAck {
    remaining: AtomicUsize,
    error: Mutex<Option<String>>,
    done: Notify,
}

impl BatchAck {
    /// A batch of `n` records (0 = already complete).
    pub fn new(n: usize) -> Arc<Self> {
        Arc::new(BatchAck {
            remaining: AtomicUsize::new(n),
            error: Mutex::new(None),
            done: Notify::new(),
        })
    }

    /// True once every record was acknowledged or failed.
    pub fn is_complete(&self) -> bool {
        self.remaining.load(Ordering::Acquire) == 0
    }

    /// Waits for every delivery; the first failure, if any.
    pub async fn wait(&self) -> Result<(), String> {
        loop {
            let notified = self.done.notified();
            if self.is_complete() {
                break;
            }
            notified.await;
        }
        match self.error.lock().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Records one delivery (or one record that will never be delivered).
    pub fn settle_one(&self, error: Option<String>) {
        if let Some(e) = error {
            self.error.lock().get_or_insert(e);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_waiters();
        }
    }
}

/// Routes librdkafka delivery reports to their batch.
pub(crate) struct AckContext;

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Arc<BatchAck>;

    fn delivery(&self, result: &DeliveryResult<'_>, batch: Self::DeliveryOpaque) {
        // librdkafka already retried internally (idempotently) until its
        // delivery timeout, so a failure here is final.
        batch.settle_one(result.as_ref().err().map(|(e, _)| e.to_string()));
    }
}

/// A record for [`Producer::send`], settling a [`BatchAck`] when delivered.
pub(crate) type Record<'a> = BaseRecord<'a, [u8], [u8], Arc<BatchAck>>;

/// The worker's producer (idempotent), polled by its own thread.
///
/// Not rdkafka's `ThreadedProducer`/`FutureProducer`: their thread polls in
/// 100 ms windows and spins through the last millisecond of each
/// (librdkafka takes whole milliseconds), which costs a few percent of a
/// core per producer. This thread waits in one-second windows, and the
/// worker has one producer instead of one per internal topic.
#[derive(Clone)]
pub(crate) struct Producer {
    inner: Arc<Polled>,
}

struct Polled {
    // Declared before `producer`: topic handles must be destroyed first.
    handles: TopicHandles,
    producer: Arc<BaseProducer<AckContext>>,
    stop: Arc<AtomicBool>,
    sweeper: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Polled {
    fn drop(&mut self) {
        // The sweeper notices within one window (20 ms) and lets go of its
        // handle, so the producer is destroyed here, before the caller goes
        // on (e.g. to shut down an embedded broker it would reconnect to).
        self.stop.store(true, Ordering::Release);
        if let Some(sweeper) = self.sweeper.take() {
            let _ = sweeper.join();
        }
    }
}

impl Producer {
    /// Enqueues a record; its delivery settles the record's batch.
    #[allow(clippy::result_large_err)]
    pub fn send<'a>(&self, record: Record<'a>) -> Result<(), (KafkaError, Record<'a>)> {
        self.inner.producer.send(record)
    }

    /// Enqueues records for one topic in one librdkafka call, in order;
    /// each delivery settles `acked` once. Fails if any record could not be
    /// enqueued (those are settled with the error).
    pub fn send_batch(
        &self,
        topic: &str,
        records: &[KeyValue],
        acked: &Arc<BatchAck>,
    ) -> Result<(), String> {
        produce_batch(
            &self.inner.producer,
            &self.inner.handles,
            topic,
            records,
            acked,
        )
    }

    /// Sends one record and waits for the broker's acknowledgement
    /// (`value: None` = tombstone).
    pub async fn send_one(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: Option<OwnedHeaders>,
    ) -> Result<(), String> {
        let acked = BatchAck::new(1);
        loop {
            let mut record: BaseRecord<'_, [u8], [u8], _> =
                BaseRecord::with_opaque_to(topic, acked.clone());
            if let Some(k) = key {
                record = record.key(k);
            }
            if let Some(v) = value {
                record = record.payload(v);
            }
            if let Some(h) = headers.clone() {
                record = record.headers(h);
            }
            match self.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((e, _)) => return Err(e.to_string()),
            }
        }
        // librdkafka reports every message within message.timeout.ms.
        self.wait(&acked).await
    }

    /// Serves pending delivery reports on the calling thread (as kcat does
    /// between sends): the thread that allocated the messages frees them.
    pub fn serve(&self) {
        // Each call takes at most one event (one produce response's batch).
        for _ in 0..8 {
            self.inner.producer.poll(Duration::ZERO);
        }
    }

    /// Waits until every record of `acked` is delivered, serving delivery
    /// reports meanwhile; the first failure, if any.
    pub async fn wait(&self, acked: &BatchAck) -> Result<(), String> {
        loop {
            self.serve();
            if acked.is_complete() {
                return acked.wait().await;
            }
            let _ = tokio::time::timeout(Duration::from_millis(1), acked.wait()).await;
        }
    }
}

/// How often unclaimed delivery reports are served.
const SWEEP: Duration = Duration::from_millis(20);

/// Creates the producer and starts its polling thread.
pub(crate) fn producer(bootstrap: &str) -> Result<Producer, String> {
    let producer: BaseProducer<AckContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // Idempotence keeps producer-internal retries from duplicating records.
        .set("enable.idempotence", "true")
        // Source tasks cap what they have in flight far below this, so a
        // batch never meets a full queue half-way (which would reorder it).
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(AckContext)
        .map_err(|e| e.to_string())?;
    let producer = Arc::new(producer);
    let stop = Arc::new(AtomicBool::new(false));
    let (polled, stopping) = (producer.clone(), stop.clone());
    // Waiters serve delivery reports themselves; this thread only sweeps up
    // reports nobody waits for (a task busy polling its source).
    let sweeper = std::thread::Builder::new()
        .name("connect-producer".into())
        .spawn(move || {
            while !stopping.load(Ordering::Acquire) {
                std::thread::sleep(SWEEP);
                for _ in 0..64 {
                    polled.poll(Duration::ZERO);
                }
            }
        })
        .map_err(|e| format!("starting the producer poll thread: {e}"))?;
    Ok(Producer {
        inner: Arc::new(Polled {
            handles: TopicHandles::default(),
            producer,
            stop,
            sweeper: Some(sweeper),
        }),
    })
}
