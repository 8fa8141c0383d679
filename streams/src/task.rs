//! A task: one instance of a sub-topology for one input partition, with its
//! processors, stores and stream time.

use std::collections::HashMap;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::config::{DeserializationHandler, ProcessingHandler};
use crate::error::StreamsError;
use crate::metrics::Metrics;
use crate::processor::{set_time_cell, Ctx, Node, OutRecord, PunctuationType, TaskShared};
use crate::record::{DynRecord, Headers};
use crate::state::{RocksEnv, StoreRef};
use crate::topology::{DeserFn, NodeKind, SubTopology, Topology, TsFn};

/// Identifies a task: sub-topology and partition, shown as `0_1` like Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// The sub-topology number.
    pub subtopology: u32,
    /// The input partition.
    pub partition: i32,
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.subtopology, self.partition)
    }
}

struct NodeMeta {
    name: String,
    children: Vec<usize>,
    child_names: Vec<String>,
}

struct SourceInfo {
    node: usize,
    topic: Arc<str>,
    deser: DeserFn,
    timestamps: Option<TsFn>,
}

/// Error-handling choices a task applies.
#[derive(Clone, Copy)]
pub(crate) struct Handlers {
    pub deserialization: DeserializationHandler,
    pub processing: ProcessingHandler,
}

/// One raw input record.
pub(crate) struct InputRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub timestamp: i64,
    pub headers: Headers,
}

pub(crate) struct Task {
    pub id: TaskId,
    meta: Vec<NodeMeta>,
    procs: Vec<Option<Box<dyn Node>>>,
    order: Vec<usize>,
    sources: HashMap<String, SourceInfo>,
    pub shared: TaskShared,
    pool: Vec<Vec<(usize, DynRecord)>>,
    handlers: Handlers,
    /// Store name → resolved changelog topic.
    pub changelogs: HashMap<String, Arc<str>>,
    pub dir: Option<PathBuf>,
}

