//! The tasks of one stream thread: opening (with checkpoint validation),
//! processing in timestamp order, commits, checkpoints, suspension across a
//! rebalance and clean or dirty close.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers as _, Message, OwnedMessage};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use super::checkpoint;
use super::collector::Collector;
use super::rebalance::{ThreadCtx, Tp};
use super::restore::ChangelogPos;
pub(crate) use super::task_dirs::TaskDirs;
use crate::error::StreamsError;
use crate::metrics::Metrics;
use crate::processor::{now_ms, OutRecord, PunctuationType};
use crate::record::Headers;
use crate::state::RocksEnv;
use crate::task::{Handlers, InputRecord, Task, TaskId};
use crate::topology::Topology;

/// Timeout of one request to the cluster (watermarks, commits, flushes).
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Kafka Streams writes a checkpoint at a commit once this many records were
/// processed since the last one (`OFFSET_DELTA_THRESHOLD_FOR_CHECKPOINT`):
/// each checkpoint flushes RocksDB memtables, so not at every commit.
const CHECKPOINT_EVERY: u64 = 10_000;

/// Looks up the (low, high) watermarks of a changelog partition.
pub(crate) type Watermarks<'a> = dyn Fn(&str, i32) -> Result<(i64, i64), StreamsError> + 'a;

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Catching up with its changelogs; its input partitions are paused.
    Restoring,
    /// Processing.
    Running,
}

/// A task owned by the thread and its bookkeeping.
pub(crate) struct ActiveTask {
    pub task: Task,
    pub phase: Phase,
    /// Logged stores: changelog partition and how far the local store reflects it.
    pub changelogs: Vec<ChangelogPos>,
    initialized: bool,
    /// Records processed since the checkpoint was written.
    since_checkpoint: u64,
    /// Sum of the changelog positions at the last checkpoint (standbys checkpoint by progress).
    ckpt_total: i64,
}

/// Fetched records of one input partition.
struct PartitionQueue {
    topic: String,
    partition: i32,
    records: VecDeque<OwnedMessage>,
}

/// What a thread needs to open tasks.
pub(crate) struct TaskFactory {
    pub topology: Arc<Topology>,
    pub app_id: String,
    pub state_dir: PathBuf,
    pub rocks: RocksEnv,
    pub metrics: Arc<Metrics>,
    pub handlers: Handlers,
    /// Record cache of the thread, split between its tasks.
    pub cache_bytes: usize,
    /// Input topic → sub-topology.
    pub topic_sub: HashMap<String, u32>,
    /// Sub-topologies with one source topic: their tasks have one input partition, so
    /// there is no timestamp order to choose and a polled record can be processed at once.
    pub single_input: HashSet<u32>,
}

/// Every task of a thread, their uncommitted offsets and fetched records.
pub(crate) struct Tasks {
    pub factory: TaskFactory,
    pub active: BTreeMap<TaskId, ActiveTask>,
    /// Tasks given back in a rebalance, kept open (stores, caches) in case the
    /// next assignment returns them: then they resume without a reopen.
    suspended: BTreeMap<TaskId, ActiveTask>,
    /// Standby replicas: stores of tasks active elsewhere, kept warm from their changelogs.
    pub standby: BTreeMap<TaskId, ActiveTask>,
    /// Next input offset to commit per topic and partition: only records
    /// whose outputs the producer has.
    offsets: HashMap<String, HashMap<i32, i64>>,
    buffered: BTreeMap<TaskId, Vec<PartitionQueue>>,
    /// Since when commits keep failing with retriable errors.
    failing_since: Option<Instant>,
    task_timeout: Duration,
    /// Assigned tasks whose directory another thread of the instance still holds.
    pending: BTreeSet<TaskId>,
    pending_since: Option<Instant>,
    /// Which thread of the instance holds which task directory.
    dirs: TaskDirs,
    thread: String,
    /// Record cache bytes per task of the current assignment.
    per_task_cache: usize,
}

fn is_rebalance_error(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::RebalanceInProgress
                | RDKafkaErrorCode::IllegalGeneration
                | RDKafkaErrorCode::UnknownMemberId
                | RDKafkaErrorCode::FencedInstanceId
                | RDKafkaErrorCode::AssignmentLost
                | RDKafkaErrorCode::State
        )
    )
}

