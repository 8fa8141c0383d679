//! Runs one sink task: consume → convert → put; flush, then commit only
//! the offsets that flush made durable. The next batch is consumed and
//! converted while the task writes the current one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::watch;

use super::sink_decode::{Decoder, Prepared};
use super::{mark_failed, SharedStatus, Target};
use crate::config::ErrorTolerance;
use crate::connector::{ConnectError, SinkTask, TaskConfig, TopicPartition};
use crate::errors::Retry;

const MAX_BATCH: usize = 2000;
const BATCH_WAIT: Duration = Duration::from_millis(200);

pub(crate) struct SinkRunner {
    pub task: Box<dyn SinkTask>,
    pub decoder: Decoder,
    pub topics: Vec<String>,
    pub bootstrap: String,
    pub flush_interval_ms: u64,
    pub status: SharedStatus,
    pub control: watch::Receiver<Target>,
}

type SinkConsumer = StreamConsumer<RebalanceListener>;

/// Partition assignment changes, as librdkafka reports them.
enum Rebalance {
    Assigned(Vec<TopicPartition>),
    Revoked(Vec<TopicPartition>),
}

/// Records rebalances for the runner: the callbacks run inside librdkafka's
/// poll and cannot await the task's `open`/`flush`/`close`.
#[derive(Clone, Default)]
struct RebalanceListener {
    events: Arc<Mutex<Vec<Rebalance>>>,
}

impl ClientContext for RebalanceListener {}

impl ConsumerContext for RebalanceListener {
    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        _offsets: &TopicPartitionList,
    ) {
        if let Err(e) = result {
            tracing::warn!(error = %e, "offset commit failed; those records will be put again after a restart");
        }
    }

    fn pre_rebalance(
        &self,
        _consumer: &BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        if let rdkafka::consumer::Rebalance::Revoke(tpl) = rebalance {
            self.events.lock().push(Rebalance::Revoked(partitions(tpl)));
        }
    }

    fn post_rebalance(
        &self,
        _consumer: &BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        if let rdkafka::consumer::Rebalance::Assign(tpl) = rebalance {
            self.events
                .lock()
                .push(Rebalance::Assigned(partitions(tpl)));
        }
    }
}

fn partitions(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements()
        .iter()
        .map(|e| TopicPartition {
            topic: e.topic().to_string(),
            partition: e.partition(),
        })
        .collect()
}

struct Progress {
    /// Partitions the task was told about with `open`.
    opened: BTreeSet<TopicPartition>,
    /// Next offset to consume per owned partition, for records already put.
    positions: BTreeMap<TopicPartition, i64>,
    /// Records were put since the last commit.
    uncommitted: bool,
    /// Consumed but not put when their partition was revoked: put after all
    /// if the partition comes back to this task in the same rebalance
    /// (librdkafka was seen to continue a partition re-assigned to the same
    /// consumer after what it had delivered, so dropping them lost them in
    /// tests/connect_sink_tasks.rs), dropped
    /// otherwise (the new owner reads them from the last commit).
    held: Vec<OwnedMessage>,
    last_flush: Instant,
}

impl SinkRunner {
    /// Runs until stopped or failed; never panics the worker.
    pub async fn run(mut self, config: TaskConfig) {
        let listener = RebalanceListener::default();
        let consumer = match self.consumer(listener.clone()) {
            Ok(c) => c,
            Err(e) => return mark_failed(&self.status, &self.decoder.connector, &e.to_string()),
        };
        if let Err(e) = self.task.start(config).await {
            return mark_failed(&self.status, &self.decoder.connector, &e.to_string());
        }
        let mut progress = Progress {
            opened: BTreeSet::new(),
            positions: BTreeMap::new(),
            uncommitted: false,
            held: Vec::new(),
            last_flush: Instant::now(),
        };
        let result = self.run_loop(&consumer, &listener, &mut progress).await;
        // Commit what is durable even when stopping, so a restart resumes exactly.
        let result = match result {
            Ok(()) => self.flush_and_commit(&consumer, &mut progress).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            mark_failed(&self.status, &self.decoder.connector, &e.to_string());
        }
        let opened: Vec<TopicPartition> = progress.opened.into_iter().collect();
        if let Err(e) = self.task.close(&opened).await {
            tracing::warn!(connector = %self.decoder.connector, error = %e, "closing partitions failed");
        }
        self.task.stop().await;
    }

