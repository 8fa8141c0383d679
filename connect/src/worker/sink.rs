//! Runs one sink task: consume → convert → put; flush, then commit only
//! the offsets that flush made durable. The next batch is consumed and
//! converted while the task writes the current one.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::watch;

use super::sink_decode::{Decoder, Prepared};
use super::{mark_failed, SharedStatus, Target};
use crate::config::ErrorTolerance;
use crate::connector::{ConnectError, SinkTask, TaskConfig, TopicPartition};
use crate::errors::Retry;

const MAX_BATCH: usize = 2000;
/// How often a paused task looks for rebalance events.
const PAUSED_EVENT_CHECK: Duration = Duration::from_millis(100);
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
///
/// A revocation is not completed in the callback: librdkafka lets the
/// application call `unassign` later (the group waits for this member, up
/// to its rebalance timeout), so the runner first flushes the task, commits
/// the revoked partitions' offsets synchronously — while this member still
/// owns them, as Kafka Connect commits inside `onPartitionsRevoked` — closes
/// them, and only then unassigns. Committing from the callback itself could
/// not include what the task was still putting at that moment (the
/// callback runs while a `put` is suspended on the same thread).
#[derive(Clone, Default)]
struct RebalanceListener {
    events: Arc<Mutex<Vec<Rebalance>>>,
    /// A revocation waits for the runner's `unassign`.
    unassign_pending: Arc<AtomicBool>,
    /// The consumer is being closed: revocations complete at once (the
    /// runner no longer handles events; close waits for the unassign).
    closing: Arc<AtomicBool>,
}

impl RebalanceListener {
    fn push(&self, event: Rebalance) {
        // Locked only to push; never held across a librdkafka call.
        self.events.lock().push(event);
    }

    fn has_events(&self) -> bool {
        !self.events.lock().is_empty()
    }

