//! A stream thread: one consumer in the application's group, one producer,
//! and the tasks of the partitions assigned to it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::{Header, Headers as _, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use super::checkpoint;
use super::Shared;
use crate::error::StreamsError;
use crate::processor::{now_ms, OutRecord, PunctuationType};
use crate::record::Headers;
use crate::task::{Handlers, InputRecord, Task, TaskId};
use crate::topology::Topology;

const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Delivery failures seen by the producer since the last commit.
#[derive(Default)]
pub(crate) struct Deliveries {
    error: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, m)) = result {
            let mut err = self.error.lock();
            if err.is_none() {
                *err = Some(format!("producing to `{}` failed: {e}", m.topic()));
            }
        }
    }
}

/// Fetched records of one input partition.
pub(crate) struct PartitionQueue {
    topic: String,
    partition: i32,
    records: VecDeque<OwnedMessage>,
}

/// What a thread owns; shared with the consumer's rebalance callbacks, which
/// run inside `poll` on the same thread.
pub(crate) struct ThreadState {
    pub tasks: BTreeMap<TaskId, Task>,
    /// Next offset to commit per input partition.
    pub offsets: HashMap<String, HashMap<i32, i64>>,
    /// Fetched records not yet processed, per task and input partition.
    pub buffered: BTreeMap<TaskId, Vec<PartitionQueue>>,
    pub pending_assignment: Option<Vec<(String, i32)>>,
    pub producer: ThreadedProducer<Deliveries>,
    pub error: Option<StreamsError>,
    pub state_dir: PathBuf,
}

impl ThreadState {
    fn produce(&self, records: Vec<OutRecord>) -> Result<(), StreamsError> {
        for r in records {
            let mut rec: BaseRecord<'_, [u8], [u8], ()> =
                BaseRecord::to(&r.topic).timestamp(r.timestamp);
            if let Some(k) = &r.key {
                rec = rec.key(k.as_slice());
            }
            if let Some(v) = &r.value {
                rec = rec.payload(v.as_slice());
            }
            if let Some(p) = r.partition {
                rec = rec.partition(p);
            }
            if !r.headers.is_empty() {
                let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
                for h in r.headers.iter() {
                    headers = headers.insert(Header {
                        key: &h.key,
                        value: h.value.as_deref(),
                    });
                }
                rec = rec.headers(headers);
            }
            let mut rec = rec;
            loop {
                match self.producer.send(rec) {
                    Ok(()) => break,
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(
                            rdkafka::types::RDKafkaErrorCode::QueueFull,
                        ),
                        back,
                    )) => {
                        rec = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((e, _)) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// Flushes tasks, waits for every produced record's acknowledgement, then
    /// commits the input offsets (at-least-once).
    pub fn commit(&mut self, consumer: &BaseConsumer<ThreadCtx>) -> Result<(), StreamsError> {
        let mut out = Vec::new();
        for t in self.tasks.values_mut() {
            t.flush()?;
            t.drain_outputs(&mut out);
        }
        self.produce(out)?;
        self.producer.flush(CLIENT_TIMEOUT)?;
        if let Some(e) = self.producer.context().error.lock().take() {
            return Err(StreamsError::IllegalState(e));
        }
        if self.offsets.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for (t, parts) in &self.offsets {
            for (p, o) in parts {
                tpl.add_partition_offset(t, *p, Offset::Offset(*o))?;
            }
        }
        consumer.commit(&tpl, CommitMode::Sync)?;
        self.offsets.clear();
        Ok(())
    }

    /// Commits, writes checkpoints and closes every task (revocation and shutdown).
    pub fn close_all(&mut self, consumer: &BaseConsumer<ThreadCtx>) -> Result<(), StreamsError> {
        if self.tasks.is_empty() {
            return Ok(());
        }
        // Fetched but unprocessed records are fetched again by the next owner.
        self.buffered.clear();
        self.commit(consumer)?;
        for (_, mut t) in std::mem::take(&mut self.tasks) {
            let mut offsets = BTreeMap::new();
            for name in t.store_names() {
                if let Some(s) = t.store(&name) {
                    s.lock().persist()?;
                }
                if let Some(topic) = t.changelogs.get(&name) {
                    let (_, high) =
                        consumer.fetch_watermarks(topic, t.id.partition, CLIENT_TIMEOUT)?;
                    offsets.insert(name.clone(), high);
                }
            }
            if let Some(dir) = &t.dir {
                if t.has_persistent_stores() {
                    checkpoint::write(dir, &offsets)?;
                }
            }
            t.close();
        }
        Ok(())
    }
}

/// Consumer context: handles rebalances against the thread's state.
pub(crate) struct ThreadCtx {
    pub state: Arc<Mutex<ThreadState>>,
    pub shared: Arc<Shared>,
}

impl ClientContext for ThreadCtx {}

impl ConsumerContext for ThreadCtx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(_) = rebalance {
            self.shared.set_rebalancing();
            let mut st = self.state.lock();
            if let Err(e) = st.close_all(consumer) {
                tracing::error!("closing tasks on revocation failed: {e}");
                st.error.get_or_insert(e);
            }
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let parts = tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect();
            self.state.lock().pending_assignment = Some(parts);
        }
    }
}

pub(crate) struct StreamThread {
    pub name: String,
    pub topology: Arc<Topology>,
    pub shared: Arc<Shared>,
    pub stop: Arc<AtomicBool>,
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

