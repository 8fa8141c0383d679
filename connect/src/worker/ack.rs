//! Batch acknowledgements for source records: one shared counter per batch
//! instead of a future per record (what `FutureProducer` costs), so a
//! source task can keep up with a fast file or table.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{DeliveryResult, ProducerContext, ThreadedProducer};
use tokio::sync::Notify;

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

/// The producer source tasks share (idempotent, polled by its own thread).
pub(crate) type SourceProducer = ThreadedProducer<AckContext>;

/// Creates the source producer.
pub(crate) fn source_producer(bootstrap: &str) -> Result<SourceProducer, String> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // Idempotence keeps producer-internal retries from duplicating records.
        .set("enable.idempotence", "true")
        .create_with_context(AckContext)
        .map_err(|e| e.to_string())
}