impl Task {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        topology: &Topology,
        sub: &SubTopology,
        partition: i32,
        app_id: &str,
        dir: Option<PathBuf>,
        env: &RocksEnv,
        cache_bytes: usize,
        metrics: Arc<Metrics>,
        handlers: Handlers,
    ) -> Result<Task, StreamsError> {
        let id = TaskId {
            subtopology: sub.id,
            partition,
        };
        let n = topology.nodes.len();
        let mut meta = Vec::with_capacity(n);
        let mut procs: Vec<Option<Box<dyn Node>>> = (0..n).map(|_| None).collect();
        for def in &topology.nodes {
            meta.push(NodeMeta {
                name: def.name.clone(),
                children: def.children.clone(),
                child_names: def
                    .children
                    .iter()
                    .map(|&c| topology.nodes[c].name.clone())
                    .collect(),
            });
        }
        let mut sources = HashMap::new();
        for &i in &sub.nodes {
            let def = &topology.nodes[i];
            procs[i] = Some((def.factory)(app_id));
            if let NodeKind::Source {
                topics,
                deser,
                timestamps,
            } = &def.kind
            {
                for t in topics {
                    sources.insert(
                        t.resolve(app_id),
                        SourceInfo {
                            node: i,
                            topic: Arc::from(t.resolve(app_id)),
                            deser: deser.clone(),
                            timestamps: timestamps.clone(),
                        },
                    );
                }
            }
        }
        let mut stores = HashMap::new();
        let mut changelogs = HashMap::new();
        for name in &sub.stores {
            let spec = topology.stores.get(name).cloned().ok_or_else(|| {
                StreamsError::Topology(format!("store `{name}` is used but was never added"))
            })?;
            let store_dir = dir.as_ref().map(|d| d.join(name));
            let store = spec.open(store_dir.as_deref(), env, cache_bytes)?;
            if let Some(cl) = topology.changelog_of(name) {
                changelogs.insert(name.clone(), Arc::from(format!("{app_id}-{cl}")));
            }
            stores.insert(
                name.clone(),
                (Arc::new(Mutex::new(store)) as StoreRef, spec),
            );
        }
        let mut order = sub.nodes.clone();
        order.sort_unstable();
        Ok(Task {
            id,
            meta,
            procs,
            order,
            sources,
            shared: TaskShared {
                task_id: id,
                app_id: app_id.to_string(),
                stores,
                outputs: Vec::new(),
                meta: None,
                stream_time: -1,
                wall_time: crate::processor::now_ms(),
                record_time: Arc::new(AtomicI64::new(0)),
                schedules: Vec::new(),
                next_schedule: 0,
                metrics,
                cache_bytes,
            },
            pool: Vec::new(),
            handlers,
            changelogs,
            dir,
        })
    }

    /// Initialises processors (after restoration).
    pub fn init(&mut self) -> Result<(), StreamsError> {
        for i in self.order.clone() {
            self.call(i, |p, ctx| p.init(ctx))?;
        }
        Ok(())
    }

    pub fn set_wall_time(&mut self, now: i64) {
        self.shared.wall_time = now;
    }

    fn run(&mut self, node: usize, rec: DynRecord) -> Result<(), StreamsError> {
        self.call(node, |p, ctx| p.process(ctx, rec))
    }

    /// Calls one node with its context, then runs what it forwarded,
    /// depth first, in order.
    fn call(
        &mut self,
        node: usize,
        f: impl FnOnce(&mut dyn Node, &mut Ctx<'_>) -> Result<(), StreamsError>,
    ) -> Result<(), StreamsError> {
        let mut out = self.pool.pop().unwrap_or_default();
        let mut result = {
            let m = &self.meta[node];
            let mut ctx = Ctx {
                shared: &mut self.shared,
                node,
                node_name: &m.name,
                children: &m.children,
                child_names: &m.child_names,
                out: &mut out,
            };
            match self.procs[node].as_mut() {
                Some(p) => f(p.as_mut(), &mut ctx),
                None => Ok(()),
            }
        };
        if result.is_ok() {
            for (c, r) in out.drain(..) {
                if let Err(e) = self.run(c, r) {
                    result = Err(e);
                    break;
                }
            }
        }
        out.clear();
        self.pool.push(out);
        result
    }

    /// Processes one input record through the graph.
    pub fn process(&mut self, input: InputRecord<'_>) -> Result<(), StreamsError> {
        let Some(src) = self.sources.get(input.topic) else {
            return Err(StreamsError::IllegalState(format!(
                "task {} does not read topic `{}`",
                self.id, input.topic
            )));
        };
        let node = src.node;
        let topic = src.topic.clone();
        let (key, value) = match (src.deser)(input.key, input.value) {
            Ok(kv) => kv,
            Err(e) => {
                return match self.handlers.deserialization {
                    DeserializationHandler::LogAndContinue => {
                        tracing::warn!(
                            topic = input.topic,
                            partition = input.partition,
                            offset = input.offset,
                            "skipping record that does not deserialise: {e}"
                        );
                        self.shared
                            .metrics
                            .incr("skipped-records:deserialization", 1);
                        self.shared
                            .metrics
                            .record_dropped(&self.meta[node].name, "deserialization");
                        Ok(())
                    }
                    DeserializationHandler::LogAndFail => Err(StreamsError::Serde {
                        topic: input.topic.to_string(),
                        source: e,
                    }),
                };
            }
        };
        let ts = match &src.timestamps {
            Some(f) => f(&key, &value, input.timestamp),
            None => input.timestamp,
        };
        if ts < 0 {
            tracing::warn!(
                topic = input.topic,
                offset = input.offset,
                "skipping record with invalid timestamp {ts}"
            );
            self.shared
                .metrics
                .record_dropped(&self.meta[node].name, "invalid-timestamp");
            return Ok(());
        }
        self.shared.stream_time = self.shared.stream_time.max(ts);
        set_time_cell(&self.shared.record_time, ts);
        self.shared.meta = Some((topic, input.partition, input.offset));
        let rec = DynRecord {
            key,
            value,
            timestamp: ts,
            headers: input.headers,
        };
        self.guarded(node, |t| t.run(node, rec))?;
        self.punctuate(PunctuationType::StreamTime)
    }

    /// Runs `f`, applying the processing error handler to errors and panics.
    fn guarded(
        &mut self,
        node: usize,
        f: impl FnOnce(&mut Self) -> Result<(), StreamsError>,
    ) -> Result<(), StreamsError> {
        let r = catch_unwind(AssertUnwindSafe(|| f(self)));
        let err = match r {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e,
            Err(panic) => StreamsError::Processing {
                node: self.meta[node].name.clone(),
                message: panic_message(&panic),
            },
        };
        match (&err, self.handlers.processing) {
            // Store and client failures are not user errors: never skip them.
            (
                StreamsError::Processing { .. } | StreamsError::Serde { .. },
                ProcessingHandler::LogAndContinue,
            ) => {
                tracing::warn!(task = %self.id, "skipping record after processing error: {err}");
                self.shared.metrics.incr("skipped-records:processing", 1);
                self.shared
                    .metrics
                    .record_dropped(&self.meta[node].name, "processing-error");
                Ok(())
            }
            _ => Err(err),
        }
    }

    /// Fires due punctuations of one kind.
    pub fn punctuate(&mut self, kind: PunctuationType) -> Result<(), StreamsError> {
        let now = match kind {
            PunctuationType::StreamTime => self.shared.stream_time,
            PunctuationType::WallClockTime => self.shared.wall_time,
        };
        let due: Vec<(u64, usize)> = self
            .shared
            .schedules
            .iter_mut()
            .filter(|s| !s.cancelled && s.kind == kind && s.next <= now)
            .map(|s| {
                // One call per tick reached, then skip ahead (Kafka does the same).
                while s.next <= now {
                    s.next += s.interval;
                }
                (s.id, s.node)
            })
            .collect();
        for (id, node) in due {
            self.shared.meta = None;
            set_time_cell(&self.shared.record_time, now);
            self.guarded(node, |t| t.call(node, |p, ctx| p.punctuate(ctx, id, now)))?;
        }
        Ok(())
    }

    /// Commit preparation: processors emit what caches held back, stores write through.
    pub fn flush(&mut self) -> Result<(), StreamsError> {
        for i in self.order.clone() {
            self.call(i, |p, ctx| p.flush(ctx))?;
        }
        for (store, _) in self.shared.stores.values() {
            store.lock().flush()?;
        }
        Ok(())
    }

    /// Records produced since the last call: outputs, repartition and changelog writes.
    pub fn drain_outputs(&mut self, into: &mut Vec<OutRecord>) {
        into.append(&mut self.shared.outputs);
        let partition = self.id.partition;
        for (name, (store, _)) in &self.shared.stores {
            let log = store.lock().take_changelog();
            if let Some(topic) = self.changelogs.get(name) {
                into.extend(log.into_iter().map(|c| OutRecord {
                    topic: topic.clone(),
                    key: Some(c.key),
                    value: c.value,
                    timestamp: c.timestamp,
                    headers: Headers::new(),
                    partition: Some(partition),
                    changelog: true,
                }));
            }
        }
    }

    pub fn store(&self, name: &str) -> Option<&StoreRef> {
        self.shared.stores.get(name).map(|(s, _)| s)
    }

    pub fn store_names(&self) -> Vec<String> {
        self.shared.stores.keys().cloned().collect()
    }

    /// Whether any store keeps state on local disk.
    pub fn has_persistent_stores(&self) -> bool {
        self.shared
            .stores
            .values()
            .any(|(s, _)| s.lock().persistent())
    }

    pub fn close(&mut self) {
        for p in self.procs.iter_mut().flatten() {
            p.close();
        }
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}
