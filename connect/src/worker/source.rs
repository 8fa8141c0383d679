//! Runs one source task: poll → convert → produce → (after acks) commit offsets.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};
use tokio::sync::watch;

use super::{mark_failed, SharedStatus, Target};
use crate::config::{ConnectorSettings, ErrorTolerance};
use crate::connector::{ConnectError, SourceRecord, SourceTask, StoredOffsets, TaskConfig};
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
        loop {
            if !super::wait_until_running(&mut self.control, &self.status).await {
                return Ok(());
            }
            // Not raced against control changes: cancelling a poll could drop
            // lines the task already consumed. Tasks return within their poll
            // interval, which bounds pause/stop latency.
            let records = poll_with_retries(self.task.as_mut(), &self.settings).await?;
            if !records.is_empty() {
                self.deliver(records).await?;
            }
        }
    }

    /// Produces a batch and, once every record is acknowledged, stores the
    /// last offset of each source partition: a crash before that point
    /// re-sends the batch (at-least-once), never skips it.
    async fn deliver(&mut self, records: Vec<SourceRecord>) -> Result<(), ConnectError> {
        let mut encoded = Vec::with_capacity(records.len());
        for record in &records {
            let key = match &record.key {
                Some(k) => self.key_converter.to_bytes(k),
                None => Ok(None),
            };
            match key.and_then(|k| self.value_converter.to_bytes(&record.value).map(|v| (k, v))) {
                Ok((k, v)) => encoded.push(Some((record.topic.as_str(), k, v))),
                Err(e) if self.settings.errors_tolerance == ErrorTolerance::All => {
                    tracing::warn!(connector = %self.connector, error = %e, "skipping record that failed conversion");
                    encoded.push(None);
                }
                Err(e) => return Err(ConnectError::Fatal(format!("converting record: {e}"))),
            }
        }
        let sends = encoded.iter().flatten().map(|(topic, key, value)| {
            let mut rec: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic);
            if let Some(k) = key {
                rec = rec.key(k.as_slice());
            }
            if let Some(v) = value {
                rec = rec.payload(v.as_slice());
            }
            self.producer.send(rec, Duration::from_secs(60))
        });
        for result in futures::future::join_all(sends).await {
            // librdkafka already retried internally (idempotently) until
            // its delivery timeout, so a failure here is final for this run.
            result.map_err(|(e, _)| ConnectError::Fatal(format!("producing record: {e}")))?;
        }
        // Last offset per partition, in the order records came.
        let mut latest: Vec<&SourceRecord> = Vec::new();
        for record in &records {
            match latest
                .iter_mut()
                .find(|r| r.source_partition == record.source_partition)
            {
                Some(slot) => *slot = record,
                None => latest.push(record),
            }
        }
        for record in latest {
            with_retries(&self.settings, || async {
                self.offsets
                    .write(
                        &self.connector,
                        &record.source_partition,
                        &record.source_offset,
                    )
                    .await
                    .map_err(|e| ConnectError::Retriable(e.to_string()))
            })
            .await?;
        }
        Ok(())
    }
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
