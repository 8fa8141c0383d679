//! Grouped streams and tables: the step before an aggregation.

use std::sync::Arc;

use super::kstream::KStream;
use super::ktable::KTable;
use super::options::{Grouped, Materialized};
use super::windowed::{SessionWindowedKStream, SlidingWindowedKStream, TimeWindowedKStream};
use crate::ops::aggregate::{Fold, StreamAggregate, TableAggregate};
use crate::ops::emit::Emitter;
use crate::processor::Node;
use crate::record::Data;
use crate::serde::{DefaultSerde, IntSerde, SerdeRef};
use crate::window::{SessionWindows, SlidingWindows, TimeWindows};

/// A stream grouped by key, ready to aggregate.
pub struct KGroupedStream<K, V> {
    pub(crate) stream: KStream<K, V>,
    pub(crate) grouped: Grouped<K, V>,
}

impl<K: Data, V: Data> KGroupedStream<K, V> {
    pub(crate) fn new(stream: KStream<K, V>, grouped: Grouped<K, V>) -> Self {
        KGroupedStream { stream, grouped }
    }

    /// The node feeding the aggregation: the stream itself, or a
    /// repartition topic named after the grouping or the store.
    pub(crate) fn input(&self, store_name: &str) -> usize {
        if !self.stream.needs_repartition {
            return self.stream.node;
        }
        let name = self
            .grouped
            .name
            .clone()
            .unwrap_or_else(|| store_name.to_string());
        self.stream.g.borrow_mut().repartition(
            self.stream.node,
            &name,
            self.grouped.keys.clone(),
            self.grouped.values.clone(),
        )
    }

    /// Counts records per key (value serde: 8-byte big-endian, like Kafka's Long).
    pub fn count(&self) -> KTable<K, i64>
    where
        K: DefaultSerde,
    {
        self.count_with(Materialized::with(K::default_serde(), Arc::new(IntSerde)))
    }

    /// Counts records per key into the given store.
    pub fn count_with(&self, mat: Materialized<K, i64>) -> KTable<K, i64> {
        self.aggregate_with(|| 0i64, |_, _, c| c + 1, mat)
    }

    /// Combines values per key; the first value of a key is its initial aggregate.
    pub fn reduce(&self, reducer: impl Fn(V, V) -> V + Send + Sync + 'static) -> KTable<K, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.reduce_with(reducer, Materialized::default())
    }

    /// `reduce` into the given store.
    pub fn reduce_with(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
        mat: Materialized<K, V>,
    ) -> KTable<K, V> {
        self.fold(Fold::Reduce(Arc::new(reducer)), mat)
    }

    /// Folds values per key into an aggregate starting from `init()`.
    pub fn aggregate<A: Data + DefaultSerde>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
    ) -> KTable<K, A>
    where
        K: DefaultSerde,
    {
        self.aggregate_with(init, add, Materialized::default())
    }

    /// `aggregate` into the given store.
    pub fn aggregate_with<A: Data>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        mat: Materialized<K, A>,
    ) -> KTable<K, A> {
        self.fold(
            Fold::Aggregate {
                init: Arc::new(init),
                add: Arc::new(add),
            },
            mat,
        )
    }

    fn fold<A: Data>(&self, fold: Fold<K, V, A>, mat: Materialized<K, A>) -> KTable<K, A> {
        let store = {
            let mut g = self.stream.g.borrow_mut();
            mat.name
                .clone()
                .unwrap_or_else(|| g.name("KSTREAM-AGGREGATE-STATE-STORE"))
        };
        let input = self.input(&store);
        let mut g = self.stream.g.borrow_mut();
        g.materialized_store(store.clone(), &mat);
        let name = g.name("KSTREAM-AGGREGATE");
        let (keys, values, cached, sn) = (
            mat.keys.clone(),
            mat.values.clone(),
            mat.caching,
            store.clone(),
        );
        let node = g.processor(
            name,
            &[input],
            vec![store.clone()],
            Arc::new(move |_| {
                Box::new(StreamAggregate::<K, V, A> {
                    store_name: sn.clone(),
                    keys: keys.clone(),
                    values: values.clone(),
                    fold: fold.clone(),
                    cached,
                    store: None,
                    emitter: Emitter::new(0),
                }) as Box<dyn Node>
            }),
        );
        drop(g);
        KTable::new(
            self.stream.g.clone(),
            node,
            Some((store, mat.keys, mat.values)),
        )
    }

    /// Aggregates per tumbling or hopping window.
    pub fn windowed_by(&self, windows: TimeWindows) -> TimeWindowedKStream<K, V> {
        TimeWindowedKStream {
            grouped: self.clone_inner(),
            windows,
        }
    }

    /// Aggregates per sliding window.
    pub fn windowed_by_sliding(&self, windows: SlidingWindows) -> SlidingWindowedKStream<K, V> {
        SlidingWindowedKStream {
            grouped: self.clone_inner(),
            windows,
        }
    }

    /// Aggregates per session.
    pub fn windowed_by_session(&self, windows: SessionWindows) -> SessionWindowedKStream<K, V> {
        SessionWindowedKStream {
            grouped: self.clone_inner(),
            windows,
        }
    }

    fn clone_inner(&self) -> KGroupedStream<K, V> {
        KGroupedStream {
            stream: self.stream.clone(),
            grouped: Grouped {
                keys: self.grouped.keys.clone(),
                values: self.grouped.values.clone(),
                name: self.grouped.name.clone(),
            },
        }
    }
}

