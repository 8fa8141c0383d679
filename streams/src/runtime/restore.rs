//! State restoration from changelog topics, as a task state handled inside
//! the stream thread's loop (Kafka's `StoreChangelogReader`): each loop turn
//! applies one bounded batch per restoring changelog partition, so the main
//! consumer keeps polling (no max.poll.interval.ms miss) however long the
//! changelog is, and there is no deadline while restoration makes progress.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::rebalance::Tp;
use crate::error::StreamsError;
use crate::metrics::Metrics;
use crate::task::{Task, TaskId};

/// Progress of state restoration, reported per store and changelog partition
/// (Kafka's `StateRestoreListener`). Called on the stream thread: keep it short.
pub trait StateRestoreListener: Send + Sync {
    /// Restoration of `store` from `topic`/`partition` starts at `start_offset`
    /// and ends before `end_offset`.
    fn on_restore_start(
        &self,
        topic: &str,
        partition: i32,
        store: &str,
        start_offset: i64,
        end_offset: i64,
    ) {
        let _ = (topic, partition, store, start_offset, end_offset);
    }
    /// A batch ending at `batch_end_offset` with `restored` records was written.
    fn on_batch_restored(
        &self,
        topic: &str,
        partition: i32,
        store: &str,
        batch_end_offset: i64,
        restored: u64,
    ) {
        let _ = (topic, partition, store, batch_end_offset, restored);
    }
    /// The store is restored: `total_restored` records were applied.
    fn on_restore_end(&self, topic: &str, partition: i32, store: &str, total_restored: u64) {
        let _ = (topic, partition, store, total_restored);
    }
}

/// One logged store's changelog partition and how far the local store reflects it.
#[derive(Debug, Clone)]
pub(crate) struct ChangelogPos {
    pub store: String,
    pub topic: String,
    pub partition: i32,
    /// Next changelog offset the local store does not reflect yet.
    pub next: i64,
    /// Restoration target: the changelog's end when restoration started.
    pub end: i64,
    /// Records applied by the current restoration.
    pub restored: u64,
    /// A standby replica's changelog: read for as long as the standby lives, never done.
    pub standby: bool,
}

impl ChangelogPos {
    fn done(&self) -> bool {
        !self.standby && self.next >= self.end
    }
}

/// Records applied per changelog partition in one loop turn, at most.
const MAX_BATCH: usize = 10_000;
/// Time one loop turn may spend restoring before the thread polls again.
const TURN_BUDGET: Duration = Duration::from_millis(200);

/// The restore consumer and what it is reading for which task.
pub(crate) struct ChangelogReader {
    consumer: BaseConsumer,
    /// Changelog partition → the restoring or standby task that owns it.
    owners: HashMap<Tp, TaskId>,
    /// How many of `owners` are standby partitions.
    standbys: usize,
    listener: Option<Arc<dyn StateRestoreListener>>,
    metrics: Arc<Metrics>,
    /// Last progress, or the last turn without a client error (for `task.timeout.ms`).
    progress_at: Instant,
    timeout: Duration,
}

impl ChangelogReader {
    pub fn new(
        consumer: BaseConsumer,
        listener: Option<Arc<dyn StateRestoreListener>>,
        metrics: Arc<Metrics>,
        timeout: Duration,
    ) -> Self {
        ChangelogReader {
            consumer,
            owners: HashMap::new(),
            standbys: 0,
            listener,
            metrics,
            progress_at: Instant::now(),
            timeout,
        }
    }

    /// Whether no changelog partition is being read (restorations or standbys).
    pub fn is_idle(&self) -> bool {
        self.owners.is_empty()
    }

    /// Whether an active task is restoring (standbys alone are not waited for).
    pub fn restoring(&self) -> bool {
        self.owners.len() > self.standbys
    }

    /// Starts restoring the changelog partitions of a task that are behind.
    pub fn register(
        &mut self,
        id: TaskId,
        task: &Task,
        changelogs: &[ChangelogPos],
        all: &BTreeMap<TaskId, &[ChangelogPos]>,
    ) -> Result<(), StreamsError> {
        for c in changelogs.iter().filter(|c| !c.done()) {
            if c.standby {
                self.standbys += 1;
            } else {
                if let Some(s) = task.store(&c.store) {
                    s.lock().set_bulk_loading(true)?;
                }
                if let Some(l) = &self.listener {
                    l.on_restore_start(&c.topic, c.partition, &c.store, c.next, c.end);
                }
            }
            self.owners.insert((c.topic.clone(), c.partition), id);
        }
        self.progress_at = Instant::now();
        self.reassign(all)
    }

    /// Stops restoring a task's partitions (revoked or closed).
    pub fn unregister(
        &mut self,
        id: TaskId,
        task: &Task,
        all: &BTreeMap<TaskId, &[ChangelogPos]>,
    ) -> Result<(), StreamsError> {
        for name in task.store_names() {
            if let Some(s) = task.store(&name) {
                s.lock().set_bulk_loading(false)?;
            }
        }
        let before = self.owners.len();
        let standby = all.get(&id).is_some_and(|cs| cs.iter().any(|c| c.standby));
        self.owners.retain(|_, owner| *owner != id);
        if standby {
            self.standbys -= before - self.owners.len();
        }
        if self.owners.len() != before {
            self.reassign(all)?;
        }
        Ok(())
    }

    /// Assigns every partition still restoring at its current position
    /// (`assign` replaces the whole assignment).
    fn reassign(&mut self, all: &BTreeMap<TaskId, &[ChangelogPos]>) -> Result<(), StreamsError> {
        let mut tpl = TopicPartitionList::new();
        for (tp, id) in &self.owners {
            let Some(pos) = all
                .get(id)
                .and_then(|cs| cs.iter().find(|c| c.topic == tp.0 && c.partition == tp.1))
            else {
                continue;
            };
            tpl.add_partition_offset(&tp.0, tp.1, Offset::Offset(pos.next))?;
        }
        if tpl.count() == 0 {
            self.consumer.unassign()?;
        } else {
            self.consumer.assign(&tpl)?;
        }
        Ok(())
    }

