//! Rebalance callbacks of a stream thread's consumer.
//!
//! rdkafka runs them inside `poll` on the stream thread. They only record what
//! happened; the thread acts on it after `poll` returns (commit, suspend, then
//! the unassign or assign call librdkafka waits for). Nothing here may touch
//! the tasks: that is what hung threads when a callback and the poll loop
//! shared a lock.

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, TopicPartitionList};

/// A topic partition.
pub(crate) type Tp = (String, i32);

/// What a rebalance asked of the thread.
#[derive(Debug)]
pub(crate) enum RebalanceEvent {
    /// Partitions to give back; librdkafka waits for the thread's unassign call.
    Revoke(Vec<Tp>),
    /// The partitions were taken away already (session expired, fenced): do not commit.
    Lost(Vec<Tp>),
    /// The new assignment; librdkafka waits for the thread's assign call.
    Assign(Vec<Tp>),
}

/// Consumer context of a stream thread.
#[derive(Default)]
pub(crate) struct ThreadCtx {
    events: Mutex<Vec<RebalanceEvent>>,
    pending: AtomicBool,
    /// Set while the consumer closes: then callbacks answer librdkafka themselves.
    closing: AtomicBool,
}

impl ThreadCtx {
    /// Whether a callback recorded something since the last [`take`](Self::take).
    pub fn pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// The events recorded so far, oldest first.
    pub fn take(&self) -> Vec<RebalanceEvent> {
        self.pending.store(false, Ordering::Release);
        std::mem::take(&mut *self.events.lock())
    }

    /// From now on callbacks unassign and assign directly (final revocation on close).
    pub fn set_closing(&self) {
        self.closing.store(true, Ordering::Release);
    }

    fn record(&self, e: RebalanceEvent) {
        self.events.lock().push(e);
        self.pending.store(true, Ordering::Release);
    }
}

fn parts(tpl: &TopicPartitionList) -> Vec<Tp> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ClientContext for ThreadCtx {}

impl ConsumerContext for ThreadCtx {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let closing = self.closing.load(Ordering::Acquire);
        let answer: Option<KafkaResult<()>> = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS if !closing => {
                self.record(RebalanceEvent::Assign(parts(tpl)));
                None
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS
                if !closing && !consumer.assignment_lost() =>
            {
                self.record(RebalanceEvent::Revoke(parts(tpl)));
                None
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                if !closing {
                    self.record(RebalanceEvent::Lost(parts(tpl)));
                }
                Some(consumer.unassign())
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Some(consumer.assign(tpl)),
            other => {
                tracing::warn!("rebalance error: {other:?}");
                Some(consumer.unassign())
            }
        };
        if let Some(Err(e)) = answer {
            tracing::warn!("answering a rebalance failed: {e}");
        }
    }
}
