//! Runs one sink task: consume → convert → put; flush, then commit only
//! the offsets that flush made durable.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::watch;

use super::{mark_failed, SharedStatus, Target};
use crate::config::{ConnectorSettings, ErrorTolerance};
use crate::connector::{ConnectError, SinkRecord, SinkTask, TaskConfig, TopicPartition};
use crate::converter::Converter;
use crate::errors::{send_to_dlq, with_retries, FailedRecord, Retry};

const MAX_BATCH: usize = 2000;
const BATCH_WAIT: Duration = Duration::from_millis(200);

pub(crate) struct SinkRunner {
    pub connector: String,
    pub settings: ConnectorSettings,
    pub task: Box<dyn SinkTask>,
    pub topics: Vec<String>,
    pub bootstrap: String,
    pub flush_interval_ms: u64,
    pub key_converter: Converter,
    pub value_converter: Converter,
    pub producer: FutureProducer,
    pub status: SharedStatus,
    pub control: watch::Receiver<Target>,
}

struct Progress {
    opened: BTreeSet<TopicPartition>,
    /// Next offset to consume per partition, for records already put.
    pending: BTreeMap<TopicPartition, i64>,
    last_flush: Instant,
}

impl SinkRunner {
    /// Runs until stopped or failed; never panics the worker.
    pub async fn run(mut self, config: TaskConfig) {
        let consumer = match self.consumer() {
            Ok(c) => c,
            Err(e) => return mark_failed(&self.status, &self.connector, &e.to_string()),
        };
        if let Err(e) = self.task.start(config).await {
            return mark_failed(&self.status, &self.connector, &e.to_string());
        }
        let mut progress = Progress {
            opened: BTreeSet::new(),
            pending: BTreeMap::new(),
            last_flush: Instant::now(),
        };
        let result = self.run_loop(&consumer, &mut progress).await;
        // Commit what is durable even when stopping, so a restart resumes exactly.
        let result = match result {
            Ok(()) => self.flush_and_commit(&consumer, &mut progress).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            mark_failed(&self.status, &self.connector, &e.to_string());
        }
        let opened: Vec<TopicPartition> = progress.opened.into_iter().collect();
        if let Err(e) = self.task.close(&opened).await {
            tracing::warn!(connector = %self.connector, error = %e, "closing partitions failed");
        }
        self.task.stop().await;
    }

