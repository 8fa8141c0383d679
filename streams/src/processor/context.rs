//! What a processor sees while it runs: forwarding, stores, time, metadata.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::error::StreamsError;
use crate::metrics::Metrics;
use crate::record::{Data, DynRecord, Headers, Record, RecordMetadata};
use crate::state::{StoreKind, StoreRef, StoreSpec};
use crate::store_api::{KeyValueStore, WindowStoreHandle};
use crate::TaskId;

/// When a punctuation fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PunctuationType {
    /// When stream time (the largest record timestamp seen by the task) passes the next tick.
    StreamTime,
    /// When the system clock passes the next tick.
    WallClockTime,
}

/// Identifies a scheduled punctuation.
pub type ScheduleId = u64;

/// A record leaving the task for a topic.
#[derive(Debug, Clone)]
pub(crate) struct OutRecord {
    /// Shared: one allocation per sink, not per record.
    pub topic: Arc<str>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
    pub headers: Headers,
    pub partition: Option<i32>,
    /// A store's changelog record: the collector tracks its acknowledged offset.
    pub changelog: bool,
}

pub(crate) struct Schedule {
    pub id: ScheduleId,
    pub node: usize,
    pub interval: i64,
    pub kind: PunctuationType,
    pub next: i64,
    pub cancelled: bool,
}

/// Task-wide state shared by all processors of a task.
pub(crate) struct TaskShared {
    pub task_id: TaskId,
    pub app_id: String,
    pub stores: HashMap<String, (StoreRef, Arc<StoreSpec>)>,
    pub outputs: Vec<OutRecord>,
    /// Topic, partition, offset of the record being processed.
    pub meta: Option<(Arc<str>, i32, i64)>,
    pub stream_time: i64,
    pub wall_time: i64,
    /// Timestamp of the record (or punctuation) being processed, for store writes.
    pub record_time: Arc<AtomicI64>,
    pub schedules: Vec<Schedule>,
    pub next_schedule: ScheduleId,
    pub metrics: Arc<Metrics>,
    /// Per-task share of `statestore.cache.max.bytes`.
    pub cache_bytes: usize,
}

/// Erased processor context.
pub(crate) struct Ctx<'a> {
    pub shared: &'a mut TaskShared,
    pub node: usize,
    pub node_name: &'a str,
    pub children: &'a [usize],
    pub child_names: &'a [String],
    pub out: &'a mut Vec<(usize, DynRecord)>,
}

impl Ctx<'_> {
    pub fn forward(&mut self, rec: DynRecord) {
        match self.children.len() {
            0 => {}
            1 => self.out.push((self.children[0], rec)),
            n => {
                for &c in &self.children[..n - 1] {
                    self.out.push((c, rec.clone()));
                }
                self.out.push((self.children[n - 1], rec));
            }
        }
    }

    pub fn forward_typed<K: Data, V: Data>(&mut self, rec: Record<K, V>) {
        self.forward(DynRecord::erase(rec));
    }

    pub fn forward_to_index(&mut self, i: usize, rec: DynRecord) {
        if let Some(&c) = self.children.get(i) {
            self.out.push((c, rec));
        }
    }

    pub fn store(&self, name: &str) -> Result<StoreRef, StreamsError> {
        self.shared
            .stores
            .get(name)
            .map(|(s, _)| s.clone())
            .ok_or_else(|| {
                StreamsError::Topology(format!(
                    "processor `{}` uses store `{name}` which is not connected to it",
                    self.node_name
                ))
            })
    }

    pub fn record_dropped(&self, reason: &str) {
        self.shared.metrics.record_dropped(self.node_name, reason);
    }
}

/// What a [`Processor`](crate::Processor) may do while it runs.
pub struct ProcessorContext<'c, 'a, KOut, VOut> {
    ctx: &'c mut Ctx<'a>,
    _t: PhantomData<fn(KOut, VOut)>,
}