    /// One bounded turn of restoration. Returns the tasks whose stores are all
    /// restored now (their partitions are no longer read).
    pub fn restore_turn(
        &mut self,
        tasks: &mut BTreeMap<TaskId, (&mut Task, &mut Vec<ChangelogPos>)>,
    ) -> Result<Vec<TaskId>, StreamsError> {
        if self.owners.is_empty() {
            return Ok(Vec::new());
        }
        let deadline = Instant::now() + TURN_BUDGET;
        let mut batch: Vec<BorrowedMessage<'_>> = Vec::new();
        let mut eof: Vec<i32> = Vec::new();
        let mut errored = false;
        while batch.len() < MAX_BATCH * self.owners.len() && Instant::now() < deadline {
            let wait = if batch.is_empty() && self.restoring() {
                20
            } else {
                0
            };
            match self.consumer.poll(Duration::from_millis(wait)) {
                None => break,
                Some(Err(KafkaError::PartitionEOF(p))) => eof.push(p),
                // A lost broker connection (a node failing over) is librdkafka's to retry,
                // as on the main consumer; only a fatal error stops the thread.
                Some(Err(e)) => {
                    super::thread::consumer_error(e)?;
                    errored = true;
                    break;
                }
                Some(Ok(m)) => batch.push(m),
            }
        }
        let mut progressed = !batch.is_empty();
        // Apply consecutive records of one partition as one batch.
        let mut start = 0;
        while start < batch.len() {
            let (topic, partition) = (batch[start].topic(), batch[start].partition());
            let mut end = start + 1;
            while end < batch.len()
                && batch[end].partition() == partition
                && batch[end].topic() == topic
            {
                end += 1;
            }
            let run = &batch[start..end];
            start = end;
            let Some(id) = self.owners.get(&(topic.to_string(), partition)).copied() else {
                continue;
            };
            let Some((task, changelogs)) = tasks.get_mut(&id) else {
                continue;
            };
            let Some(pos) = changelogs
                .iter_mut()
                .find(|c| c.topic == topic && c.partition == partition)
            else {
                continue;
            };
            // Skip what a re-assignment delivered again.
            let fresh: Vec<&BorrowedMessage<'_>> =
                run.iter().filter(|m| m.offset() >= pos.next).collect();
            let Some(last) = fresh.last() else { continue };
            let last_offset = last.offset();
            if let Some(store) = task.store(&pos.store) {
                store.lock().restore_batch(
                    fresh
                        .iter()
                        .map(|m| (m.key().unwrap_or_default(), m.payload())),
                )?;
            }
            let n = fresh.len() as u64;
            pos.next = last_offset + 1;
            pos.restored += n;
            if pos.standby {
                self.metrics.incr("standby-records", n);
                continue;
            }
            self.metrics.incr("restored-records", n);
            if let Some(l) = &self.listener {
                l.on_batch_restored(topic, partition, &pos.store, last_offset, n);
            }
        }
        drop(batch);
        // The end of a partition reached without a record at `end - 1` (compaction
        // may remove the last offsets): librdkafka's EOF names only the partition
        // number, so it settles a changelog only when no other one shares it.
        for p in eof {
            let mut same: Vec<&Tp> = self.owners.keys().filter(|tp| tp.1 == p).collect();
            if same.len() != 1 {
                continue;
            }
            let tp = same.remove(0).clone();
            if let Some((_, changelogs)) = self.owners.get(&tp).and_then(|id| tasks.get_mut(id)) {
                for c in changelogs.iter_mut() {
                    if c.topic == tp.0 && c.partition == tp.1 && !c.standby && !c.done() {
                        c.next = c.end;
                        progressed = true;
                    }
                }
            }
        }
        // As Kafka's task.timeout.ms: only a stall spent in client errors counts. A turn
        // that read nothing but hit no error is a slow broker or fetch, not a failure
        // (a cluster's fetches of small batches can take longer than a short timeout).
        if progressed || !self.restoring() || !errored {
            self.progress_at = Instant::now();
        } else if self.progress_at.elapsed() > self.timeout {
            return Err(StreamsError::Timeout(format!(
                "restoration failed for {:?} without progress (task.timeout.ms)",
                self.timeout
            )));
        }
        // Tasks whose every changelog partition is done.
        let mut finished = Vec::new();
        let mut changed = false;
        for (id, (task, changelogs)) in tasks.iter() {
            let mine: Vec<&ChangelogPos> = changelogs
                .iter()
                .filter(|c| self.owners.get(&(c.topic.clone(), c.partition)) == Some(id))
                .collect();
            for c in &mine {
                if c.done() {
                    self.owners.remove(&(c.topic.clone(), c.partition));
                    changed = true;
                    if let Some(s) = task.store(&c.store) {
                        s.lock().set_bulk_loading(false)?;
                    }
                    if let Some(l) = &self.listener {
                        l.on_restore_end(&c.topic, c.partition, &c.store, c.restored);
                    }
                }
            }
            if !changelogs.is_empty() && changelogs.iter().all(ChangelogPos::done) {
                finished.push(*id);
            }
        }
        if changed {
            let all: BTreeMap<TaskId, &[ChangelogPos]> = tasks
                .iter()
                .map(|(id, (_, c))| (*id, c.as_slice()))
                .collect();
            self.reassign(&all)?;
        }
        Ok(finished)
    }
}
