//! `KStream`: an unbounded sequence of records and its stateless operators.

use crate::fns::Pred;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::graph::Graph;
use super::grouped::KGroupedStream;
use super::options::{Grouped, Produced, Repartitioned};
use crate::processor::{fn_node, Ctx, Node, Processor, ProcessorNode};
use crate::record::{Data, DynRecord, Record};
use crate::serde::DefaultSerde;
use crate::topology::{NodeFactory, TopicRef};

/// A stream of `(K, V)` records.
pub struct KStream<K, V> {
    pub(crate) g: Rc<RefCell<Graph>>,
    pub(crate) node: usize,
    /// The key changed since the last partitioning: grouping or joining
    /// first writes to a repartition topic.
    pub(crate) needs_repartition: bool,
    _t: PhantomData<fn(K, V)>,
}

impl<K, V> Clone for KStream<K, V> {
    fn clone(&self) -> Self {
        KStream {
            g: self.g.clone(),
            node: self.node,
            needs_repartition: self.needs_repartition,
            _t: PhantomData,
        }
    }
}

impl<K: Data, V: Data> KStream<K, V> {
    pub(crate) fn new(g: Rc<RefCell<Graph>>, node: usize, needs_repartition: bool) -> Self {
        KStream {
            g,
            node,
            needs_repartition,
            _t: PhantomData,
        }
    }

    pub(crate) fn then<K2: Data, V2: Data>(
        &self,
        prefix: &str,
        repartition: bool,
        factory: NodeFactory,
    ) -> KStream<K2, V2> {
        let mut g = self.g.borrow_mut();
        let name = g.name(prefix);
        let node = g.processor(name, &[self.node], vec![], factory);
        drop(g);
        KStream::new(self.g.clone(), node, self.needs_repartition || repartition)
    }

    /// Keeps records matching the predicate.
    pub fn filter(&self, pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KStream<K, V> {
        let pred = Arc::new(pred);
        self.then(
            "KSTREAM-FILTER",
            false,
            Arc::new(move |_| {
                let p = pred.clone();
                fn_node(move |ctx: &mut Ctx<'_>, r: Record<K, V>| {
                    if p(&r.key, &r.value) {
                        ctx.forward_typed(r)
                    }
                })
            }),
        )
    }

    /// Drops records matching the predicate.
    pub fn filter_not(
        &self,
        pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KStream<K, V> {
        self.filter(move |k, v| !pred(k, v))
    }

    /// Transforms key and value (marks the stream for repartitioning).
    pub fn map<K2: Data, V2: Data>(
        &self,
        f: impl Fn(K, V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KStream<K2, V2> {
        let f = Arc::new(f);
        self.then(
            "KSTREAM-MAP",
            true,
            Arc::new(move |_| {
                let f = f.clone();
                fn_node(move |ctx: &mut Ctx<'_>, r: Record<K, V>| {
                    let (k, v) = f(r.key, r.value);
                    ctx.forward(DynRecord {
                        key: Box::new(k),
                        value: Box::new(v),
                        timestamp: r.timestamp,
                        headers: r.headers,
                    })
                })
            }),
        )
    }

    /// Transforms the value; the key and partitioning stay.
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        self.map_values_with_key(move |_, v| f(v))
    }

    /// Transforms the value, seeing the key.
    pub fn map_values_with_key<V2: Data>(
        &self,
        f: impl Fn(&K, V) -> V2 + Send + Sync + 'static,
    ) -> KStream<K, V2> {
        let f = Arc::new(f);
        self.then(
            "KSTREAM-MAPVALUES",
            false,
            Arc::new(move |_| {
                let f = f.clone();
                fn_node(move |ctx: &mut Ctx<'_>, r: Record<K, V>| {
                    let v = f(&r.key, r.value);
                    ctx.forward(DynRecord {
                        key: Box::new(r.key),
                        value: Box::new(v),
                        timestamp: r.timestamp,
                        headers: r.headers,
                    })
                })
            }),
        )
    }