    pub fn run(self) {
        let r = self.run_inner();
        if let Err(e) = r {
            tracing::error!(thread = %self.name, "stream thread failed: {e}");
            self.shared.fail(e.to_string());
        }
    }

    fn run_inner(&self) -> Result<(), StreamsError> {
        let cfg = &self.shared.config;
        let app_id = cfg.application_id()?.to_string();
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
        let producer: ThreadedProducer<Deliveries> =
            pc.create_with_context(Deliveries::default())?;
        let state = Arc::new(Mutex::new(ThreadState {
            tasks: BTreeMap::new(),
            offsets: HashMap::new(),
            buffered: BTreeMap::new(),
            pending_assignment: None,
            producer,
            error: None,
            state_dir: cfg.state_dir().join(&app_id),
        }));
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
        cc.set("group.id", &app_id)
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        let consumer: BaseConsumer<ThreadCtx> = cc.create_with_context(ThreadCtx {
            state: state.clone(),
            shared: self.shared.clone(),
        })?;
        let mut rc = self.client_config("restore.consumer", &[]);
        rc.set("group.id", format!("{app_id}-restore-unused"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        let restore: BaseConsumer = rc.create()?;
        let topics = self.topology.all_source_topics(&app_id);
        let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topic_refs)?;
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
        let handlers = Handlers {
            deserialization: cfg.deserialization_handler()?,
            processing: cfg.processing_handler()?,
        };
        let commit_every = cfg.commit_interval()?;
        let poll = cfg.poll_interval();
        let mut last_commit = Instant::now();
        let mut batch: Vec<OutRecord> = Vec::new();
        let result = loop {
            if self.stop.load(Ordering::Relaxed) {
                break Ok(());
            }
            let r = self.step(
                &consumer, &restore, &state, &topic_sub, handlers, poll, &mut batch,
            );
            if let Err(e) = r {
                break Err(e);
            }
            if last_commit.elapsed() >= commit_every {
                if let Err(e) = state.lock().commit(&consumer) {
                    break Err(e);
                }
                last_commit = Instant::now();
            }
        };
        // Commit and checkpoint before leaving the group, even after an error
        // in user code (what was processed is kept); a failing commit is reported.
        let closed = state.lock().close_all(&consumer);
        consumer.unsubscribe();
        drop(consumer);
        result.and(closed)
    }

    /// One poll: apply a new assignment, process a record, fire wall-clock punctuations.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        consumer: &BaseConsumer<ThreadCtx>,
        restore: &BaseConsumer,
        state: &Arc<Mutex<ThreadState>>,
        topic_sub: &HashMap<String, u32>,
        handlers: Handlers,
        poll: Duration,
        batch: &mut Vec<OutRecord>,
    ) -> Result<(), StreamsError> {
        let msg = consumer.poll(poll);
        let assignment = {
            let mut st = state.lock();
            if let Some(e) = st.error.take() {
                return Err(e);
            }
            st.pending_assignment.take()
        };
        if let Some(parts) = assignment {
            self.assign(state, restore, parts, topic_sub, handlers)?;
            self.shared.thread_running(&self.name);
        }
        let mut st = state.lock();
        if let Some(msg) = msg {
            buffer(&mut st, topic_sub, msg?.detach());
            // Take what else is already fetched, so records of a task's
            // partitions can be processed in timestamp order.
            for _ in 0..MAX_BUFFERED {
                match consumer.poll(Duration::ZERO) {
                    Some(m) => buffer(&mut st, topic_sub, m?.detach()),
                    None => break,
                }
            }
            // A rebalance inside those polls may have closed tasks and dropped buffers.
            if let Some(e) = st.error.take() {
                return Err(e);
            }
            drop(st);
            if let Some(parts) = state.lock().pending_assignment.take() {
                self.assign(state, restore, parts, topic_sub, handlers)?;
                self.shared.thread_running(&self.name);
            }
            st = state.lock();
            process_buffered(&mut st)?;
        }
        let now = now_ms();
        for t in st.tasks.values_mut() {
            t.set_wall_time(now);
            t.punctuate(PunctuationType::WallClockTime)?;
            t.drain_outputs(batch);
        }
        if !batch.is_empty() {
            st.produce(std::mem::take(batch))?;
        }
        Ok(())
    }