    fn consumer(&self, listener: RebalanceListener) -> Result<SinkConsumer, ConnectError> {
        let consumer: SinkConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.bootstrap)
            .set("group.id", format!("connect-{}", self.decoder.connector))
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            // librdkafka's 1 s default backoff idles the task whenever
            // its fetch queue drains.
            .set("fetch.queue.backoff.ms", "10")
            .create_with_context(listener)
            .map_err(|e| ConnectError::Fatal(format!("creating consumer: {e}")))?;
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| ConnectError::Fatal(format!("subscribing: {e}")))?;
        Ok(consumer)
    }

    async fn run_loop(
        &mut self,
        consumer: &SinkConsumer,
        listener: &RebalanceListener,
        progress: &mut Progress,
    ) -> Result<(), ConnectError> {
        let mut next: Option<Prepared> = None;
        loop {
            if *self.control.borrow() != Target::Run {
                // Consumed but not put: hold it through a pause; a stop
                // drops it (its offsets were never committed).
                if !self.wait_while_paused(consumer, &mut next).await {
                    return Ok(());
                }
            }
            let prepared = match next.take() {
                Some(p) => p,
                None => {
                    let messages = next_batch(consumer, &mut self.control).await;
                    self.decoder.prepare(messages).await?
                }
            };
            let prepared = self
                .rebalanced(consumer, listener, progress, prepared)
                .await?;
            if !prepared.messages.is_empty() {
                for (tp, last) in last_offsets(&prepared.messages) {
                    progress.positions.insert(tp, last + 1);
                }
                progress.uncommitted = true;
                // Write this batch while the next one is consumed.
                let running = *self.control.borrow() == Target::Run;
                let (task, decoder, control) =
                    (self.task.as_mut(), &self.decoder, &mut self.control);
                let (put, fetched) = tokio::join!(put_batch(task, decoder, prepared), async move {
                    if !running {
                        return Ok(None);
                    }
                    let messages = next_batch(consumer, control).await;
                    decoder.prepare(messages).await.map(Some)
                });
                put?;
                next = fetched?;
            }
            if progress.last_flush.elapsed() >= Duration::from_millis(self.flush_interval_ms) {
                self.flush_and_commit(consumer, progress).await?;
            }
        }
    }

    /// Applies rebalances reported since the last batch: revoked partitions
    /// are flushed, committed and closed (their records not put yet are
    /// held until the assignment says who owns them now); assigned ones are
    /// opened. Partitions seen in a batch without an assignment event (none
    /// should be) are opened too.
    async fn rebalanced(
        &mut self,
        consumer: &SinkConsumer,
        listener: &RebalanceListener,
        progress: &mut Progress,
        mut prepared: Prepared,
    ) -> Result<Prepared, ConnectError> {
        let events = std::mem::take(&mut *listener.events.lock());
        for event in events {
            match event {
                Rebalance::Revoked(tps) => {
                    // Best effort: after a revocation the commit can be
                    // refused (new generation); the next owner then re-reads
                    // from the last commit, so records repeat, never vanish.
                    self.flush_and_commit(consumer, progress).await?;
                    for tp in &tps {
                        progress.positions.remove(tp);
                    }
                    let closing: Vec<TopicPartition> = tps
                        .iter()
                        .filter(|tp| progress.opened.remove(*tp))
                        .cloned()
                        .collect();
                    if !closing.is_empty() {
                        self.task.close(&closing).await?;
                    }
                    prepared = set_aside(prepared, &tps, &mut progress.held);
                }
                Rebalance::Assigned(tps) => {
                    let held = std::mem::take(&mut progress.held);
                    let (back, gone): (Vec<_>, Vec<_>) =
                        held.into_iter().partition(|m| in_list(&tps, m));
                    if !gone.is_empty() {
                        tracing::debug!(connector = %self.decoder.connector, records = gone.len(), "records of partitions now owned elsewhere dropped");
                    }
                    prepared = put_first(back, prepared);
                    let opening: Vec<TopicPartition> = tps
                        .into_iter()
                        .filter(|tp| progress.opened.insert(tp.clone()))
                        .collect();
                    if !opening.is_empty() {
                        self.task.open(&opening).await?;
                    }
                }
            }
        }
        let mut unseen = Vec::new();
        for (tp, _) in last_offsets(&prepared.messages) {
            if progress.opened.insert(tp.clone()) {
                unseen.push(tp);
            }
        }
        if !unseen.is_empty() {
            self.task.open(&unseen).await?;
        }
        Ok(prepared)
    }

    /// While paused, keeps polling (so the group does not evict the task
    /// after max.poll.interval.ms) with every assigned partition paused.
    /// Returns false when the task must stop.
    async fn wait_while_paused(
        &mut self,
        consumer: &SinkConsumer,
        held: &mut Option<Prepared>,
    ) -> bool {
        let mut paused = TopicPartitionList::new();
        loop {
            let target = *self.control.borrow_and_update();
            match target {
                Target::Stop => return false,
                Target::Run => {
                    if paused.count() > 0 {
                        if let Err(e) = consumer.resume(&paused) {
                            tracing::warn!(connector = %self.decoder.connector, error = %e, "resuming partitions");
                        }
                    }
                    self.status.lock().0 = super::State::Running;
                    return true;
                }
                Target::Pause => {
                    self.status.lock().0 = super::State::Paused;
                    // The assignment can change during a pause.
                    if let Ok(assigned) = consumer.assignment() {
                        if assigned.count() > 0 && consumer.pause(&assigned).is_ok() {
                            paused = assigned;
                        }
                    }
                    tokio::select! {
                        changed = self.control.changed() => {
                            if changed.is_err() {
                                return false;
                            }
                        }
                        msg = consumer.recv() => {
                            // Fetched before the pause took effect: keep it
                            // for after the pause.
                            if let Ok(m) = msg {
                                let prepared = held.get_or_insert_with(Prepared::default);
                                prepared.messages.push(m.detach());
                                prepared.skipped.push(false);
                                // Converted again (all of it) when put.
                                prepared.converted = false;
                            }
                        }
                    }
                }
            }
        }
    }

    async fn flush_and_commit(
        &mut self,
        consumer: &SinkConsumer,
        progress: &mut Progress,
    ) -> Result<(), ConnectError> {
        self.flush(progress).await?;
        commit(consumer, progress)
    }

    /// Makes everything put so far durable (with retries).
    async fn flush(&mut self, progress: &mut Progress) -> Result<(), ConnectError> {
        progress.last_flush = Instant::now();
        if !progress.uncommitted {
            return Ok(());
        }
        let mut retry = Retry::new(&self.decoder.settings);
        loop {
            match self.task.flush().await {
                Err(e) if retry.wait(&e).await => {}
                other => return other,
            }
        }
    }
}