    /// Zero or more records per record (marks the stream for repartitioning).
    pub fn flat_map<K2: Data, V2: Data, I>(
        &self,
        f: impl Fn(K, V) -> I + Send + Sync + 'static,
    ) -> KStream<K2, V2>
    where
        I: IntoIterator<Item = (K2, V2)>,
    {
        let f = Arc::new(f);
        self.then(
            "KSTREAM-FLATMAP",
            true,
            Arc::new(move |_| {
                let f = f.clone();
                fn_node(move |ctx: &mut Ctx<'_>, r: Record<K, V>| {
                    for (k, v) in f(r.key, r.value) {
                        ctx.forward(DynRecord {
                            key: Box::new(k),
                            value: Box::new(v),
                            timestamp: r.timestamp,
                            headers: r.headers.clone(),
                        })
                    }
                })
            }),
        )
    }

    /// Zero or more values per record, keeping the key.
    pub fn flat_map_values<V2: Data, I>(
        &self,
        f: impl Fn(V) -> I + Send + Sync + 'static,
    ) -> KStream<K, V2>
    where
        I: IntoIterator<Item = V2>,
    {
        let f = Arc::new(f);
        self.then(
            "KSTREAM-FLATMAPVALUES",
            false,
            Arc::new(move |_| {
                let f = f.clone();
                fn_node(move |ctx: &mut Ctx<'_>, r: Record<K, V>| {
                    for v in f(r.value) {
                        ctx.forward(DynRecord {
                            key: Box::new(r.key.clone()),
                            value: Box::new(v),
                            timestamp: r.timestamp,
                            headers: r.headers.clone(),
                        })
                    }
                })
            }),
        )
    }

    /// Sets a new key computed from key and value (marks the stream for repartitioning).
    pub fn select_key<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KStream<K2, V> {
        let f = Arc::new(f);
        self.then(
            "KSTREAM-KEY-SELECT",
            true,
            Arc::new(move |_| {
                let f = f.clone();
                fn_node(move |ctx: &mut Ctx<'_>, r: Record<K, V>| {
                    let k = f(&r.key, &r.value);
                    ctx.forward(DynRecord {
                        key: Box::new(k),
                        value: Box::new(r.value),
                        timestamp: r.timestamp,
                        headers: r.headers,
                    })
                })
            }),
        )
    }

    /// Calls `f` on each record and passes it on unchanged.
    pub fn peek(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) -> KStream<K, V> {
        let f = Arc::new(f);
        self.then(
            "KSTREAM-PEEK",
            false,
            Arc::new(move |_| {
                let f = f.clone();
                fn_node(move |ctx: &mut Ctx<'_>, r: Record<K, V>| {
                    f(&r.key, &r.value);
                    ctx.forward_typed(r)
                })
            }),
        )
    }

    /// Calls `f` on each record (a terminal operation).
    pub fn foreach(&self, f: impl Fn(&K, &V) + Send + Sync + 'static) {
        let f = Arc::new(f);
        let _: KStream<K, V> = self.then(
            "KSTREAM-FOREACH",
            false,
            Arc::new(move |_| {
                let f = f.clone();
                fn_node(move |_: &mut Ctx<'_>, r: Record<K, V>| f(&r.key, &r.value))
            }),
        );
    }

    /// Starts splitting the stream into branches; each record goes to the
    /// first branch whose predicate matches.
    pub fn split(&self, prefix: &str) -> BranchedKStream<K, V> {
        BranchedKStream {
            stream: self.clone(),
            prefix: prefix.to_string(),
            preds: Vec::new(),
            names: Vec::new(),
            node: None,
        }
    }

    /// Interleaves this stream with another of the same types.
    pub fn merge(&self, other: &KStream<K, V>) -> KStream<K, V> {
        let mut g = self.g.borrow_mut();
        let name = g.name("KSTREAM-MERGE");
        let node = g.processor(
            name,
            &[self.node, other.node],
            vec![],
            Arc::new(|_| fn_node(|ctx: &mut Ctx<'_>, r: Record<K, V>| ctx.forward_typed(r))),
        );
        drop(g);
        KStream::new(
            self.g.clone(),
            node,
            self.needs_repartition || other.needs_repartition,
        )
    }

    /// Writes the stream to a topic with default serdes.
    pub fn to(&self, topic: &str)
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.to_with(topic, Produced::default())
    }

    /// Writes the stream to a topic.
    pub fn to_with(&self, topic: &str, produced: Produced<K, V>) {
        let mut g = self.g.borrow_mut();
        let name = produced.name.unwrap_or_else(|| g.name("KSTREAM-SINK"));
        g.sink(
            name,
            self.node,
            TopicRef::User(topic.to_string()),
            produced.keys,
            produced.values,
            false,
        );
    }

    /// Repartitions by the current key through an internal topic.
    pub fn repartition(&self) -> KStream<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.repartition_with(Repartitioned::default())
    }

    /// Repartitions through `<application.id>-<name>-repartition`.
    pub fn repartition_with(&self, opts: Repartitioned<K, V>) -> KStream<K, V> {
        let mut g = self.g.borrow_mut();
        let name = opts.name.unwrap_or_else(|| g.name("KSTREAM-REPARTITION"));
        let node = g.repartition(self.node, &name, opts.keys, opts.values);
        if let Some(n) = opts.partitions {
            if n <= 0 {
                g.fail(format!(
                    "repartition `{name}`: the number of partitions must be positive, not {n}"
                ));
            }
            g.repartition_partitions
                .insert(format!("{name}-repartition"), n);
        }
        drop(g);
        KStream::new(self.g.clone(), node, false)
    }

    /// Groups by the current key, with default serdes.
    pub fn group_by_key(&self) -> KGroupedStream<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.group_by_key_with(Grouped::default())
    }

    /// Groups by the current key.
    pub fn group_by_key_with(&self, grouped: Grouped<K, V>) -> KGroupedStream<K, V> {
        KGroupedStream::new(self.clone(), grouped)
    }

    /// Groups by a new key (always repartitions), with default serdes.
    pub fn group_by<K2: Data + DefaultSerde>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
    ) -> KGroupedStream<K2, V>
    where
        V: DefaultSerde,
    {
        self.group_by_with(f, Grouped::default())
    }

    /// Groups by a new key (always repartitions).
    pub fn group_by_with<K2: Data>(
        &self,
        f: impl Fn(&K, &V) -> K2 + Send + Sync + 'static,
        grouped: Grouped<K2, V>,
    ) -> KGroupedStream<K2, V> {
        self.select_key(f).group_by_key_with(grouped)
    }

    /// Runs a custom processor connected to the named stores.
    pub fn process<K2: Data, V2: Data, P>(
        &self,
        name: &str,
        supplier: impl Fn() -> P + Send + Sync + 'static,
        stores: &[&str],
    ) -> KStream<K2, V2>
    where
        P: Processor<K, V, K2, V2>,
    {
        let supplier = Arc::new(supplier);
        let mut g = self.g.borrow_mut();
        for s in stores {
            if !g.stores.contains_key(*s) {
                g.fail(format!("processor `{name}` uses store `{s}`, which was never added with add_state_store"));
            }
        }
        let node = g.processor(
            name.to_string(),
            &[self.node],
            stores.iter().map(|s| s.to_string()).collect(),
            Arc::new(move |_| {
                Box::new(ProcessorNode {
                    inner: supplier(),
                    _t: PhantomData::<fn(K, V, K2, V2)>,
                }) as Box<dyn Node>
            }),
        );
        drop(g);
        // A custom processor may change keys; be conservative like Kafka.
        KStream::new(self.g.clone(), node, true)
    }
}

