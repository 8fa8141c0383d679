//! The graph under construction: node naming, sources, sinks, repartitions, stores.

use crate::fns::TsExtractor;
use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;
use std::sync::Arc;

use super::options::Materialized;
use crate::error::{SerdeError, StreamsError};
use crate::ops::aggregate::TableSource;
use crate::ops::emit::Emitter;
use crate::processor::{Ctx, Node, OutRecord};
use crate::record::{peek, DynRecord, Val};
use crate::serde::SerdeRef;
use crate::state::{StoreKind, StoreSpec};
use crate::topology::{DeserFn, NodeDef, NodeFactory, NodeKind, TopicRef, Topology, TsFn};

#[derive(Default)]
pub(crate) struct Graph {
    pub nodes: Vec<NodeDef>,
    pub stores: BTreeMap<String, Arc<StoreSpec>>,
    pub repartition_topics: BTreeSet<String>,
    /// Explicit partition counts of repartition topics, by topic name.
    pub repartition_partitions: BTreeMap<String, i32>,
    /// Join inputs (nodes) whose source topics must be co-partitioned.
    pub copartition: Vec<Vec<usize>>,
    counter: usize,
    /// First problem found while building; reported by `build()`.
    pub error: Option<String>,
}

impl Graph {
    /// Kafka-style generated name: `KSTREAM-MAP-0000000003`.
    pub fn name(&mut self, prefix: &str) -> String {
        let n = format!("{prefix}-{:010}", self.counter);
        self.counter += 1;
        n
    }

    pub fn add(
        &mut self,
        name: String,
        kind: NodeKind,
        factory: NodeFactory,
        parents: &[usize],
        stores: Vec<String>,
    ) -> usize {
        let id = self.nodes.len();
        if self.nodes.iter().any(|n| n.name == name) {
            self.fail(format!("two nodes are named `{name}`"));
        }
        self.nodes.push(NodeDef {
            name,
            kind,
            factory,
            children: Vec::new(),
            parents: parents.to_vec(),
            stores,
        });
        for &p in parents {
            self.nodes[p].children.push(id);
        }
        id
    }

    pub fn processor(
        &mut self,
        name: String,
        parents: &[usize],
        stores: Vec<String>,
        factory: NodeFactory,
    ) -> usize {
        self.add(name, NodeKind::Processor, factory, parents, stores)
    }

    pub fn fail(&mut self, msg: String) {
        if self.error.is_none() {
            self.error = Some(msg);
        }
    }

    pub fn add_store(&mut self, spec: StoreSpec) -> String {
        let name = spec.name.clone();
        if self.stores.contains_key(&name) {
            self.fail(format!("two stores are named `{name}`"));
        }
        self.stores.insert(name.clone(), Arc::new(spec));
        name
    }

    /// Declares a store for a DSL operator.
    #[allow(clippy::too_many_arguments)]
    pub fn dsl_store<K: 'static, V: 'static>(
        &mut self,
        name: String,
        kind: StoreKind,
        keys: SerdeRef<K>,
        values: SerdeRef<V>,
        persistent: bool,
        logged: bool,
        cached: bool,
    ) -> String {
        self.add_store(StoreSpec {
            name,
            kind,
            logged,
            persistent,
            cached,
            serdes: Arc::new((keys, values)),
        })
    }

    /// Declares the key-value store a `Materialized` describes.
    pub fn materialized_store<K: 'static, V: 'static>(
        &mut self,
        name: String,
        mat: &Materialized<K, V>,
    ) -> String {
        self.dsl_store(
            name,
            StoreKind::KeyValue,
            mat.keys.clone(),
            mat.values.clone(),
            !mat.in_memory,
            mat.logging,
            mat.caching,
        )
    }

    /// A node writing table updates into `store` and forwarding them as changes; its input is
    /// a topic's `(Option<K>, Option<V>)` or, with `from_topic` false, a table's changes.
    pub fn table_source<K: crate::record::Data, V: crate::record::Data>(
        &mut self,
        parent: usize,
        store: &str,
        keys: SerdeRef<K>,
        values: SerdeRef<V>,
        cached: bool,
        from_topic: bool,
    ) -> usize {
        let name = self.name("KTABLE-MATERIALIZE");
        let sn = store.to_string();
        self.processor(
            name,
            &[parent],
            vec![sn.clone()],
            Arc::new(move |_| {
                Box::new(TableSource::<K, V> {
                    store_name: sn.clone(),
                    keys: keys.clone(),
                    values: values.clone(),
                    cached,
                    store: None,
                    emitter: Emitter::new(0),
                    from_topic,
                }) as Box<dyn Node>
            }),
        )
    }