/// A table re-grouped by a new key, ready to aggregate with adder and subtractor.
pub struct KGroupedTable<K, V> {
    pub(crate) table: KTable<K, V>,
    pub(crate) node: usize,
    pub(crate) grouped: Grouped<K, V>,
}

impl<K: Data, V: Data> KGroupedTable<K, V> {
    /// Counts rows per new key.
    pub fn count(&self) -> KTable<K, i64>
    where
        K: DefaultSerde,
    {
        self.count_with(Materialized::with(K::default_serde(), Arc::new(IntSerde)))
    }

    /// Counts rows per new key into the given store.
    pub fn count_with(&self, mat: Materialized<K, i64>) -> KTable<K, i64> {
        self.aggregate_with(|| 0i64, |_, _, c| c + 1, |_, _, c| c - 1, mat)
    }

    /// Aggregates with an initializer, an adder and a subtractor.
    pub fn aggregate<A: Data + DefaultSerde>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        subtract: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
    ) -> KTable<K, A>
    where
        K: DefaultSerde,
    {
        self.aggregate_with(init, add, subtract, Materialized::default())
    }

    /// `aggregate` into the given store.
    pub fn aggregate_with<A: Data>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        subtract: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        mat: Materialized<K, A>,
    ) -> KTable<K, A> {
        let g_rc = self.table.g.clone();
        let mut g = g_rc.borrow_mut();
        let store = mat
            .name
            .clone()
            .unwrap_or_else(|| g.name("KTABLE-AGGREGATE-STATE-STORE"));
        let topic = self.grouped.name.clone().unwrap_or_else(|| store.clone());
        let changes: SerdeRef<crate::record::Change<V>> =
            Arc::new(crate::serde::ChangeSerde(self.grouped.values.clone()));
        let input = g.repartition(self.node, &topic, self.grouped.keys.clone(), changes);
        g.materialized_store(store.clone(), &mat);
        let name = g.name("KTABLE-AGGREGATE");
        let (keys, values, cached, sn) = (
            mat.keys.clone(),
            mat.values.clone(),
            mat.caching,
            store.clone(),
        );
        let (init, add, subtract) = (Arc::new(init), Arc::new(add), Arc::new(subtract));
        let node = g.processor(
            name,
            &[input],
            vec![store.clone()],
            Arc::new(move |_| {
                Box::new(TableAggregate::<K, V, A> {
                    store_name: sn.clone(),
                    keys: keys.clone(),
                    values: values.clone(),
                    init: init.clone(),
                    add: add.clone(),
                    subtract: subtract.clone(),
                    cached,
                    store: None,
                    emitter: Emitter::new(0),
                }) as Box<dyn Node>
            }),
        );
        drop(g);
        KTable::new(g_rc, node, Some((store, mat.keys, mat.values)))
    }
}