/// Branches of a [`KStream::split`].
pub struct BranchedKStream<K, V> {
    stream: KStream<K, V>,
    prefix: String,
    preds: Vec<Pred<K, V>>,
    names: Vec<String>,
    node: Option<usize>,
}

impl<K: Data, V: Data> BranchedKStream<K, V> {
    /// Adds a branch named `<prefix><name>` for records matching `pred`.
    pub fn branch(
        mut self,
        name: &str,
        pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.preds.push(Arc::new(pred));
        self.names.push(name.to_string());
        self
    }

    /// Adds a branch for records no other branch took, and finishes.
    pub fn default_branch(self, name: &str) -> BTreeMap<String, KStream<K, V>> {
        self.branch(name, |_, _| true).no_default_branch()
    }

    /// Finishes; records no branch took are dropped.
    pub fn no_default_branch(mut self) -> BTreeMap<String, KStream<K, V>> {
        let preds = Arc::new(std::mem::take(&mut self.preds));
        let mut g = self.stream.g.borrow_mut();
        let name = g.name("KSTREAM-BRANCH");
        let p = preds.clone();
        let split = g.processor(
            name,
            &[self.stream.node],
            vec![],
            Arc::new(move |_| {
                let p = p.clone();
                fn_node(move |ctx: &mut Ctx<'_>, r: Record<K, V>| {
                    if let Some(i) = p.iter().position(|f| f(&r.key, &r.value)) {
                        ctx.forward_to_index(i, DynRecord::erase(r));
                    }
                })
            }),
        );
        self.node = Some(split);
        let mut out = BTreeMap::new();
        for n in &self.names {
            let full = format!("{}{}", self.prefix, n);
            let node = g.processor(
                full.clone(),
                &[split],
                vec![],
                Arc::new(|_| fn_node(|ctx: &mut Ctx<'_>, r: Record<K, V>| ctx.forward_typed(r))),
            );
            out.insert(
                full,
                KStream::new(self.stream.g.clone(), node, self.stream.needs_repartition),
            );
        }
        out
    }
}