/// Commits the position of every owned partition (everything put there
/// was flushed just before). Asynchronous, as Kafka Connect's periodic
/// commits are: a synchronous commit issued while the group rebalances
/// waits for a rejoin that needs this very thread to poll. A failed commit
/// only means records are put again after a restart (the callback logs it);
/// closing the consumer waits for commits still in flight.
fn commit(consumer: &SinkConsumer, progress: &mut Progress) -> Result<(), ConnectError> {
    if !progress.uncommitted || progress.positions.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for (tp, next) in &progress.positions {
        tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*next))
            .map_err(|e| ConnectError::Fatal(e.to_string()))?;
    }
    consumer
        .commit(&tpl, CommitMode::Async)
        .map_err(|e| ConnectError::Retriable(format!("committing offsets: {e}")))?;
    progress.uncommitted = false;
    Ok(())
}

/// Consumes up to [`MAX_BATCH`] messages, waiting at most [`BATCH_WAIT`]
/// for more, or until the control target changes.
async fn next_batch(
    consumer: &SinkConsumer,
    control: &mut watch::Receiver<Target>,
) -> Vec<OwnedMessage> {
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
                _ = control.changed() => break,
            },
        };
        match msg {
            Ok(m) => batch.push(m.detach()),
            // Consumer errors are transient (librdkafka reconnects).
            Err(e) => {
                tracing::warn!(error = %e, "consume error");
                break;
            }
        }
    }
    batch
}

