//! Runs one source task: poll → convert → produce → (after acks) commit offsets.
//! Up to [`MAX_IN_FLIGHT`] batches are in flight while the task polls the
//! next; offsets are stored in batch order, only for acknowledged batches.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::{mark_failed, SharedStatus, Target};
use crate::config::{ConnectorSettings, ErrorTolerance};
use crate::connector::{
    ConnectError, SourceOffset, SourcePartition, SourceRecord, SourceTask, StoredOffsets,
    TaskConfig,
};
use crate::converter::Converter;
use crate::errors::{with_retries, Retry};
use crate::offsets::OffsetStore;
use crate::produce_batch::KeyValue;
use crate::producer::{BatchAck, Producer};

pub(crate) struct SourceRunner {
    pub connector: String,
    pub settings: ConnectorSettings,
    pub task: Box<dyn SourceTask>,
    pub key_converter: Converter,
    pub value_converter: Converter,
    pub producer: Producer,
    pub offsets: OffsetStore,
    pub status: SharedStatus,
    pub control: watch::Receiver<Target>,
    /// How often offsets are stored while the task is busy.
    pub flush_interval: Duration,
    /// Offsets of acknowledged batches not stored yet, per partition.
    pub unwritten: Vec<(Arc<SourcePartition>, SourceOffset)>,
    /// When offsets were last stored.
    pub last_write: Instant,
}

impl SourceRunner {
    /// Runs until stopped or failed; never panics the worker.
    pub async fn run(mut self, config: TaskConfig, stored: StoredOffsets) {
        // A task created paused (its connector restored PAUSED) does not
        // start until it is resumed, as in Kafka Connect.
        if !super::wait_until_running(&mut self.control, &self.status).await {
            return;
        }
        if let Err(e) = self.task.start(config, stored).await {
            mark_failed(&self.status, &self.connector, &e.to_string());
            return;
        }
        if let Err(e) = self.run_loop().await {
            mark_failed(&self.status, &self.connector, &e.to_string());
        }
        self.task.stop().await;
    }

    async fn run_loop(&mut self) -> Result<(), ConnectError> {
        let mut inflight = VecDeque::new();
        let result = self.pipeline(&mut inflight).await;
        // Whatever was produced before a stop (or an error) still gets its
        // offsets stored once acknowledged, so a clean stop resumes exactly.
        let settled = self.settle(&mut inflight, true).await;
        result.and(settled)
    }

    async fn pipeline(&mut self, inflight: &mut VecDeque<InFlight>) -> Result<(), ConnectError> {
        loop {
            if *self.control.borrow() != Target::Run {
                // Store offsets before pausing or stopping.
                self.settle(inflight, true).await?;
            }
            if !super::wait_until_running(&mut self.control, &self.status).await {
                return Ok(());
            }
            // Not raced against control changes: cancelling a poll could drop
            // lines the task already consumed. Tasks return within their poll
            // interval, which bounds pause/stop latency.
            let records = self.poll().await?;
            let idle = records.is_empty();
            if !idle {
                inflight.push_back(self.enqueue(records).await?);
            }
            self.settle(inflight, idle).await?;
        }
    }