impl Tasks {
    pub fn new(factory: TaskFactory, task_timeout: Duration, dirs: TaskDirs, thread: &str) -> Self {
        Tasks {
            per_task_cache: factory.cache_bytes,
            factory,
            active: BTreeMap::new(),
            suspended: BTreeMap::new(),
            standby: BTreeMap::new(),
            offsets: HashMap::new(),
            buffered: BTreeMap::new(),
            failing_since: None,
            task_timeout,
            pending: BTreeSet::new(),
            pending_since: None,
            dirs,
            thread: thread.to_string(),
        }
    }

    /// The tasks of a set of input partitions.
    pub fn task_ids(&self, parts: &[Tp]) -> BTreeSet<TaskId> {
        parts
            .iter()
            .filter_map(|(t, p)| {
                self.factory.topic_sub.get(t).map(|&s| TaskId {
                    subtopology: s,
                    partition: *p,
                })
            })
            .collect()
    }

    /// Input partitions of a task among `parts`.
    pub fn inputs_of(&self, id: TaskId, parts: &[Tp]) -> Vec<Tp> {
        parts
            .iter()
            .filter(|(t, p)| {
                *p == id.partition && self.factory.topic_sub.get(t) == Some(&id.subtopology)
            })
            .cloned()
            .collect()
    }

    /// Whether a task is being restored.
    pub fn any_restoring(&self) -> bool {
        self.active.values().any(|t| t.phase == Phase::Restoring)
    }

    /// Takes on the tasks of a new assignment: suspended tasks it includes
    /// resume, the others close; new tasks open. Returns the tasks that must
    /// restore first. A task whose directory another thread of this instance
    /// still holds (suspended there, released when that thread handles its own
    /// assignment) waits in `pending` ([`open_pending`](Self::open_pending)).
    pub fn assign(
        &mut self,
        ids: &BTreeSet<TaskId>,
        watermarks: &Watermarks<'_>,
        forget: &dyn Fn(&str, i32),
    ) -> Result<Vec<TaskId>, StreamsError> {
        for (id, t) in std::mem::take(&mut self.suspended) {
            if ids.contains(&id) {
                self.active.insert(id, t);
            } else {
                // Checkpointed at suspension.
                self.close_task(id, t);
            }
        }
        self.per_task_cache = self.factory.cache_bytes / ids.len().max(1);
        self.pending.clear();
        self.pending_since = None;
        let mut restoring = Vec::new();
        for &id in ids {
            if self.active.contains_key(&id) {
                self.resume(id, watermarks)?;
            } else if self.dirs.claim(id, &self.thread) {
                let t = self.open(id, watermarks, false)?;
                self.factory.metrics.incr("tasks-opened", 1);
                self.active.insert(id, t);
            } else {
                self.pending.insert(id);
                self.pending_since.get_or_insert_with(Instant::now);
                continue;
            }
            if self.ready(id, forget) == Phase::Restoring {
                restoring.push(id);
            }
        }
        Ok(restoring)
    }

    /// Tasks assigned to this thread whose directory another thread still holds.
    pub fn pending(&self) -> Vec<TaskId> {
        self.pending.iter().copied().collect()
    }

    /// Opens pending tasks whose directory is free now. Returns the ones
    /// opened, with their phase.
    pub fn open_pending(
        &mut self,
        watermarks: &Watermarks<'_>,
        forget: &dyn Fn(&str, i32),
    ) -> Result<Vec<(TaskId, Phase)>, StreamsError> {
        let mut opened = Vec::new();
        for id in std::mem::take(&mut self.pending) {
            if !self.dirs.claim(id, &self.thread) {
                self.pending.insert(id);
                continue;
            }
            let t = self.open(id, watermarks, false)?;
            self.factory.metrics.incr("tasks-opened", 1);
            self.active.insert(id, t);
            opened.push((id, self.ready(id, forget)));
        }
        if self.pending.is_empty() {
            self.pending_since = None;
        } else {
            let since = *self.pending_since.get_or_insert_with(Instant::now);
            if since.elapsed() > self.task_timeout {
                return Err(StreamsError::Timeout(format!(
                    "tasks {:?} are still held by another thread of this instance",
                    self.pending
                )));
            }
        }
        Ok(opened)
    }

