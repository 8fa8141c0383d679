//! `TopologyTestDriver`: run a topology with no broker, deterministically.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::config::StreamsConfig;
use crate::error::StreamsError;
use crate::metrics::Metrics;
use crate::processor::{OutRecord, PunctuationType};
use crate::record::{Headers, Record};
use crate::serde::{DefaultSerde, SerdeRef};
use crate::state::{RocksEnv, StoreKind};
use crate::store_api::{KeyValueStore, WindowStoreHandle};
use crate::task::{Handlers, InputRecord, Task};
use crate::topology::Topology;

struct Inner {
    app_id: String,
    tasks: Vec<Task>,
    /// Resolved topic → index into `tasks`.
    readers: HashMap<String, usize>,
    outputs: HashMap<String, VecDeque<OutRecord>>,
    offsets: HashMap<String, i64>,
    wall: i64,
    commit_each_record: bool,
    changelog_records: u64,
}

/// Runs a topology in-process: pipe records in, read records out, inspect
/// stores, advance wall-clock time. One task per sub-topology (partition 0);
/// records written to repartition topics are fed straight back in. After
/// each input record the driver commits, like Kafka's, so caches never hide
/// an update.
pub struct TopologyTestDriver {
    inner: Rc<RefCell<Inner>>,
    metrics: Arc<Metrics>,
    dir: PathBuf,
}

static DRIVERS: AtomicU64 = AtomicU64::new(0);

impl TopologyTestDriver {
    /// A driver for `topology`; `bootstrap.servers` is not used.
    pub fn new(topology: Topology, config: StreamsConfig) -> Result<Self, StreamsError> {
        let app_id = config.application_id()?.to_string();
        let dir = config.state_dir().join(format!(
            "brook-test-driver-{}-{}",
            std::process::id(),
            DRIVERS.fetch_add(1, Ordering::Relaxed)
        ));
        let env = RocksEnv::new(config.rocksdb_memory_bytes()?);
        let metrics = Arc::new(Metrics::default());
        let handlers = Handlers {
            deserialization: config.deserialization_handler()?,
            processing: config.processing_handler()?,
        };
        let cache = config.cache_max_bytes()?;
        let mut tasks = Vec::new();
        let mut readers = HashMap::new();
        for sub in &topology.subtopologies {
            let mut task = Task::new(
                &topology,
                sub,
                0,
                &app_id,
                Some(dir.join(format!("{}_0", sub.id))),
                &env,
                cache,
                metrics.clone(),
                handlers,
            )?;
            task.set_wall_time(0);
            task.init()?;
            for t in &sub.source_topics {
                readers.insert(t.resolve(&app_id), tasks.len());
            }
            tasks.push(task);
        }
        Ok(TopologyTestDriver {
            inner: Rc::new(RefCell::new(Inner {
                app_id,
                tasks,
                readers,
                outputs: HashMap::new(),
                offsets: HashMap::new(),
                wall: 0,
                commit_each_record: true,
                changelog_records: 0,
            })),
            metrics,
            dir,
        })
    }

    /// Commit only when asked ([`commit`](Self::commit)) instead of after each
    /// record, so caches collapse updates as they would between real commits.
    pub fn commit_manually(&self) {
        self.inner.borrow_mut().commit_each_record = false;
    }

    /// Flushes caches and forwards what they held back.
    pub fn commit(&self) -> Result<(), StreamsError> {
        let mut inner = self.inner.borrow_mut();
        for i in 0..inner.tasks.len() {
            inner.tasks[i].flush()?;
            inner.collect(i)?;
        }
        Ok(())
    }

    /// An input topic with explicit serdes.
    pub fn input_topic_with<K: 'static, V: 'static>(
        &self,
        topic: &str,
        keys: SerdeRef<K>,
        values: SerdeRef<V>,
    ) -> TestInputTopic<K, V> {
        TestInputTopic {
            inner: self.inner.clone(),
            topic: topic.to_string(),
            keys,
            values,
            next_ts: 0,
            advance: 0,
        }
    }

    /// An input topic with the types' default serdes.
    pub fn input_topic<K: DefaultSerde, V: DefaultSerde>(
        &self,
        topic: &str,
    ) -> TestInputTopic<K, V> {
        self.input_topic_with(topic, K::default_serde(), V::default_serde())
    }