    fn assign(
        &self,
        state: &Arc<Mutex<ThreadState>>,
        restore: &BaseConsumer,
        parts: Vec<(String, i32)>,
        topic_sub: &HashMap<String, u32>,
        handlers: Handlers,
    ) -> Result<(), StreamsError> {
        let app_id = self.shared.config.application_id()?.to_string();
        let mut ids: Vec<TaskId> = parts
            .iter()
            .filter_map(|(t, p)| {
                topic_sub.get(t).map(|&s| TaskId {
                    subtopology: s,
                    partition: *p,
                })
            })
            .collect();
        ids.sort();
        ids.dedup();
        let cache = self.shared.config.cache_max_bytes()? / self.shared.threads.max(1);
        let per_task_cache = cache / ids.len().max(1);
        let mut st = state.lock();
        for id in ids {
            if st.tasks.contains_key(&id) {
                continue;
            }
            let sub = &self.topology.subtopologies[id.subtopology as usize];
            let dir = st.state_dir.join(id.to_string());
            let start = checkpoint::read(&dir);
            // Persistent stores without a checkpoint may be ahead of or behind
            // their changelog: start them empty.
            for store in &sub.stores {
                if !start.contains_key(store) {
                    let _ = std::fs::remove_dir_all(dir.join(store));
                }
            }
            checkpoint::remove(&dir);
            let mut task = Task::new(
                &self.topology,
                sub,
                id.partition,
                &app_id,
                Some(dir),
                &self.shared.rocks,
                per_task_cache,
                self.shared.metrics.clone(),
                handlers,
            )?;
            let n = checkpoint::restore(restore, &mut task, &start, CLIENT_TIMEOUT)?;
            if n > 0 {
                tracing::info!(task = %id, records = n, "restored state from changelog");
            }
            self.shared.metrics.incr("restored-records", n);
            task.set_wall_time(now_ms());
            task.init()?;
            st.tasks.insert(id, task);
        }
        Ok(())
    }
}

/// Records taken from the consumer per poll, at most.
const MAX_BUFFERED: usize = 1000;

fn buffer(st: &mut ThreadState, topic_sub: &HashMap<String, u32>, m: OwnedMessage) {
    let Some(&sub) = topic_sub.get(m.topic()) else {
        return;
    };
    let id = TaskId {
        subtopology: sub,
        partition: m.partition(),
    };
    let queues = st.buffered.entry(id).or_default();
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

/// Processes buffered records task by task, always taking the partition
/// whose next record has the lowest timestamp (Kafka's choice with
/// `max.task.idle.ms` = 0: no waiting for partitions without data).
fn process_buffered(st: &mut ThreadState) -> Result<(), StreamsError> {
    let buffered = std::mem::take(&mut st.buffered);
    for (id, mut queues) in buffered {
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
            process(st, id, &m)?;
        }
    }
    Ok(())
}

fn process(st: &mut ThreadState, id: TaskId, m: &OwnedMessage) -> Result<(), StreamsError> {
    let Some(task) = st.tasks.get_mut(&id) else {
        return Ok(());
    };
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
    })?;
    let mut out = Vec::new();
    task.drain_outputs(&mut out);
    match st.offsets.get_mut(m.topic()) {
        Some(parts) => {
            parts.insert(m.partition(), m.offset() + 1);
        }
        None => {
            let parts = HashMap::from([(m.partition(), m.offset() + 1)]);
            st.offsets.insert(m.topic().to_string(), parts);
        }
    }
    st.produce(out)
}