    /// A suspended task comes back: the changelog may have moved on while
    /// another member owned it, or local state may be ahead of it (wiped).
    fn resume(&mut self, id: TaskId, watermarks: &Watermarks<'_>) -> Result<(), StreamsError> {
        self.factory.metrics.incr("tasks-resumed", 1);
        let Some(t) = self.active.get_mut(&id) else {
            return Ok(());
        };
        let mut corrupt = false;
        for c in &mut t.changelogs {
            let (_, high) = watermarks(&c.topic, c.partition)?;
            if c.next > high {
                corrupt = true;
            }
            c.end = high;
            c.restored = 0;
        }
        if corrupt {
            tracing::warn!(task = %id, "local state is ahead of its changelog: wiping it");
            if let Some(mut t) = self.active.remove(&id) {
                t.task.close();
            }
            let t = self.open(id, watermarks, true)?;
            self.active.insert(id, t);
        }
        Ok(())
    }

    /// Decides whether an opened or resumed task restores first.
    fn ready(&mut self, id: TaskId, forget: &dyn Fn(&str, i32)) -> Phase {
        let Some(t) = self.active.get_mut(&id) else {
            return Phase::Running;
        };
        for c in &t.changelogs {
            forget(&c.topic, c.partition);
        }
        t.phase = if t.changelogs.iter().any(|c| c.next < c.end) {
            Phase::Restoring
        } else {
            Phase::Running
        };
        t.phase
    }

    /// Closes a task and frees its directory for the other threads.
    fn close_task(&self, id: TaskId, mut t: ActiveTask) {
        t.task.close();
        self.dirs.release(id, &self.thread);
    }

    /// Whether a task has logged stores (only those get standbys).
    pub fn is_stateful(&self, id: TaskId) -> bool {
        let f = &self.factory;
        f.topology
            .subtopologies
            .get(id.subtopology as usize)
            .is_some_and(|sub| {
                sub.stores
                    .iter()
                    .any(|s| f.topology.changelog_of(s).is_some())
            })
    }

    /// Standbys held now that should go: not wanted any more, active here,
    /// or waited for by another thread of this instance.
    pub fn standbys_to_drop(
        &self,
        wanted: Option<&BTreeSet<TaskId>>,
        active: &BTreeSet<TaskId>,
    ) -> Vec<TaskId> {
        self.standby
            .keys()
            .filter(|id| {
                active.contains(id)
                    || wanted.is_some_and(|w| !w.contains(id))
                    || self.dirs.wanted(**id)
            })
            .copied()
            .collect()
    }

    /// Opens the wanted standbys this thread does not hold yet (directories
    /// another thread holds are skipped until the next placement).
    pub fn open_standbys(
        &mut self,
        wanted: &BTreeSet<TaskId>,
        watermarks: &Watermarks<'_>,
        forget: &dyn Fn(&str, i32),
    ) -> Result<Vec<TaskId>, StreamsError> {
        let mut opened = Vec::new();
        for &id in wanted {
            if self.standby.contains_key(&id)
                || self.active.contains_key(&id)
                || self.suspended.contains_key(&id)
                || !self.dirs.claim_for(id, &self.thread, false)
            {
                continue;
            }
            let mut t = self.open(id, watermarks, false)?;
            for c in &mut t.changelogs {
                forget(&c.topic, c.partition);
                c.standby = true;
                c.end = i64::MAX;
            }
            t.ckpt_total = t.changelogs.iter().map(|c| c.next).sum();
            self.factory.metrics.incr("standby-tasks-opened", 1);
            self.standby.insert(id, t);
            opened.push(id);
        }
        Ok(opened)
    }

    /// Checkpoints and closes a standby (the caller unregistered it from the reader).
    pub fn close_standby(&mut self, id: TaskId, collector: &Collector) -> Result<(), StreamsError> {
        if let Some(mut t) = self.standby.remove(&id) {
            let r = write_checkpoint(&mut t, collector);
            self.close_task(id, t);
            r?;
        }
        Ok(())
    }