    pub fn source<K: crate::record::Data, V: crate::record::Data>(
        &mut self,
        name: String,
        topics: Vec<TopicRef>,
        keys: SerdeRef<K>,
        values: SerdeRef<V>,
        timestamps: Option<TsExtractor<K, V>>,
    ) -> usize {
        for t in &topics {
            let taken = self.nodes.iter().any(|n| match &n.kind {
                NodeKind::Source { topics: ts, .. } => ts.contains(t),
                _ => false,
            });
            if taken {
                self.fail(format!(
                    "topic {t:?} is read by two sources; read it once and reuse the stream"
                ));
            }
        }
        let deser: DeserFn = Arc::new(move |k: Option<&[u8]>, v: Option<&[u8]>| {
            let key = keys.deserialize(k).map_err(|e| tag("key", e))?;
            let value = values.deserialize(v).map_err(|e| tag("value", e))?;
            Ok((Box::new(key) as Val, Box::new(value) as Val))
        });
        let ts: Option<TsFn> = timestamps.map(|f| {
            Arc::new(move |k: &Val, v: &Val, t: i64| f(peek::<K>(k), peek::<V>(v), t)) as TsFn
        });
        self.add(
            name,
            NodeKind::Source {
                topics,
                deser,
                timestamps: ts,
            },
            Arc::new(|_| Box::new(SourceNode) as Box<dyn Node>),
            &[],
            vec![],
        )
    }

    /// A node writing records to `topic`; with `drop_null_keys` (repartition topics), records
    /// whose key is null are dropped and counted instead.
    pub fn sink<K: 'static, V: 'static>(
        &mut self,
        name: String,
        parent: usize,
        topic: TopicRef,
        keys: SerdeRef<K>,
        values: SerdeRef<V>,
        drop_null_keys: bool,
    ) -> usize {
        let t = topic.clone();
        let factory: NodeFactory = Arc::new(move |app: &str| {
            Box::new(SinkNode::<K, V> {
                topic: Arc::from(t.resolve(app)),
                keys: keys.clone(),
                values: values.clone(),
                drop_null_keys,
                _t: PhantomData,
            }) as Box<dyn Node>
        });
        self.add(name, NodeKind::Sink { topic }, factory, &[parent], vec![])
    }

    /// Declares that the source topics feeding `inputs` (a join's inputs) must be co-partitioned.
    pub fn copartition(&mut self, inputs: &[usize]) {
        self.copartition.push(inputs.to_vec());
    }

    /// Writes the stream to `<name>-repartition` and reads it back in a new
    /// sub-topology, so records are partitioned by their new key.
    pub fn repartition<K: crate::record::Data, V: crate::record::Data>(
        &mut self,
        parent: usize,
        name: &str,
        keys: SerdeRef<K>,
        values: SerdeRef<V>,
    ) -> usize {
        let topic_name = format!("{name}-repartition");
        if !self.repartition_topics.insert(topic_name.clone()) {
            self.fail(format!(
                "repartition topic `{topic_name}` is used twice; name the groupings differently"
            ));
        }
        let topic = TopicRef::Internal(topic_name);
        let sink = format!("{name}-repartition-sink");
        let src = format!("{name}-repartition-source");
        // Whatever reads a repartition topic (an aggregation or a join) drops null keys anyway:
        // as Kafka's repartition null-key filter, they are dropped (and counted) before the write.
        self.sink(
            sink,
            parent,
            topic.clone(),
            keys.clone(),
            values.clone(),
            true,
        );
        self.source(src, vec![topic], keys, values, None)
    }

    pub fn build(&mut self) -> Result<Topology, StreamsError> {
        if let Some(e) = self.error.take() {
            return Err(StreamsError::Topology(e));
        }
        if !self
            .nodes
            .iter()
            .any(|n| matches!(n.kind, NodeKind::Source { .. }))
        {
            return Err(StreamsError::Topology("the topology reads no topic".into()));
        }
        Ok(Topology::new(
            std::mem::take(&mut self.nodes),
            std::mem::take(&mut self.stores),
            std::mem::take(&mut self.repartition_topics),
            std::mem::take(&mut self.repartition_partitions),
            &std::mem::take(&mut self.copartition),
        ))
    }
}

fn tag(what: &str, e: SerdeError) -> SerdeError {
    match e {
        SerdeError::Decode { what: w, reason } => SerdeError::Decode {
            what: format!("{what} ({w})"),
            reason,
        },
        other => other,
    }
}

struct SourceNode;

impl Node for SourceNode {
    fn process(&mut self, ctx: &mut Ctx<'_>, rec: DynRecord) -> Result<(), StreamsError> {
        ctx.forward(rec);
        Ok(())
    }
}

struct SinkNode<K, V> {
    topic: Arc<str>,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
    /// Repartition sinks: a record whose key is null is dropped, not written.
    drop_null_keys: bool,
    _t: PhantomData<fn(K, V)>,
}

impl<K: 'static, V: 'static> Node for SinkNode<K, V> {
    fn process(&mut self, ctx: &mut Ctx<'_>, rec: DynRecord) -> Result<(), StreamsError> {
        let serde_err = |e| StreamsError::Serde {
            topic: self.topic.to_string(),
            source: e,
        };
        let key = self
            .keys
            .serialize(peek::<K>(&rec.key))
            .map_err(serde_err)?;
        if key.is_none() && self.drop_null_keys {
            crate::ops::drop_null_key(ctx);
            return Ok(());
        }
        let value = self
            .values
            .serialize(peek::<V>(&rec.value))
            .map_err(serde_err)?;
        ctx.shared.outputs.push(OutRecord {
            topic: self.topic.clone(),
            key,
            value,
            timestamp: rec.timestamp,
            headers: rec.headers,
            partition: None,
            changelog: false,
        });
        Ok(())
    }
}
