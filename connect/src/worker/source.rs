//! Runs one source task: poll → convert → produce → (after acks) commit offsets.
//! Up to [`MAX_IN_FLIGHT`] batches are in flight while the task polls the
//! next; offsets are stored in batch order, only for acknowledged batches.

use std::collections::VecDeque;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
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

pub(crate) struct SourceRunner {
    pub connector: String,
    pub settings: ConnectorSettings,
    pub task: Box<dyn SourceTask>,
    pub key_converter: Converter,
    pub value_converter: Converter,
    pub producer: FutureProducer,
    pub offsets: OffsetStore,
    pub status: SharedStatus,
    pub control: watch::Receiver<Target>,
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
        let mut acks = Vec::with_capacity(records.len());
        for record in &records {
            let key = match &record.key {
                Some(k) => self.key_converter.to_bytes(k),
                None => Ok(None),
            };
            let (key, value) = match key
                .and_then(|k| self.value_converter.to_bytes(&record.value).map(|v| (k, v)))
            {
                Ok(kv) => kv,
                Err(e) if self.settings.errors_tolerance == ErrorTolerance::All => {
                    tracing::warn!(connector = %self.connector, error = %e, "skipping record that failed conversion");
                    continue;
                }
                Err(e) => return Err(ConnectError::Fatal(format!("converting record: {e}"))),
            };
            loop {
                let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&record.topic);
                if let Some(k) = &key {
                    rec = rec.key(k.as_slice());
                }
                if let Some(v) = &value {
                    rec = rec.payload(v.as_slice());
                }
                match self.producer.send_result(rec) {
                    Ok(ack) => {
                        acks.push(ack);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => {
                        return Err(ConnectError::Fatal(format!("producing record: {e}")))
                    }
                }
            }
        }
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
        let acked = tokio::spawn(async move {
            for ack in futures::future::join_all(acks).await {
                match ack {
                    Ok(Ok(_)) => {}
                    // librdkafka already retried internally (idempotently)
                    // until its delivery timeout, so this is final.
                    Ok(Err((e, _))) => return Err(format!("producing record: {e}")),
                    Err(_) => return Err("producer dropped a delivery report".into()),
                }
            }
            Ok(())
        });
        Ok(InFlight { acked, latest })
    }

    /// Retires acknowledged batches in order and stores their offsets (one
    /// write per source partition); waits for the oldest batches when more
    /// than [`MAX_IN_FLIGHT`] are pending, or for all when `all`.
    async fn settle(
        &mut self,
        inflight: &mut VecDeque<InFlight>,
        all: bool,
    ) -> Result<(), ConnectError> {
        let mut latest: Vec<(SourcePartition, SourceOffset)> = Vec::new();
        while let Some(front) = inflight.front() {
            let must_wait = all || inflight.len() > MAX_IN_FLIGHT;
            if !must_wait && !front.acked.is_finished() {
                break;
            }
            let Some(batch) = inflight.pop_front() else {
                break;
            };
            batch
                .acked
                .await
                .map_err(|e| ConnectError::Fatal(format!("delivery task: {e}")))?
                .map_err(ConnectError::Fatal)?;
            for (partition, offset) in batch.latest {
                match latest.iter_mut().find(|(p, _)| *p == partition) {
                    Some(slot) => slot.1 = offset,
                    None => latest.push((partition, offset)),
                }
            }
        }
        for (partition, offset) in &latest {
            with_retries(&self.settings, || async {
                self.offsets
                    .write(&self.connector, partition, offset)
                    .await
                    .map_err(|e| ConnectError::Retriable(e.to_string()))
            })
            .await?;
        }
        Ok(())
    }
}

/// Batches produced but not yet acknowledged, at most, before polling waits.
const MAX_IN_FLIGHT: usize = 4;

/// A produced batch: its acknowledgement and the offsets it completes.
struct InFlight {
    acked: tokio::task::JoinHandle<Result<(), String>>,
    latest: Vec<(SourcePartition, SourceOffset)>,
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