    /// Opens a task: checks its checkpoint against the changelogs, wipes the
    /// stores whose local copy cannot be trusted, and opens the stores.
    fn open(
        &self,
        id: TaskId,
        watermarks: &Watermarks<'_>,
        wipe: bool,
    ) -> Result<ActiveTask, StreamsError> {
        let cache_bytes = self.per_task_cache;
        let f = &self.factory;
        let sub = &f.topology.subtopologies[id.subtopology as usize];
        let dir = f.state_dir.join(id.to_string());
        let saved = if wipe {
            BTreeMap::new()
        } else {
            checkpoint::read(&dir)
        };
        let mut changelogs = Vec::new();
        for store in &sub.stores {
            let Some(cl) = f.topology.changelog_of(store) else {
                // No changelog: the local copy is all there is; keep it.
                continue;
            };
            let topic = format!("{}-{cl}", f.app_id);
            let (low, high) = watermarks(&topic, id.partition)?;
            let next = match saved.get(store) {
                Some(&at) if at >= low && at <= high => at,
                Some(&at) => {
                    tracing::warn!(
                        task = %id, store, checkpoint = at, low, high,
                        "checkpoint outside the changelog: wiping the store and restoring it"
                    );
                    let _ = std::fs::remove_dir_all(dir.join(store));
                    low
                }
                None => {
                    // Ahead of or behind its changelog after a crash: start empty.
                    let _ = std::fs::remove_dir_all(dir.join(store));
                    low
                }
            };
            changelogs.push(ChangelogPos {
                store: store.clone(),
                topic,
                partition: id.partition,
                next,
                end: high,
                restored: 0,
                standby: false,
            });
        }
        let task = Task::new(
            &f.topology,
            sub,
            id.partition,
            &f.app_id,
            Some(dir),
            &f.rocks,
            cache_bytes,
            f.metrics.clone(),
            f.handlers,
        )?;
        Ok(ActiveTask {
            task,
            phase: Phase::Restoring,
            changelogs,
            initialized: false,
            since_checkpoint: 0,
            ckpt_total: 0,
        })
    }

    /// A restored task starts processing.
    pub fn start_running(&mut self, id: TaskId) -> Result<(), StreamsError> {
        if let Some(t) = self.active.get_mut(&id) {
            t.phase = Phase::Running;
            if !t.initialized {
                t.task.set_wall_time(now_ms());
                t.task.init()?;
                t.initialized = true;
            }
        }
        Ok(())
    }

    /// Takes a polled record: with `now`, a running task with one input partition and
    /// nothing buffered processes it at once (no copy of the record); otherwise it is
    /// buffered until its task processes it.
    pub fn accept(
        &mut self,
        m: BorrowedMessage<'_>,
        now: bool,
        collector: &Collector,
        out: &mut Vec<OutRecord>,
    ) -> Result<(), StreamsError> {
        let Some(&sub) = self.factory.topic_sub.get(m.topic()) else {
            return Ok(());
        };
        let id = TaskId {
            subtopology: sub,
            partition: m.partition(),
        };
        if now && self.factory.single_input.contains(&sub) && !self.buffered.contains_key(&id) {
            if let Some(at) = self.active.get_mut(&id) {
                if at.phase == Phase::Running {
                    return process_record(at, &mut self.offsets, &m, collector, out);
                }
            }
        }
        self.buffer(id, m.detach());
        Ok(())
    }

    /// Keeps a fetched record until its task processes it.
    fn buffer(&mut self, id: TaskId, m: OwnedMessage) {
        // Records of a task not opened yet are kept too: librdkafka moved its
        // position past them, so dropping them would skip them.
        if !self.active.contains_key(&id) && !self.pending.contains(&id) {
            return;
        }
        let queues = self.buffered.entry(id).or_default();
        match queues
            .iter_mut()
            .find(|q| q.partition == m.partition() && q.topic == m.topic())
        {
            Some(q) => q.records.push_back(m),
            None => queues.push(PartitionQueue {
                topic: m.topic().to_string(),
                partition: m.partition(),
                records: VecDeque::from([m]),
            }),
        }
    }