    fn consumer(&self) -> Result<StreamConsumer, ConnectError> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", format!("connect-{}", self.connector))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .map_err(|e| ConnectError::Fatal(format!("creating consumer: {e}")))?;
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| ConnectError::Fatal(format!("subscribing: {e}")))?;
        Ok(consumer)
    }

    async fn run_loop(
        &mut self,
        consumer: &StreamConsumer,
        progress: &mut Progress,
    ) -> Result<(), ConnectError> {
        loop {
            if !super::wait_until_running(&mut self.control, &self.status).await {
                return Ok(());
            }
            let batch = self.next_batch(consumer).await;
            if !batch.is_empty() {
                self.put(batch, progress).await?;
            }
            if progress.last_flush.elapsed() >= Duration::from_millis(self.flush_interval_ms) {
                self.flush_and_commit(consumer, progress).await?;
            }
        }
    }

    async fn next_batch(&mut self, consumer: &StreamConsumer) -> Vec<OwnedMessage> {
        use futures::FutureExt;
        let mut batch = Vec::new();
        // One timer for the whole batch (not one per message).
        let deadline = tokio::time::sleep(BATCH_WAIT);
        tokio::pin!(deadline);
        while batch.len() < MAX_BATCH {
            // Fast path: take what librdkafka already has queued.
            let msg = match consumer.recv().now_or_never() {
                Some(msg) => msg,
                None => tokio::select! {
                    msg = consumer.recv() => msg,
                    _ = &mut deadline => break,
                    _ = self.control.changed() => break,
                },
            };
            match msg {
                Ok(m) => batch.push(m.detach()),
                // Consumer errors are transient (librdkafka reconnects).
                Err(e) => {
                    tracing::warn!(connector = %self.connector, error = %e, "consume error");
                    break;
                }
            }
        }
        batch
    }

    async fn put(
        &mut self,
        batch: Vec<OwnedMessage>,
        progress: &mut Progress,
    ) -> Result<(), ConnectError> {
        let mut records = Vec::with_capacity(batch.len());
        let mut new_partitions = Vec::new();
        for msg in &batch {
            let tp = TopicPartition {
                topic: msg.topic().to_string(),
                partition: msg.partition(),
            };
            if !progress.opened.contains(&tp) {
                progress.opened.insert(tp.clone());
                new_partitions.push(tp.clone());
            }
            progress.pending.insert(tp, msg.offset() + 1);
            let converted = self.key_converter.from_bytes(msg.key()).and_then(|k| {
                self.value_converter
                    .from_bytes(msg.payload())
                    .map(|v| (k, v))
            });
            match converted {
                Ok((key, value)) => records.push(SinkRecord {
                    topic: msg.topic().to_string(),
                    partition: msg.partition(),
                    offset: msg.offset(),
                    key: if key.is_null() { None } else { Some(key) },
                    value,
                }),
                Err(e) if self.settings.errors_tolerance == ErrorTolerance::All => {
                    tolerate(
                        &self.settings,
                        &self.producer,
                        &self.connector,
                        msg,
                        &e.to_string(),
                    )
                    .await?;
                }
                Err(e) => {
                    return Err(ConnectError::Fatal(format!(
                        "converting record {}-{}@{}: {e}",
                        msg.topic(),
                        msg.partition(),
                        msg.offset()
                    )))
                }
            }
        }
        if !new_partitions.is_empty() {
            self.task.open(&new_partitions).await?;
        }
        let mut retry = Retry::new(&self.settings);
        loop {
            // put consumes the batch; a retry re-sends the same records.
            match self.task.put(records.clone()).await {
                Err(e) if retry.wait(&e).await => {}
                other => return other,
            }
        }
    }

    async fn flush_and_commit(
        &mut self,
        consumer: &StreamConsumer,
        progress: &mut Progress,
    ) -> Result<(), ConnectError> {
        progress.last_flush = Instant::now();
        if progress.pending.is_empty() {
            return Ok(());
        }
        let mut retry = Retry::new(&self.settings);
        loop {
            match self.task.flush().await {
                Err(e) if retry.wait(&e).await => {}
                other => break other?,
            }
        }
        let mut tpl = TopicPartitionList::new();
        for (tp, next) in &progress.pending {
            tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*next))
                .map_err(|e| ConnectError::Fatal(e.to_string()))?;
        }
        consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| ConnectError::Retriable(format!("committing offsets: {e}")))?;
        progress.pending.clear();
        Ok(())
    }
}

/// A record failed with errors.tolerance=all: log it and, if configured,
/// send its original bytes to the dead letter queue.
async fn tolerate(
    settings: &ConnectorSettings,
    producer: &FutureProducer,
    connector: &str,
    msg: &OwnedMessage,
    error: &str,
) -> Result<(), ConnectError> {
    tracing::warn!(connector = %connector, topic = msg.topic(), offset = msg.offset(), error, "skipping bad record");
    let Some(dlq) = &settings.dlq_topic else {
        return Ok(());
    };
    let failed = FailedRecord {
        topic: msg.topic(),
        partition: msg.partition(),
        offset: msg.offset(),
        key: msg.key(),
        value: msg.payload(),
        connector,
        stage: "VALUE_CONVERTER",
        error,
    };
    let headers = settings.dlq_context_headers.unwrap_or(false);
    with_retries(settings, || send_to_dlq(producer, dlq, headers, &failed)).await
}