    /// Polls the task. A `Retriable` error is retried with backoff for as
    /// long as it lasts, as Kafka Connect does for a task's own retriable
    /// exceptions (`errors.retry.timeout` bounds only the worker's own
    /// operations); a pause or stop ends the wait with an empty batch, and
    /// the next poll after a resume is the retry.
    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        let mut retry = Retry::for_task(&self.settings);
        loop {
            match self.task.poll().await {
                Err(e) if e.is_retriable() => {
                    if !retry
                        .wait_unless(&e, &mut self.control, |t| t != Target::Run)
                        .await
                    {
                        return Ok(Vec::new());
                    }
                }
                other => return other,
            }
        }
    }

    /// Converts a batch and hands it to the producer without waiting for
    /// acknowledgements: the next poll overlaps with delivery.
    async fn enqueue(&mut self, records: Vec<SourceRecord>) -> Result<InFlight, ConnectError> {
        // Last offset per partition, in the order records came. Partitions
        // are shared `Arc`s, so the lookup is a pointer compare in practice.
        let mut latest: Vec<(Arc<SourcePartition>, SourceOffset)> = Vec::new();
        let acked = BatchAck::new(records.len());
        let (mut sent, mut bytes) = (0, 0);
        // Consecutive records for one topic go to the producer in one call.
        let mut run: Vec<KeyValue> = Vec::with_capacity(records.len());
        let mut run_topic: Option<Arc<str>> = None;
        let mut records = records.into_iter();
        while let Some(record) = records.next() {
            if let Some(offset) = record.source_offset {
                match latest.iter_mut().find(|(p, _)| {
                    Arc::ptr_eq(p, &record.source_partition) || **p == *record.source_partition
                }) {
                    Some(slot) => slot.1 = offset,
                    None => latest.push((record.source_partition.clone(), offset)),
                }
            }
            let key = match record.key {
                Some(k) => self.key_converter.into_bytes(k),
                None => Ok(None),
            };
            let (key, value) = match key.and_then(|k| {
                self.value_converter
                    .into_bytes(record.value)
                    .map(|v| (k, v))
            }) {
                Ok(kv) => kv,
                Err(e) if self.settings.errors_tolerance == ErrorTolerance::All => {
                    // As in Kafka Connect, a source record that cannot be
                    // converted is skipped and logged (the dead letter
                    // queue is for sink connectors).
                    tracing::warn!(connector = %self.connector, topic = %record.topic, error = %e, "skipping record that failed conversion");
                    acked.settle_one(None);
                    continue;
                }
                Err(e) => {
                    settle_rest(&acked, run.len() + 1 + records.len());
                    return Err(ConnectError::Fatal(format!("converting record: {e}")));
                }
            };
            if run_topic
                .as_ref()
                .is_some_and(|t| !Arc::ptr_eq(t, &record.topic) && **t != *record.topic)
            {
                if let Err(e) = self.send_run(run_topic.as_deref(), &mut run, &acked) {
                    settle_rest(&acked, 1 + records.len());
                    return Err(e);
                }
            }
            run_topic = Some(record.topic);
            bytes += key.as_ref().map_or(0, Vec::len) + value.as_ref().map_or(0, Vec::len);
            run.push((key, value));
            sent += 1;
        }
        self.send_run(run_topic.as_deref(), &mut run, &acked)?;
        Ok(InFlight {
            acked,
            latest,
            records: sent,
            bytes,
        })
    }

    /// Hands a run of records for one topic to the producer.
    fn send_run(
        &self,
        topic: Option<&str>,
        run: &mut Vec<KeyValue>,
        acked: &Arc<BatchAck>,
    ) -> Result<(), ConnectError> {
        let result = match topic {
            Some(topic) if !run.is_empty() => self.producer.send_batch(topic, run, acked),
            _ => Ok(()),
        };
        run.clear();
        result.map_err(ConnectError::Fatal)
    }

    /// Retires acknowledged batches in order; waits for the oldest batches
    /// when more than [`MAX_IN_FLIGHT`] batches or [`MAX_IN_FLIGHT_RECORDS`]
    /// records are pending, or for all when `all`. Offsets of retired
    /// batches are stored (one write per source partition) when `all` (idle,
    /// pause, stop) or every `offset.flush.interval.ms` while busy, so the
    /// broker round trip of an offset write is not paid per batch.
    async fn settle(
        &mut self,
        inflight: &mut VecDeque<InFlight>,
        all: bool,
    ) -> Result<(), ConnectError> {
        while let Some(front) = inflight.front() {
            let records: usize = inflight.iter().map(|b| b.records).sum();
            let bytes: usize = inflight.iter().map(|b| b.bytes).sum();
            let must_wait = all
                || inflight.len() > MAX_IN_FLIGHT
                || records > MAX_IN_FLIGHT_RECORDS
                || bytes > MAX_IN_FLIGHT_BYTES;
            if !must_wait && !front.acked.is_complete() {
                break;
            }
            let Some(batch) = inflight.pop_front() else {
                break;
            };
            if let Err(e) = self.producer.wait(&batch.acked).await {
                // librdkafka retried retriable send errors (idempotently)
                // until its delivery timeout, so this failure is final. As in
                // Kafka Connect with errors.tolerance=none the task fails;
                // the offsets of this batch and of every later one are
                // withheld (later batches may well be delivered, but storing
                // their offsets would skip the failed records), so a restart
                // reads the failed records again. What was acknowledged
                // before the failed batch is still stored.
                let withheld = 1 + inflight.len();
                inflight.clear();
                self.write_offsets().await?;
                return Err(ConnectError::Fatal(format!(
                    "delivering source records failed: {e} (offsets of {withheld} batch(es) from the failed one on were not stored; the records are read again when the task restarts)"
                )));
            }
            for (partition, offset) in batch.latest {
                match self
                    .unwritten
                    .iter_mut()
                    .find(|(p, _)| Arc::ptr_eq(p, &partition) || *p == partition)
                {
                    Some(slot) => slot.1 = offset,
                    None => self.unwritten.push((partition, offset)),
                }
            }
        }
        if !all && self.last_write.elapsed() < self.flush_interval {
            return Ok(());
        }
        self.write_offsets().await
    }

    /// Stores the offsets of retired (acknowledged) batches.
    async fn write_offsets(&mut self) -> Result<(), ConnectError> {
        if self.unwritten.is_empty() {
            return Ok(());
        }
        let latest = std::mem::take(&mut self.unwritten);
        for (partition, offset) in &latest {
            with_retries(&self.settings, || async {
                self.offsets
                    .write(&self.connector, partition, offset)
                    .await
                    .map_err(|e| ConnectError::Retriable(e.to_string()))
            })
            .await?;
        }
        self.last_write = Instant::now();
        Ok(())
    }
}

/// Batches produced but not yet acknowledged, at most, before polling waits.
const MAX_IN_FLIGHT: usize = 64;
/// Records produced but not yet acknowledged, at most (librdkafka's queue
/// holds 100,000 messages by default).
const MAX_IN_FLIGHT_RECORDS: usize = 50_000;

/// Marks `n` records that will never be sent as settled.
fn settle_rest(acked: &BatchAck, n: usize) {
    for _ in 0..n {
        acked.settle_one(None);
    }
}

/// Key and value bytes produced but not yet acknowledged, at most (far
/// below librdkafka's 1 GiB queue, so a batch never meets a full queue).
const MAX_IN_FLIGHT_BYTES: usize = 256 << 20;

/// A produced batch: its acknowledgement and the offsets it completes.
struct InFlight {
    acked: Arc<BatchAck>,
    latest: Vec<(Arc<SourcePartition>, SourceOffset)>,
    records: usize,
    bytes: usize,
}