    /// Processes buffered records of running tasks, per task always taking the
    /// partition whose next record has the lowest timestamp (Kafka's choice with
    /// `max.task.idle.ms` = 0). An input offset becomes committable only once
    /// the record's outputs are handed to the producer.
    pub fn process_buffered(&mut self, collector: &Collector) -> Result<(), StreamsError> {
        let mut out = Vec::new();
        for (id, queues) in self.buffered.iter_mut() {
            let Some(at) = self.active.get_mut(id) else {
                continue;
            };
            if at.phase != Phase::Running {
                continue;
            }
            loop {
                let next = queues
                    .iter()
                    .enumerate()
                    .filter_map(|(i, q)| {
                        q.records
                            .front()
                            .map(|m| (m.timestamp().to_millis().unwrap_or(-1), i))
                    })
                    .min();
                let Some((_, i)) = next else { break };
                let Some(m) = queues[i].records.pop_front() else {
                    break;
                };
                process_record(at, &mut self.offsets, &m, collector, &mut out)?;
            }
        }
        self.buffered
            .retain(|_, q| q.iter().any(|q| !q.records.is_empty()));
        Ok(())
    }

    /// Fires wall-clock punctuations of running tasks and sends what they emit.
    pub fn punctuate(&mut self, collector: &Collector) -> Result<(), StreamsError> {
        let now = now_ms();
        let mut out = Vec::new();
        for t in self
            .active
            .values_mut()
            .filter(|t| t.phase == Phase::Running)
        {
            t.task.set_wall_time(now);
            t.task.punctuate(PunctuationType::WallClockTime)?;
            t.task.drain_outputs(&mut out);
        }
        if !out.is_empty() {
            collector.send(&mut out)?;
        }
        Ok(())
    }

    /// At-least-once commit: tasks flush their caches, every produced record
    /// is acknowledged, then the input offsets are committed; checkpoints
    /// follow when due (`force`: always). A lost record fails before any offset
    /// is committed; a commit refused because the group rebalances is not an
    /// error (the records are processed again by the next owner); other
    /// commit failures are retried until `task.timeout.ms`.
    pub fn commit(
        &mut self,
        consumer: &BaseConsumer<ThreadCtx>,
        collector: &Collector,
        force_checkpoint: bool,
    ) -> Result<Vec<(Tp, i64)>, StreamsError> {
        let mut out: Vec<OutRecord> = Vec::new();
        for t in self
            .active
            .values_mut()
            .filter(|t| t.phase == Phase::Running)
        {
            t.task.flush()?;
            t.task.drain_outputs(&mut out);
        }
        collector.send(&mut out)?;
        match collector.flush(CLIENT_TIMEOUT) {
            Ok(()) => {}
            Err(StreamsError::Timeout(e)) => return self.retriable(e),
            Err(e) => return Err(e),
        }
        let mut committed = Vec::new();
        if !self.offsets.is_empty() {
            let mut tpl = TopicPartitionList::new();
            for (t, parts) in &self.offsets {
                for (p, o) in parts {
                    tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
                }
            }
            match consumer.commit(&tpl, CommitMode::Sync) {
                Ok(()) => {
                    for (t, parts) in self.offsets.drain() {
                        committed.extend(parts.into_iter().map(|(p, o)| ((t.clone(), p), o)));
                    }
                    self.failing_since = None;
                }
                Err(e) if is_rebalance_error(&e) => {
                    tracing::warn!(
                        "offset commit refused while the group rebalances ({e}); \
                         records since the last commit will be processed again"
                    );
                }
                Err(e) => return self.retriable(e.to_string()),
            }
        }
        for t in self.active.values_mut() {
            if t.phase == Phase::Running
                && (force_checkpoint || t.since_checkpoint >= CHECKPOINT_EVERY)
            {
                write_checkpoint(t, collector)?;
            }
        }
        for t in self.standby.values_mut() {
            let total: i64 = t.changelogs.iter().map(|c| c.next).sum();
            if force_checkpoint || total - t.ckpt_total >= CHECKPOINT_EVERY as i64 {
                write_checkpoint(t, collector)?;
            }
        }
        Ok(committed)
    }

    fn retriable(&mut self, e: String) -> Result<Vec<(Tp, i64)>, StreamsError> {
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if since.elapsed() > self.task_timeout {
            return Err(StreamsError::Timeout(format!(
                "commit kept failing for {:?} (task.timeout.ms): {e}",
                self.task_timeout
            )));
        }
        tracing::warn!("commit failed, retrying at the next commit: {e}");
        Ok(Vec::new())
    }