    /// Completes a deferred revocation (gives the partitions away).
    fn unassign(&self, consumer: &SinkConsumer) {
        if self.unassign_pending.swap(false, Ordering::AcqRel) {
            if let Err(e) = consumer.unassign() {
                tracing::warn!(error = %e, "unassigning revoked partitions");
            }
        }
    }
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

    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                if let Err(e) = consumer.assign(tpl) {
                    tracing::warn!(error = %e, "assigning partitions");
                }
                self.push(Rebalance::Assigned(partitions(tpl)));
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS
                if !self.closing.load(Ordering::Acquire) =>
            {
                self.unassign_pending.store(true, Ordering::Release);
                self.push(Rebalance::Revoked(partitions(tpl)));
            }
            other => {
                if other != RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS {
                    tracing::warn!(error = ?other, "rebalance error; giving up the assignment");
                }
                self.unassign_pending.store(false, Ordering::Release);
                if let Err(e) = consumer.unassign() {
                    tracing::warn!(error = %e, "unassigning partitions");
                }
            }
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
        // A task created paused does not even join the group until it is
        // resumed (Kafka Connect starts a paused task only on resume).
        if !super::wait_until_running(&mut self.control, &self.status).await {
            return;
        }
        let listener = RebalanceListener::default();
        let consumer = match self.consumer(listener.clone()) {
            Ok(c) => c,
            Err(e) => return mark_failed(&self.status, &self.decoder.connector, &e.to_string()),
        };
        if let Err(e) = self.task.start(config).await {
            // Dropping the consumer serves its queued rebalances: they must
            // complete at once.
            listener.closing.store(true, Ordering::Release);
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
        // Commit what is durable even when stopping, so a restart resumes
        // exactly; synchronously, while the partitions are still ours (a
        // revocation may be pending: it is completed below).
        let result = match result {
            Ok(()) => self
                .flush(&mut progress)
                .await
                .and_then(|()| commit(&consumer, &mut progress, CommitMode::Sync)),
            Err(e) => Err(e),
        };
        match result {
            // Stopped while retrying a put: nothing failed, nothing is
            // committed past what was flushed.
            Err(e) if e.is_retriable() && *self.control.borrow() == Target::Stop => {
                tracing::info!(connector = %self.decoder.connector, error = %e, "stopped while retrying");
            }
            Err(e) => mark_failed(&self.status, &self.decoder.connector, &e.to_string()),
            Ok(()) => {}
        }
        let opened: Vec<TopicPartition> = progress.opened.into_iter().collect();
        if let Err(e) = self.task.close(&opened).await {
            tracing::warn!(connector = %self.decoder.connector, error = %e, "closing partitions failed");
        }
        self.task.stop().await;
        // From here on revocations (the consumer's close makes one) complete
        // in the callback; a pending one is completed now, or close would
        // wait for it forever.
        listener.closing.store(true, Ordering::Release);
        listener.unassign(&consumer);
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
                if !self
                    .wait_while_paused(consumer, listener, progress, &mut next)
                    .await?
                {
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
                let retry_control = self.control.clone();
                let (task, decoder, control) =
                    (self.task.as_mut(), &self.decoder, &mut self.control);
                let put = put_batch(task, decoder, prepared, retry_control);
                let (put, fetched) = tokio::join!(put, async move {
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
                self.flush(progress).await?;
                commit(consumer, progress, CommitMode::Async)?;
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
                    // The partitions are still assigned (the unassign waits
                    // for this): flush, then commit synchronously, so the next
                    // owner starts exactly after what was put here. librdkafka
                    // sends the commit from its own thread with the current
                    // generation, which the coordinator accepts while it waits
                    // for this member to rejoin; nothing here polls or holds a
                    // lock, so no callback can wait on this thread. A refused
                    // commit (this member was evicted) only means the next
                    // owner puts records again.
                    self.flush(progress).await?;
                    if let Err(e) = commit(consumer, progress, CommitMode::Sync) {
                        tracing::warn!(connector = %self.decoder.connector, error = %e, "committing revoked partitions");
                    }
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
                    listener.unassign(consumer);
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
        let prepared = drop_repeats(prepared, &progress.positions);
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
    /// after max.poll.interval.ms) with every assigned partition paused, and
    /// handles rebalances (a revocation waits for the runner). Returns false
    /// when the task must stop.
    async fn wait_while_paused(
        &mut self,
        consumer: &SinkConsumer,
        listener: &RebalanceListener,
        progress: &mut Progress,
        held: &mut Option<Prepared>,
    ) -> Result<bool, ConnectError> {
        let mut paused = TopicPartitionList::new();
        loop {
            if listener.has_events() {
                let kept = held.take().unwrap_or_default();
                let kept = self.rebalanced(consumer, listener, progress, kept).await?;
                *held = Some(kept).filter(|p| !p.messages.is_empty());
            }
            let target = *self.control.borrow_and_update();
            match target {
                Target::Stop => return Ok(false),
                Target::Run => {
                    if paused.count() > 0 {
                        if let Err(e) = consumer.resume(&paused) {
                            tracing::warn!(connector = %self.decoder.connector, error = %e, "resuming partitions");
                        }
                    }
                    self.status.set(super::State::Running, None);
                    return Ok(true);
                }
                Target::Pause => {
                    self.status.set(super::State::Paused, None);
                    // The assignment can change during a pause.
                    if let Ok(assigned) = consumer.assignment() {
                        if assigned.count() > 0 && consumer.pause(&assigned).is_ok() {
                            paused = assigned;
                        }
                    }
                    tokio::select! {
                        changed = self.control.changed() => {
                            if changed.is_err() {
                                return Ok(false);
                            }
                        }
                        // Rebalance callbacks run inside recv() even when
                        // it returns nothing: look at their events now and then.
                        _ = tokio::time::sleep(PAUSED_EVENT_CHECK) => {}
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

    /// Makes everything put so far durable (with retries).
    async fn flush(&mut self, progress: &mut Progress) -> Result<(), ConnectError> {
        progress.last_flush = Instant::now();
        if !progress.uncommitted {
            return Ok(());
        }
        // Retried like `put` while the task runs; once it is stopping, only
        // for errors.retry.timeout (a stop must end).
        let mut retry = Retry::for_task(&self.decoder.settings);
        let mut stopping = Retry::new(&self.decoder.settings);
        loop {
            match self.task.flush().await {
                Err(e) if *self.control.borrow() == Target::Stop && stopping.wait(&e).await => {}
                Err(e) if retry.wait_unless(&e, &mut self.control, is_stop).await => {}
                other => return other,
            }
        }
    }
}

/// Commits the position of every owned partition (everything put there
/// was flushed just before). Periodic commits are asynchronous, as Kafka
/// Connect's are (a failed one only means records are put again after a
/// restart; the callback logs it). Commits on revocation and on stop are
/// synchronous and made while the partitions are still assigned (see
/// [`RebalanceListener`]).
fn commit(
    consumer: &SinkConsumer,
    progress: &mut Progress,
    mode: CommitMode,
) -> Result<(), ConnectError> {
    if !progress.uncommitted || progress.positions.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for (tp, next) in &progress.positions {
        tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*next))
            .map_err(|e| ConnectError::Fatal(e.to_string()))?;
    }
    consumer
        .commit(&tpl, mode)
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
    mut control: watch::Receiver<Target>,
) -> Result<(), ConnectError> {
    let Prepared {
        messages,
        records,
        mut origin,
        mut skipped,
        converted,
    } = prepared;
    let mut records = Some(records).filter(|_| converted);
    // A task's own Retriable errors are retried until they stop (as Kafka
    // Connect redelivers a batch after a RetriableException), or the task
    // is stopped.
    let mut retry = Retry::for_task(&decoder.settings);
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
            Err(e) if retry.wait_unless(&e, &mut control, is_stop).await => {}
            other => return other,
        }
    }
}

fn is_stop(target: Target) -> bool {
    target == Target::Stop
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

/// The batch without messages already put: below a partition's position,
/// or repeated within the batch. After a revocation the held records of a
/// partition that came back are put first; if librdkafka fetches the
/// partition again from the commit, the same offsets arrive once more.
fn drop_repeats(prepared: Prepared, positions: &BTreeMap<TopicPartition, i64>) -> Prepared {
    let mut next: Vec<(&str, i32, i64)> = Vec::new();
    let mut keep = Vec::with_capacity(prepared.messages.len());
    for m in &prepared.messages {
        let slot = match next
            .iter()
            .position(|(t, p, _)| *p == m.partition() && *t == m.topic())
        {
            Some(i) => i,
            None => {
                let floor = positions
                    .get(&TopicPartition {
                        topic: m.topic().to_string(),
                        partition: m.partition(),
                    })
                    .copied()
                    .unwrap_or(i64::MIN);
                next.push((m.topic(), m.partition(), floor));
                next.len() - 1
            }
        };
        let fresh = m.offset() >= next[slot].2;
        if fresh {
            next[slot].2 = m.offset() + 1;
        }
        keep.push(fresh);
    }
    if keep.iter().all(|k| *k) {
        return prepared;
    }
    let messages = prepared
        .messages
        .into_iter()
        .zip(keep)
        .filter_map(|(m, k)| k.then_some(m))
        .collect();
    reconverted(messages)
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