/// Puts a batch, retrying retriable failures; a record the task refuses
/// goes to the dead letter queue under errors.tolerance=all and the rest
/// is put again.
async fn put_batch(
    task: &mut dyn SinkTask,
    decoder: &Decoder,
    prepared: Prepared,
) -> Result<(), ConnectError> {
    let Prepared {
        messages,
        records,
        mut origin,
        mut skipped,
        converted,
    } = prepared;
    let mut records = Some(records).filter(|_| converted);
    let mut retry = Retry::new(&decoder.settings);
    loop {
        // `put` consumes its records: a retry converts the messages again
        // rather than keeping a copy of every batch.
        let batch = match records.take() {
            Some(r) => r,
            None => {
                let (r, o) = decoder.convert(&messages, &mut skipped).await?;
                origin = o;
                r
            }
        };
        if batch.is_empty() {
            return Ok(());
        }
        match task.put(batch).await {
            Err(ConnectError::BadRecord { index, message })
                if decoder.settings.errors_tolerance == ErrorTolerance::All
                    && index < origin.len() =>
            {
                let i = origin[index];
                decoder.tolerate(&messages[i], "TASK_PUT", &message).await?;
                skipped[i] = true;
            }
            Err(ConnectError::BadRecord { message, .. }) => {
                return Err(ConnectError::Fatal(message))
            }
            Err(e) if retry.wait(&e).await => {}
            other => return other,
        }
    }
}

/// Each partition of a batch with its last offset, without a key
/// allocation per message (a batch rarely spans more than a few partitions).
fn last_offsets(messages: &[OwnedMessage]) -> Vec<(TopicPartition, i64)> {
    let mut out: Vec<(TopicPartition, i64)> = Vec::new();
    for m in messages {
        let same = |tp: &TopicPartition| tp.partition == m.partition() && tp.topic == m.topic();
        match out.iter_mut().rev().find(|(tp, _)| same(tp)) {
            Some(entry) => entry.1 = m.offset(),
            None => out.push((
                TopicPartition {
                    topic: m.topic().to_string(),
                    partition: m.partition(),
                },
                m.offset(),
            )),
        }
    }
    out
}

fn in_list(tps: &[TopicPartition], m: &OwnedMessage) -> bool {
    tps.iter()
        .any(|tp| tp.partition == m.partition() && tp.topic == m.topic())
}

/// Moves the messages of `revoked` partitions out of the batch into `held`.
fn set_aside(
    prepared: Prepared,
    revoked: &[TopicPartition],
    held: &mut Vec<OwnedMessage>,
) -> Prepared {
    if !prepared.messages.iter().any(|m| in_list(revoked, m)) {
        return prepared;
    }
    let (out, kept): (Vec<_>, Vec<_>) = prepared
        .messages
        .into_iter()
        .partition(|m| in_list(revoked, m));
    held.extend(out);
    reconverted(kept)
}

/// The batch with `first` (older messages) in front.
fn put_first(first: Vec<OwnedMessage>, prepared: Prepared) -> Prepared {
    if first.is_empty() {
        return prepared;
    }
    let mut messages = first;
    messages.extend(prepared.messages);
    reconverted(messages)
}

/// A batch to be converted again by `put_batch`.
fn reconverted(messages: Vec<OwnedMessage>) -> Prepared {
    Prepared {
        skipped: vec![false; messages.len()],
        messages,
        converted: false,
        ..Prepared::default()
    }
}
