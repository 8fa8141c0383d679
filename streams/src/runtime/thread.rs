//! A stream thread: one consumer in the application's group, one producer,
//! a restore consumer, and the tasks of the partitions assigned to it.
//!
//! Everything the thread owns lives on its stack: rebalance callbacks only
//! record events ([`ThreadCtx`]), so no lock is ever held across `poll`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientConfig, TopicPartitionList};

use super::collector::Collector;
use super::purge::Purger;
use super::rebalance::{RebalanceEvent, ThreadCtx, Tp};
use super::restore::{ChangelogPos, ChangelogReader};
use super::shutdown::Watch;
use super::standby::{active_by_instance, decode_assignment, Placement};
use super::tasks::{Phase, TaskFactory, Tasks, CLIENT_TIMEOUT};
use super::{Shared, StreamThreadExceptionResponse};
use crate::error::StreamsError;
use crate::task::{Handlers, TaskId};
use crate::topology::Topology;

/// Records taken from the consumer per loop turn, at most.
const MAX_BUFFERED: usize = 1000;
/// After an assignment, the other members' assignments settle before standbys are placed.
const STANDBY_SETTLE: Duration = Duration::from_millis(500);
/// Standby placement is recomputed this often in any case.
const STANDBY_REFRESH: Duration = Duration::from_secs(10);

pub(crate) struct StreamThread {
    pub name: String,
    /// 0-based index among the instance's threads (standby placement).
    pub index: usize,
    pub topology: Arc<Topology>,
    pub shared: Arc<Shared>,
    pub stop: Arc<AtomicBool>,
}

/// The clients of one incarnation of a thread (a replaced thread gets new ones).
struct Clients {
    consumer: BaseConsumer<ThreadCtx>,
    collector: Collector,
    reader: ChangelogReader,
    /// Shutdown requests of other instances.
    watch: Watch,
    /// When to recompute the standby placement.
    standby_due: Option<Instant>,
    /// Deletes committed records of repartition topics.
    purger: Purger,
    /// What the group assigned to this consumer.
    assigned: Vec<Tp>,
}

impl Clients {
    /// A partition's watermarks for opening a task, retrying while a cluster's metadata
    /// catches up (a new changelog, a moved leader).
    fn watermarks(&self, topic: &str, p: i32) -> Result<(i64, i64), StreamsError> {
        Ok(super::metadata::watermarks(
            &self.consumer,
            topic,
            p,
            CLIENT_TIMEOUT,
        )?)
    }
}

impl StreamThread {
    /// A client config: Brook's defaults for this client, then the user's
    /// `<kind>.*` overrides on top.
    fn client_config(&self, kind: &str, defaults: &[(&str, &str)]) -> ClientConfig {
        let cfg = &self.shared.config;
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", cfg.bootstrap_servers())
            .set("client.id", format!("{}-{kind}", self.name))
            .set("log_level", "3");
        for (k, v) in defaults {
            c.set(*k, *v);
        }
        for (k, v) in cfg.client_overrides(&format!("{kind}.")) {
            c.set(k, v);
        }
        c
    }

    /// Runs until stopped; a failure goes to the uncaught-error handler, which
    /// may replace the thread (new clients, tasks reopened from their state).
    pub fn run(self) {
        loop {
            let Err(e) = self.run_once() else { break };
            tracing::error!(thread = %self.name, "stream thread failed: {e}");
            match self.shared.uncaught(&e) {
                StreamThreadExceptionResponse::ReplaceThread
                    if !self.stop.load(Ordering::Relaxed) =>
                {
                    tracing::warn!(thread = %self.name, "replacing the failed stream thread");
                    self.shared.metrics.incr("replaced-threads", 1);
                    self.shared.thread_rebalancing(&self.name);
                }
                StreamThreadExceptionResponse::ReplaceThread => break,
                StreamThreadExceptionResponse::ShutdownClient => {
                    self.shared.fail(e.to_string());
                    break;
                }
                StreamThreadExceptionResponse::ShutdownApplication => {
                    self.shared.shutdown_application(e.to_string());
                    break;
                }
            }
        }
    }

