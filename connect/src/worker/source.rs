//! Runs one source task: poll → convert → produce → (after acks) commit offsets.
//! Up to [`MAX_IN_FLIGHT`] batches are in flight while the task polls the
//! next; offsets are stored in batch order, only for acknowledged batches.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::BaseRecord;
use tokio::sync::watch;

use super::ack::{BatchAck, SourceProducer};
use super::{mark_failed, SharedStatus, Target};
use crate::config::{ConnectorSettings, ErrorTolerance};
use crate::connector::{
    ConnectError, SourceOffset, SourcePartition, SourceRecord, SourceTask, StoredOffsets,
    TaskConfig,
};
use crate::converter::Converter;
use crate::errors::{with_retries, Retry};
use crate::offsets::OffsetStore;

pub(crate) struct SourceRunner {
    pub connector: String,
    pub settings: ConnectorSettings,
    pub task: Box<dyn SourceTask>,
    pub key_converter: Converter,
    pub value_converter: Converter,
    pub producer: SourceProducer,
    pub offsets: OffsetStore,
    pub status: SharedStatus,
    pub control: watch::Receiver<Target>,
    /// How often offsets are stored while the task is busy.
    pub flush_interval: Duration,
    /// Offsets of acknowledged batches not stored yet, per partition.
    pub unwritten: Vec<(SourcePartition, SourceOffset)>,
    /// When offsets were last stored.
    pub last_write: Instant,
}

impl SourceRunner {
    /// Runs until stopped or failed; never panics the worker.
    pub async fn run(mut self, config: TaskConfig, stored: StoredOffsets) {
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
            let records = poll_with_retries(self.task.as_mut(), &self.settings).await?;
            let idle = records.is_empty();
            if !idle {
                inflight.push_back(self.enqueue(records).await?);
            }
            self.settle(inflight, idle).await?;
        }
    }

    /// Converts a batch and hands it to the producer without waiting for
    /// acknowledgements: the next poll overlaps with delivery.
    async fn enqueue(&mut self, records: Vec<SourceRecord>) -> Result<InFlight, ConnectError> {
        let mut encoded = Vec::with_capacity(records.len());
        for record in &records {
            let key = match &record.key {
                Some(k) => self.key_converter.to_bytes(k),
                None => Ok(None),
            };
            match key.and_then(|k| self.value_converter.to_bytes(&record.value).map(|v| (k, v))) {
                Ok((k, v)) => encoded.push((record.topic.as_str(), k, v)),
                Err(e) if self.settings.errors_tolerance == ErrorTolerance::All => {
                    tracing::warn!(connector = %self.connector, error = %e, "skipping record that failed conversion");
                }
                Err(e) => return Err(ConnectError::Fatal(format!("converting record: {e}"))),
            }
        }
        let sent = encoded.len();
        let acked = BatchAck::new(sent);
        let mut pending = encoded.iter();
        while let Some((topic, key, value)) = pending.next() {
            loop {
                let mut rec: BaseRecord<'_, [u8], [u8], _> =
                    BaseRecord::with_opaque_to(topic, acked.clone());
                if let Some(k) = key {
                    rec = rec.key(k.as_slice());
                }
                if let Some(v) = value {
                    rec = rec.payload(v.as_slice());
                }
                match self.producer.send(rec) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    Err((e, _)) => {
                        // Not sent: settle this and every later record so the
                        // batch completes, then fail.
                        acked.settle_one(Some(e.to_string()));
                        for _ in pending.by_ref() {
                            acked.settle_one(None);
                        }
                        return Err(ConnectError::Fatal(format!("producing record: {e}")));
                    }
                }
            }
        }
        drop(encoded);
        // Last offset per partition, in the order records came.
        let mut latest: Vec<(SourcePartition, SourceOffset)> = Vec::new();
        for record in records {
            match latest
                .iter_mut()
                .find(|(p, _)| *p == record.source_partition)
            {
                Some(slot) => slot.1 = record.source_offset,
                None => latest.push((record.source_partition, record.source_offset)),
            }
        }
        Ok(InFlight {
            acked,
            latest,
            records: sent,
        })
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
        let latest = &mut self.unwritten;
        while let Some(front) = inflight.front() {
            let records: usize = inflight.iter().map(|b| b.records).sum();
            let must_wait =
                all || inflight.len() > MAX_IN_FLIGHT || records > MAX_IN_FLIGHT_RECORDS;
            if !must_wait && !front.acked.is_complete() {
                break;
            }
            let Some(batch) = inflight.pop_front() else {
                break;
            };
            batch.acked.wait().await.map_err(ConnectError::Fatal)?;
            for (partition, offset) in batch.latest {
                match latest.iter_mut().find(|(p, _)| *p == partition) {
                    Some(slot) => slot.1 = offset,
                    None => latest.push((partition, offset)),
                }
            }
        }
        if latest.is_empty() || (!all && self.last_write.elapsed() < self.flush_interval) {
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

/// A produced batch: its acknowledgement and the offsets it completes.
struct InFlight {
    acked: std::sync::Arc<BatchAck>,
    latest: Vec<(SourcePartition, SourceOffset)>,
    records: usize,
}

async fn poll_with_retries(
    task: &mut dyn SourceTask,
    settings: &ConnectorSettings,
) -> Result<Vec<SourceRecord>, ConnectError> {
    let mut retry = Retry::new(settings);
    loop {
        match task.poll().await {
            Err(e) if retry.wait(&e).await => {}
            other => return other,
        }
    }
}