    /// Revocation (eager protocol): forget fetched records, checkpoint every
    /// task and keep it open, suspended. The caller has committed.
    pub fn suspend_all(&mut self, collector: &Collector) -> Result<(), StreamsError> {
        self.buffered.clear();
        self.offsets.clear();
        self.pending.clear();
        for (id, mut t) in std::mem::take(&mut self.active) {
            if collector.failure().is_none() {
                write_checkpoint(&mut t, collector)?;
            }
            self.suspended.insert(id, t);
        }
        Ok(())
    }

    /// Closes every task. Clean: checkpoints first (the caller committed).
    /// Dirty (a record was lost, or the partitions are gone): no checkpoint,
    /// so what was processed since the last commit is processed again.
    pub fn close_all(&mut self, collector: &Collector, clean: bool) -> Result<(), StreamsError> {
        self.buffered.clear();
        self.offsets.clear();
        let mut result = Ok(());
        let all = std::mem::take(&mut self.active)
            .into_iter()
            .chain(std::mem::take(&mut self.suspended));
        for (id, mut t) in all {
            if clean && result.is_ok() && collector.failure().is_none() {
                result = write_checkpoint(&mut t, collector);
            }
            self.close_task(id, t);
        }
        self.pending.clear();
        result
    }

    /// Closes every standby with a checkpoint: a standby's store reflects its
    /// changelog up to its position whatever happened to the active tasks.
    pub fn close_standbys(&mut self, collector: &Collector) -> Result<(), StreamsError> {
        let mut result = Ok(());
        for id in self.standby.keys().copied().collect::<Vec<_>>() {
            let r = self.close_standby(id, collector);
            if result.is_ok() {
                result = r;
            }
        }
        result
    }

    /// Pausing and resuming input partitions needs them as a list.
    pub fn input_list(
        &self,
        ids: &[TaskId],
        assigned: &[Tp],
    ) -> Result<TopicPartitionList, StreamsError> {
        let mut tpl = TopicPartitionList::new();
        for &id in ids {
            for (t, p) in self.inputs_of(id, assigned) {
                tpl.add_partition(&t, p);
            }
        }
        Ok(tpl)
    }
}

/// Makes the local stores durable and records how far they reflect their
/// changelogs: what the producer acknowledged, or what restoration reached.
fn write_checkpoint(t: &mut ActiveTask, collector: &Collector) -> Result<(), StreamsError> {
    let Some(dir) = t.task.dir.clone() else {
        return Ok(());
    };
    if !t.task.has_persistent_stores() {
        return Ok(());
    }
    for name in t.task.store_names() {
        if let Some(s) = t.task.store(&name) {
            s.lock().persist()?;
        }
    }
    let mut offsets = BTreeMap::new();
    for c in &mut t.changelogs {
        if let Some(acked) = collector.acked(&c.topic, c.partition) {
            c.next = c.next.max(acked);
        }
        offsets.insert(c.store.clone(), c.next);
    }
    checkpoint::write(&dir, &offsets)?;
    t.since_checkpoint = 0;
    t.ckpt_total = t.changelogs.iter().map(|c| c.next).sum();
    Ok(())
}

/// Processes one input record, hands its outputs to the producer and only then makes its
/// offset committable.
fn process_record(
    at: &mut ActiveTask,
    offsets: &mut HashMap<String, HashMap<i32, i64>>,
    m: &impl Message,
    collector: &Collector,
    out: &mut Vec<OutRecord>,
) -> Result<(), StreamsError> {
    process_one(&mut at.task, m)?;
    at.task.drain_outputs(out);
    collector.send(out)?;
    at.since_checkpoint += 1;
    let (topic, partition) = (m.topic(), m.partition());
    match offsets.get_mut(topic) {
        Some(parts) => {
            parts.insert(partition, m.offset() + 1);
        }
        None => {
            let parts = HashMap::from([(partition, m.offset() + 1)]);
            offsets.insert(topic.to_string(), parts);
        }
    }
    Ok(())
}

fn process_one(task: &mut Task, m: &impl Message) -> Result<(), StreamsError> {
    let mut headers = Headers::new();
    if let Some(h) = m.headers() {
        for hd in h.iter() {
            headers.add(hd.key, hd.value.map(|v| v.to_vec()));
        }
    }
    task.process(InputRecord {
        topic: m.topic(),
        partition: m.partition(),
        offset: m.offset(),
        key: m.key(),
        value: m.payload(),
        timestamp: m.timestamp().to_millis().unwrap_or(-1),
        headers,
    })
}