    fn clients(&self, app_id: &str) -> Result<Clients, StreamsError> {
        let pc = self.client_config(
            "producer",
            &[
                ("acks", "all"),
                ("linger.ms", "5"),
                // Java's default partitioner, so keys land where Java clients put them.
                ("partitioner", "murmur2_random"),
                ("enable.idempotence", "true"),
            ],
        );
        let collector = Collector::new(&pc)?;
        let mut cc = self.client_config(
            "consumer",
            &[
                ("auto.offset.reset", "earliest"),
                // Range assigns partition p of every co-partitioned topic to the same member.
                ("partition.assignment.strategy", "range"),
                // librdkafka pauses fetching for fetch.queue.backoff.ms (1 s) whenever
                // its local queue passes queued.min.messages; a stream thread drains
                // that queue in milliseconds, so a long pause only idles it.
                ("fetch.queue.backoff.ms", "10"),
            ],
        );
        // Not overridable: the runtime owns the group and its commits.
        cc.set("group.id", app_id)
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        let consumer: BaseConsumer<ThreadCtx> = cc.create_with_context(ThreadCtx::default())?;
        let mut rc = self.client_config(
            "restore.consumer",
            &[
                ("auto.offset.reset", "earliest"),
                ("fetch.queue.backoff.ms", "10"),
            ],
        );
        rc.set("group.id", format!("{app_id}-restore-unused"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true");
        let restore: BaseConsumer = rc.create()?;
        let reader = ChangelogReader::new(
            restore,
            self.shared.restore_listener(),
            self.shared.metrics.clone(),
            self.shared.config.task_timeout()?,
        );
        let watch = Watch::new(&consumer, app_id)?;
        let repartition: HashSet<String> = self
            .topology
            .repartition_topics
            .iter()
            .map(|t| format!("{app_id}-{t}"))
            .collect();
        let purger = Purger::new(
            &self.client_config("admin", &[]),
            repartition,
            self.shared.config.repartition_purge_interval()?,
        )?;
        Ok(Clients {
            consumer,
            collector,
            reader,
            watch,
            standby_due: None,
            purger,
            assigned: Vec::new(),
        })
    }

    fn run_once(&self) -> Result<(), StreamsError> {
        let cfg = &self.shared.config;
        let app_id = cfg.application_id()?.to_string();
        let mut c = self.clients(&app_id)?;
        let topic_sub: HashMap<String, u32> = self
            .topology
            .subtopologies
            .iter()
            .flat_map(|s| {
                let app_id = &app_id;
                s.source_topics
                    .iter()
                    .map(move |t| (t.resolve(app_id), s.id))
            })
            .collect();
        let single_input = self
            .topology
            .subtopologies
            .iter()
            .filter(|s| s.source_topics.len() == 1)
            .map(|s| s.id)
            .collect();
        let factory = TaskFactory {
            topology: self.topology.clone(),
            app_id: app_id.clone(),
            state_dir: cfg.state_dir().join(&app_id),
            rocks: self.shared.rocks.clone(),
            metrics: self.shared.metrics.clone(),
            handlers: Handlers {
                deserialization: cfg.deserialization_handler()?,
                processing: cfg.processing_handler()?,
            },
            cache_bytes: cfg.cache_max_bytes()? / self.shared.threads.max(1),
            topic_sub,
            single_input,
        };
        let mut tasks = Tasks::new(
            factory,
            cfg.task_timeout()?,
            self.shared.task_dirs.clone(),
            &self.name,
        );
        let topics = self.topology.all_source_topics(&app_id);
        let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        c.consumer.subscribe(&topic_refs)?;

        let result = self.run_loop(&mut c, &mut tasks);
        // Clean close: commit and checkpoint. After a failure (a lost record
        // above all) nothing is committed or checkpointed: Kafka's dirty close.
        let closed = match &result {
            Ok(()) => tasks
                .commit(&c.consumer, &c.collector, true)
                .and_then(|_| tasks.close_all(&c.collector, true)),
            Err(_) => tasks.close_all(&c.collector, false),
        };
        if let Err(e) = &closed {
            tracing::error!(thread = %self.name, "closing tasks failed: {e}");
            let _ = tasks.close_all(&c.collector, false);
        }
        if let Err(e) = tasks.close_standbys(&c.collector) {
            tracing::warn!(thread = %self.name, "closing standby tasks failed: {e}");
        }
        c.consumer.context().set_closing();
        // A revocation recorded but not acted on still waits for this call.
        if let Err(e) = c.consumer.unassign() {
            tracing::debug!("unassign on close: {e}");
        }
        c.consumer.unsubscribe();
        drop(c);
        result.and(closed)
    }

    fn run_loop(&self, c: &mut Clients, tasks: &mut Tasks) -> Result<(), StreamsError> {
        let commit_every = self.shared.config.commit_interval()?;
        let poll = self.shared.config.poll_interval();
        let mut last_commit = Instant::now();
        let replicas = self.shared.config.num_standby_replicas()?;
        // Outputs of one record on their way to the producer (kept for its allocation).
        let mut out = Vec::new();
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            // While restoring, the main consumer is polled without waiting (it
            // serves rebalances and max.poll.interval.ms) and restoration runs.
            let wait = if c.reader.restoring() {
                Duration::ZERO
            } else {
                poll
            };
            let mut next = c.consumer.poll(wait);
            let mut taken = 0;
            while let Some(m) = next {
                match m {
                    // Once a rebalance is pending the record waits in the buffer until the
                    // rebalance has been handled, as every record did before inline processing.
                    Ok(m) => {
                        let now = !c.consumer.context().pending();
                        tasks.accept(m, now, &c.collector, &mut out)?
                    }
                    Err(e) => consumer_error(e)?,
                }
                taken += 1;
                // Stop at a rebalance: records polled after a revocation belong
                // to partitions this thread is giving back.
                if taken >= MAX_BUFFERED || c.consumer.context().pending() {
                    break;
                }
                next = c.consumer.poll(Duration::ZERO);
            }
            if c.consumer.context().pending() {
                self.handle_rebalance(c, tasks)?;
            }
            if replicas > 0 {
                self.maintain_standbys(c, tasks, replicas)?;
            }
            if !tasks.pending().is_empty() {
                self.open_pending(c, tasks)?;
            }
            if !c.reader.is_idle() {
                self.restore_turn(c, tasks)?;
            }
            tasks.process_buffered(&c.collector)?;
            tasks.punctuate(&c.collector)?;
            if last_commit.elapsed() >= commit_every {
                let committed = tasks.commit(&c.consumer, &c.collector, false)?;
                c.purger.committed(&committed);
                c.purger.maybe_purge();
                last_commit = Instant::now();
                if c.watch.requested(&c.consumer) {
                    tracing::error!(thread = %self.name, "another instance asked the application to shut down");
                    self.shared
                        .fail("the application was shut down by another instance".into());
                    return Ok(());
                }
            }
        }
    }

    fn handle_rebalance(&self, c: &mut Clients, tasks: &mut Tasks) -> Result<(), StreamsError> {
        for event in c.consumer.context().take() {
            match event {
                RebalanceEvent::Revoke(parts) => {
                    tracing::info!(thread = %self.name, partitions = parts.len(), "partitions revoked");
                    self.shared.thread_rebalancing(&self.name);
                    // Commit before the partitions are given away (the group
                    // still accepts this generation's commits while preparing).
                    tasks.commit(&c.consumer, &c.collector, false)?;
                    self.stop_restoring(c, tasks)?;
                    tasks.suspend_all(&c.collector)?;
                    c.consumer.unassign()?;
                    c.assigned.clear();
                }
                RebalanceEvent::Lost(parts) => {
                    tracing::warn!(
                        thread = %self.name,
                        partitions = parts.len(),
                        "partitions lost (session expired or fenced): closing tasks without committing"
                    );
                    self.shared.thread_rebalancing(&self.name);
                    self.stop_restoring(c, tasks)?;
                    tasks.close_all(&c.collector, false)?;
                    c.assigned.clear();
                }
                RebalanceEvent::Assign(parts) => {
                    tracing::info!(thread = %self.name, partitions = parts.len(), "partitions assigned");
                    let mut tpl = TopicPartitionList::new();
                    for (t, p) in &parts {
                        tpl.add_partition(t, *p);
                    }
                    // Offsets unset: librdkafka starts from the committed ones.
                    c.consumer.assign(&tpl)?;
                    c.assigned = parts;
                    let ids = tasks.task_ids(&c.assigned);
                    // A standby that becomes active here closes with a
                    // checkpoint first; the active task restores only the tail.
                    let promoted = tasks.standbys_to_drop(Some(&BTreeSet::new()), &ids);
                    for id in promoted.into_iter().filter(|id| ids.contains(id)) {
                        self.drop_standby(c, tasks, id)?;
                    }
                    c.standby_due = Some(Instant::now() + STANDBY_SETTLE);
                    let collector = &c.collector;
                    let restoring =
                        tasks.assign(&ids, &|topic, p| c.watermarks(topic, p), &|topic, p| {
                            collector.forget(topic, p)
                        })?;
                    let waiting = tasks.pending();
                    let held: Vec<TaskId> = restoring.iter().chain(&waiting).copied().collect();
                    if !held.is_empty() {
                        let paused = tasks.input_list(&held, &c.assigned)?;
                        c.consumer.pause(&paused)?;
                    }
                    if !restoring.is_empty() {
                        for id in &restoring {
                            let all = changelog_views(tasks);
                            let mine = all.get(id).copied().unwrap_or(&[]);
                            let task = &tasks.active[id].task;
                            c.reader.register(*id, task, mine, &all)?;
                        }
                    }
                    for id in ids.iter().filter(|id| !held.contains(id)) {
                        tasks.start_running(*id)?;
                    }
                    if held.is_empty() {
                        self.shared.thread_running(&self.name);
                    }
                }
            }
        }
        Ok(())
    }

    /// Opens assigned tasks another thread of this instance has released.
    fn open_pending(&self, c: &mut Clients, tasks: &mut Tasks) -> Result<(), StreamsError> {
        let collector = &c.collector;
        let opened = tasks.open_pending(&|topic, p| c.watermarks(topic, p), &|topic, p| {
            collector.forget(topic, p)
        })?;
        let mut running = Vec::new();
        for (id, phase) in opened {
            if phase == Phase::Restoring {
                let all = changelog_views(tasks);
                let mine = all.get(&id).copied().unwrap_or(&[]);
                c.reader.register(id, &tasks.active[&id].task, mine, &all)?;
            } else {
                tasks.start_running(id)?;
                running.push(id);
            }
        }
        if !running.is_empty() {
            let resumed = tasks.input_list(&running, &c.assigned)?;
            c.consumer.resume(&resumed)?;
        }
        if tasks.pending().is_empty() && !tasks.any_restoring() {
            self.shared.thread_running(&self.name);
        }
        Ok(())
    }

    /// Drops standbys another thread waits for; when due, recomputes the
    /// placement from the group's membership and opens or closes standbys.
    fn maintain_standbys(
        &self,
        c: &mut Clients,
        tasks: &mut Tasks,
        replicas: usize,
    ) -> Result<(), StreamsError> {
        for id in tasks.standbys_to_drop(None, &BTreeSet::new()) {
            self.drop_standby(c, tasks, id)?;
        }
        if c.standby_due.is_some_and(|at| Instant::now() < at) {
            return Ok(());
        }
        c.standby_due = Some(Instant::now() + STANDBY_REFRESH);
        let app_id = tasks.factory.app_id.clone();
        let groups = match c.consumer.fetch_group_list(Some(&app_id), CLIENT_TIMEOUT) {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(thread = %self.name, "reading the group for standby placement: {e}");
                return Ok(());
            }
        };
        let members: Vec<(String, Vec<Tp>)> = groups
            .groups()
            .iter()
            .flat_map(|g| g.members())
            .map(|m| {
                let parts = m
                    .assignment()
                    .and_then(decode_assignment)
                    .unwrap_or_default();
                (m.client_id().to_string(), parts)
            })
            .collect();
        let active = active_by_instance(&members, &app_id, &tasks.factory.topic_sub);
        let placement = Placement {
            instance: &self.shared.instance_id,
            threads: self.shared.threads,
            thread_index: self.index,
            replicas,
        };
        let wanted = placement.standbys(&active, &|id| tasks.is_stateful(id));
        let here: BTreeSet<TaskId> = tasks.active.keys().copied().collect();
        for id in tasks.standbys_to_drop(Some(&wanted), &here) {
            self.drop_standby(c, tasks, id)?;
        }
        let collector = &c.collector;
        let opened =
            tasks.open_standbys(&wanted, &|topic, p| c.watermarks(topic, p), &|topic, p| {
                collector.forget(topic, p)
            })?;
        for id in opened {
            tracing::info!(thread = %self.name, task = %id, "standby replica opened");
            let all = changelog_views(tasks);
            let mine = all.get(&id).copied().unwrap_or(&[]);
            c.reader
                .register(id, &tasks.standby[&id].task, mine, &all)?;
        }
        Ok(())
    }