impl<'c, 'a, KOut: Data, VOut: Data> ProcessorContext<'c, 'a, KOut, VOut> {
    pub(crate) fn new(ctx: &'c mut Ctx<'a>) -> Self {
        ProcessorContext {
            ctx,
            _t: PhantomData,
        }
    }

    /// Sends a record to every child.
    pub fn forward(&mut self, record: Record<KOut, VOut>) {
        self.ctx.forward_typed(record);
    }

    /// Sends a record to the named child only.
    pub fn forward_to(
        &mut self,
        child: &str,
        record: Record<KOut, VOut>,
    ) -> Result<(), StreamsError> {
        let i = self
            .ctx
            .child_names
            .iter()
            .position(|c| c == child)
            .ok_or_else(|| {
                StreamsError::Topology(format!("`{}` has no child `{child}`", self.ctx.node_name))
            })?;
        self.ctx.forward_to_index(i, DynRecord::erase(record));
        Ok(())
    }

    /// Topic, partition and offset of the input record; `None` inside a punctuation.
    pub fn record_metadata(&self) -> Option<RecordMetadata> {
        self.ctx
            .shared
            .meta
            .as_ref()
            .map(|(t, p, o)| RecordMetadata {
                topic: t.to_string(),
                partition: *p,
                offset: *o,
            })
    }

    /// The task's stream time: the largest timestamp it has processed.
    pub fn stream_time(&self) -> i64 {
        self.ctx.shared.stream_time
    }

    /// Wall-clock time in ms (mocked by the test driver).
    pub fn wall_clock_time(&self) -> i64 {
        self.ctx.shared.wall_time
    }

    /// The task this processor instance belongs to.
    pub fn task_id(&self) -> TaskId {
        self.ctx.shared.task_id
    }

    /// The `application.id`.
    pub fn application_id(&self) -> &str {
        &self.ctx.shared.app_id
    }

    /// Schedules [`Processor::punctuate`](crate::Processor::punctuate) every `interval_ms`.
    pub fn schedule(&mut self, interval_ms: i64, kind: PunctuationType) -> ScheduleId {
        let s = &mut *self.ctx.shared;
        s.next_schedule += 1;
        let base = match kind {
            PunctuationType::StreamTime => s.stream_time.max(0),
            PunctuationType::WallClockTime => s.wall_time,
        };
        s.schedules.push(super::Schedule {
            id: s.next_schedule,
            node: self.ctx.node,
            interval: interval_ms.max(1),
            kind,
            next: base + interval_ms.max(1),
            cancelled: false,
        });
        s.next_schedule
    }

    /// Cancels a punctuation.
    pub fn cancel(&mut self, id: ScheduleId) {
        for s in &mut self.ctx.shared.schedules {
            if s.id == id {
                s.cancelled = true;
            }
        }
    }

    /// A key-value store connected to this processor.
    pub fn key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<KeyValueStore<K, V>, StreamsError> {
        let (store, spec) = self.lookup(name)?;
        if spec.kind != StoreKind::KeyValue {
            return Err(StreamsError::Topology(format!(
                "store `{name}` is not a key-value store"
            )));
        }
        KeyValueStore::new(name, store, &spec, self.ctx.shared.record_time.clone())
    }

    /// A window store connected to this processor.
    pub fn window_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<WindowStoreHandle<K, V>, StreamsError> {
        let (store, spec) = self.lookup(name)?;
        if !matches!(spec.kind, StoreKind::Window { .. }) {
            return Err(StreamsError::Topology(format!(
                "store `{name}` is not a window store"
            )));
        }
        WindowStoreHandle::new(name, store, &spec, self.ctx.shared.record_time.clone())
    }

    fn lookup(&self, name: &str) -> Result<(StoreRef, Arc<StoreSpec>), StreamsError> {
        self.ctx.shared.stores.get(name).cloned().ok_or_else(|| {
            StreamsError::Topology(format!(
                "processor `{}` uses store `{name}` which is not connected to it",
                self.ctx.node_name
            ))
        })
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn set_time_cell(cell: &AtomicI64, ts: i64) {
    cell.store(ts, Ordering::Relaxed);
}