    /// An output topic with explicit serdes.
    pub fn output_topic_with<K: 'static, V: 'static>(
        &self,
        topic: &str,
        keys: SerdeRef<K>,
        values: SerdeRef<V>,
    ) -> TestOutputTopic<K, V> {
        TestOutputTopic {
            inner: self.inner.clone(),
            topic: topic.to_string(),
            keys,
            values,
        }
    }

    /// An output topic with the types' default serdes.
    pub fn output_topic<K: DefaultSerde, V: DefaultSerde>(
        &self,
        topic: &str,
    ) -> TestOutputTopic<K, V> {
        self.output_topic_with(topic, K::default_serde(), V::default_serde())
    }

    /// Moves the mocked wall clock forward and fires wall-clock punctuations.
    pub fn advance_wall_clock_time(&self, ms: i64) -> Result<(), StreamsError> {
        let mut inner = self.inner.borrow_mut();
        inner.wall += ms;
        let now = inner.wall;
        for i in 0..inner.tasks.len() {
            inner.tasks[i].set_wall_time(now);
            inner.tasks[i].punctuate(PunctuationType::WallClockTime)?;
            inner.collect(i)?;
        }
        Ok(())
    }

    fn find_store(&self, name: &str) -> Result<usize, StreamsError> {
        self.inner
            .borrow()
            .tasks
            .iter()
            .position(|t| t.store(name).is_some())
            .ok_or_else(|| StreamsError::Topology(format!("no store named `{name}`")))
    }

    /// A key-value store by name, to inspect.
    pub fn key_value_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<KeyValueStore<K, V>, StreamsError> {
        let i = self.find_store(name)?;
        let inner = self.inner.borrow();
        let task = &inner.tasks[i];
        let (store, spec) = task
            .shared
            .stores
            .get(name)
            .cloned()
            .ok_or_else(|| StreamsError::Topology(name.into()))?;
        if spec.kind != StoreKind::KeyValue {
            return Err(StreamsError::Topology(format!(
                "store `{name}` is not a key-value store"
            )));
        }
        KeyValueStore::new(name, store, &spec, task.shared.record_time.clone())
    }

    /// A window store by name, to inspect.
    pub fn window_store<K: 'static, V: 'static>(
        &self,
        name: &str,
    ) -> Result<WindowStoreHandle<K, V>, StreamsError> {
        let i = self.find_store(name)?;
        let inner = self.inner.borrow();
        let task = &inner.tasks[i];
        let (store, spec) = task
            .shared
            .stores
            .get(name)
            .cloned()
            .ok_or_else(|| StreamsError::Topology(name.into()))?;
        if !matches!(spec.kind, StoreKind::Window { .. }) {
            return Err(StreamsError::Topology(format!(
                "store `{name}` is not a window store"
            )));
        }
        WindowStoreHandle::new(name, store, &spec, task.shared.record_time.clone())
    }

    /// Counters (e.g. `dropped-records-total`).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// How many changelog records the stores have written.
    pub fn changelog_records(&self) -> u64 {
        self.inner.borrow().changelog_records
    }

    /// Names of all topics that received output (including internal ones).
    pub fn produced_topics(&self) -> Vec<String> {
        let mut t: Vec<String> = self.inner.borrow().outputs.keys().cloned().collect();
        t.sort();
        t
    }
}

impl Drop for TopologyTestDriver {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            for t in &mut inner.tasks {
                t.close();
            }
            inner.tasks.clear();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Inner {
    fn pipe(
        &mut self,
        topic: &str,
        key: Option<Vec<u8>>,
        value: Option<Vec<u8>>,
        ts: i64,
        headers: Headers,
    ) -> Result<(), StreamsError> {
        let i = *self
            .readers
            .get(topic)
            .ok_or_else(|| StreamsError::Topology(format!("no source reads topic `{topic}`")))?;
        let off = self.offsets.entry(topic.to_string()).or_insert(0);
        let offset = *off;
        *off += 1;
        self.tasks[i].process(InputRecord {
            topic,
            partition: 0,
            offset,
            key: key.as_deref(),
            value: value.as_deref(),
            timestamp: ts,
            headers,
        })?;
        if self.commit_each_record {
            self.tasks[i].flush()?;
        }
        self.collect(i)
    }

    /// Routes a task's outputs: repartition topics back in, changelogs counted, the rest kept.
    fn collect(&mut self, i: usize) -> Result<(), StreamsError> {
        let mut out = Vec::new();
        self.tasks[i].drain_outputs(&mut out);
        for r in out {
            if r.topic.ends_with("-changelog") && r.topic.starts_with(&self.app_id) {
                self.changelog_records += 1;
                continue;
            }
            if self.readers.contains_key(&*r.topic) {
                self.pipe(
                    &r.topic.clone(),
                    r.key.clone(),
                    r.value.clone(),
                    r.timestamp,
                    r.headers.clone(),
                )?;
            }
            self.outputs
                .entry(r.topic.to_string())
                .or_default()
                .push_back(r);
        }
        Ok(())
    }
}

/// Feeds records into one topic of a [`TopologyTestDriver`].
pub struct TestInputTopic<K, V> {
    inner: Rc<RefCell<Inner>>,
    topic: String,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
    next_ts: i64,
    advance: i64,
}

impl<K: 'static, V: 'static> TestInputTopic<K, V> {
    /// Records piped without a timestamp get `start`, then `start + advance`, …
    pub fn with_auto_advance(mut self, start: i64, advance: i64) -> Self {
        self.next_ts = start;
        self.advance = advance;
        self
    }