    /// Stops reading a standby's changelogs and closes it with a checkpoint.
    fn drop_standby(
        &self,
        c: &mut Clients,
        tasks: &mut Tasks,
        id: TaskId,
    ) -> Result<(), StreamsError> {
        let Some(t) = tasks.standby.get(&id) else {
            return Ok(());
        };
        let all = changelog_views(tasks);
        c.reader.unregister(id, &t.task, &all)?;
        tasks.close_standby(id, &c.collector)
    }

    /// Unregisters every restoring task from the restore consumer.
    fn stop_restoring(&self, c: &mut Clients, tasks: &Tasks) -> Result<(), StreamsError> {
        let restoring: Vec<TaskId> = tasks
            .active
            .iter()
            .filter(|(_, t)| t.phase == Phase::Restoring)
            .map(|(id, _)| *id)
            .collect();
        let all = changelog_views(tasks);
        for id in restoring {
            c.reader.unregister(id, &tasks.active[&id].task, &all)?;
        }
        Ok(())
    }

    fn restore_turn(&self, c: &mut Clients, tasks: &mut Tasks) -> Result<(), StreamsError> {
        let finished = {
            let mut restoring: BTreeMap<_, _> = tasks
                .active
                .iter_mut()
                .filter(|(_, t)| t.phase == Phase::Restoring)
                .chain(tasks.standby.iter_mut())
                .map(|(id, t)| (*id, (&mut t.task, &mut t.changelogs)))
                .collect();
            c.reader.restore_turn(&mut restoring)?
        };
        if finished.is_empty() {
            return Ok(());
        }
        for id in &finished {
            tracing::info!(thread = %self.name, task = %id, "state restored");
            tasks.start_running(*id)?;
        }
        let resumed = tasks.input_list(&finished, &c.assigned)?;
        c.consumer.resume(&resumed)?;
        if !tasks.any_restoring() && tasks.pending().is_empty() {
            self.shared.thread_running(&self.name);
        }
        Ok(())
    }
}

/// Each active and standby task's changelog positions.
fn changelog_views(tasks: &Tasks) -> BTreeMap<TaskId, &[ChangelogPos]> {
    tasks
        .active
        .iter()
        .chain(tasks.standby.iter())
        .map(|(id, t)| (*id, t.changelogs.as_slice()))
        .collect()
}

/// Consumer errors are mostly informational in librdkafka (a broker went
/// away, a topic is briefly unknown): log them; only fatal ones stop the thread.
pub(super) fn consumer_error(e: KafkaError) -> Result<(), StreamsError> {
    match e {
        KafkaError::MessageConsumptionFatal(_) => Err(e.into()),
        e => {
            tracing::warn!("consumer: {e}");
            Ok(())
        }
    }
}