    /// Pipes a record with an explicit timestamp.
    pub fn pipe_at(&mut self, key: K, value: V, timestamp: i64) -> Result<(), StreamsError> {
        self.pipe_record(Record::new(key, value, timestamp))
    }

    /// Pipes a record with the next automatic timestamp.
    pub fn pipe(&mut self, key: K, value: V) -> Result<(), StreamsError> {
        let ts = self.next_ts;
        self.next_ts += self.advance;
        self.pipe_at(key, value, ts)
    }

    /// Pipes a record with headers.
    pub fn pipe_record(&mut self, r: Record<K, V>) -> Result<(), StreamsError> {
        let err = |e| StreamsError::Serde {
            topic: self.topic.clone(),
            source: e,
        };
        let k = self.keys.serialize(&r.key).map_err(err)?;
        let v = self.values.serialize(&r.value).map_err(err)?;
        self.inner
            .borrow_mut()
            .pipe(&self.topic, k, v, r.timestamp, r.headers)
    }

    /// Pipes raw bytes (e.g. to test bad input).
    pub fn pipe_raw(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        timestamp: i64,
    ) -> Result<(), StreamsError> {
        self.inner.borrow_mut().pipe(
            &self.topic,
            key.map(|k| k.to_vec()),
            value.map(|v| v.to_vec()),
            timestamp,
            Headers::new(),
        )
    }
}

/// Reads what a [`TopologyTestDriver`] wrote to one topic.
pub struct TestOutputTopic<K, V> {
    inner: Rc<RefCell<Inner>>,
    topic: String,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
}

impl<K: 'static, V: 'static> TestOutputTopic<K, V> {
    /// The next record, decoded; `None` when the topic is drained.
    pub fn read_record(&self) -> Result<Option<Record<K, V>>, StreamsError> {
        let r = self
            .inner
            .borrow_mut()
            .outputs
            .get_mut(&self.topic)
            .and_then(|q| q.pop_front());
        let Some(r) = r else { return Ok(None) };
        let err = |e| StreamsError::Serde {
            topic: self.topic.clone(),
            source: e,
        };
        Ok(Some(Record {
            key: self.keys.deserialize(r.key.as_deref()).map_err(err)?,
            value: self.values.deserialize(r.value.as_deref()).map_err(err)?,
            timestamp: r.timestamp,
            headers: r.headers,
        }))
    }

    /// The next key and value.
    pub fn read_key_value(&self) -> Result<Option<(K, V)>, StreamsError> {
        Ok(self.read_record()?.map(|r| (r.key, r.value)))
    }

    /// Every remaining key and value, in order.
    pub fn read_key_values(&self) -> Result<Vec<(K, V)>, StreamsError> {
        let mut out = Vec::new();
        while let Some(kv) = self.read_key_value()? {
            out.push(kv);
        }
        Ok(out)
    }

    /// Every remaining value, in order.
    pub fn read_values(&self) -> Result<Vec<V>, StreamsError> {
        Ok(self
            .read_key_values()?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// Every remaining record collapsed to the last value per key.
    pub fn read_key_values_to_map(&self) -> Result<BTreeMap<K, V>, StreamsError>
    where
        K: Ord,
    {
        Ok(self.read_key_values()?.into_iter().collect())
    }

    /// Records waiting to be read.
    pub fn queue_size(&self) -> usize {
        self.inner
            .borrow()
            .outputs
            .get(&self.topic)
            .map_or(0, |q| q.len())
    }

    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue_size() == 0
    }
}
