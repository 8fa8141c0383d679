//! `KTable`: a changelog stream read as the latest value per key.

use crate::fns::{KeyValueMapper, Pred, ValueMapper};
use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::graph::Graph;
use super::grouped::KGroupedTable;
use super::kstream::KStream;
use super::options::{Grouped, Materialized, Produced};
use crate::ops::suppress::Suppress;
use crate::ops::table::{TableFilter, TableGroupBy, TableMapValues, TableToStream};
use crate::processor::Node;
use crate::record::Data;
use crate::serde::{DefaultSerde, SerdeRef};
use crate::state::StoreKind;
use crate::topology::NodeFactory;
use crate::window::Windowed;

/// Where a materialised table keeps its values.
pub(crate) type TableStore<K, V> = (String, SerdeRef<K>, SerdeRef<V>);

/// A table of the latest `V` per `K`; updates flow downstream as changes.
pub struct KTable<K, V> {
    pub(crate) g: Rc<RefCell<Graph>>,
    pub(crate) node: usize,
    pub(crate) store: Option<TableStore<K, V>>,
    /// For windowed tables: how long after a window's end it is final.
    pub(crate) close_wait: Option<i64>,
    _t: PhantomData<fn(K, V)>,
}

impl<K, V> Clone for KTable<K, V> {
    fn clone(&self) -> Self {
        KTable {
            g: self.g.clone(),
            node: self.node,
            store: self.store.clone(),
            close_wait: self.close_wait,
            _t: PhantomData,
        }
    }
}

/// How a windowed table's results are held back.
pub enum Suppressed {
    /// Emit each window's result once, when stream time passes its end plus grace.
    UntilWindowCloses,
}

impl<K: Data, V: Data> KTable<K, V> {
    pub(crate) fn new(g: Rc<RefCell<Graph>>, node: usize, store: Option<TableStore<K, V>>) -> Self {
        KTable {
            g,
            node,
            store,
            close_wait: None,
            _t: PhantomData,
        }
    }

    fn then<K2: Data, V2: Data>(
        &self,
        prefix: &str,
        stores: Vec<String>,
        factory: NodeFactory,
    ) -> KTable<K2, V2> {
        let mut g = self.g.borrow_mut();
        let name = g.name(prefix);
        let node = g.processor(name, &[self.node], stores, factory);
        drop(g);
        KTable::new(self.g.clone(), node, None)
    }

    /// The name of the store holding this table, if it is materialised.
    pub fn store_name(&self) -> Option<&str> {
        self.store.as_ref().map(|s| s.0.as_str())
    }

    /// Keeps rows matching the predicate (others read as deleted).
    pub fn filter(&self, pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static) -> KTable<K, V> {
        let pred: Pred<K, V> = Arc::new(pred);
        self.then(
            "KTABLE-FILTER",
            vec![],
            Arc::new(move |_| {
                Box::new(TableFilter {
                    pred: pred.clone(),
                    negate: false,
                }) as Box<dyn Node>
            }),
        )
    }

    /// Drops rows matching the predicate.
    pub fn filter_not(
        &self,
        pred: impl Fn(&K, &V) -> bool + Send + Sync + 'static,
    ) -> KTable<K, V> {
        let pred: Pred<K, V> = Arc::new(pred);
        self.then(
            "KTABLE-FILTER",
            vec![],
            Arc::new(move |_| {
                Box::new(TableFilter {
                    pred: pred.clone(),
                    negate: true,
                }) as Box<dyn Node>
            }),
        )
    }

    /// Transforms each row's value.
    pub fn map_values<V2: Data>(
        &self,
        f: impl Fn(V) -> V2 + Send + Sync + 'static,
    ) -> KTable<K, V2> {
        let f: ValueMapper<K, V, V2> = Arc::new(move |_, v| f(v));
        self.then(
            "KTABLE-MAPVALUES",
            vec![],
            Arc::new(move |_| Box::new(TableMapValues { f: f.clone() }) as Box<dyn Node>),
        )
    }

    /// The table's updates as a stream; a deletion is a `None` value (a tombstone when written out).
    pub fn to_stream(&self) -> KStream<K, Option<V>> {
        let mut g = self.g.borrow_mut();
        let name = g.name("KTABLE-TOSTREAM");
        let node = g.processor(
            name,
            &[self.node],
            vec![],
            Arc::new(|_| Box::new(TableToStream::<K, V>(PhantomData)) as Box<dyn Node>),
        );
        drop(g);
        KStream::new(self.g.clone(), node, false)
    }

    /// Writes the table's updates to a topic (deletions as tombstones).
    pub fn to(&self, topic: &str)
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.to_stream().to_with(
            topic,
            Produced::with(K::default_serde(), <Option<V>>::default_serde()),
        )
    }

    /// Re-keys rows for a new aggregation (always repartitions).
    pub fn group_by<K2: Data + PartialEq + DefaultSerde, V2: Data + DefaultSerde>(
        &self,
        f: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
    ) -> KGroupedTable<K2, V2> {
        self.group_by_with(f, Grouped::default())
    }

    /// Re-keys rows with explicit serdes and name.
    pub fn group_by_with<K2: Data + PartialEq, V2: Data>(
        &self,
        f: impl Fn(&K, &V) -> (K2, V2) + Send + Sync + 'static,
        grouped: Grouped<K2, V2>,
    ) -> KGroupedTable<K2, V2> {
        let f: KeyValueMapper<K, V, K2, V2> = Arc::new(f);
        let keys = grouped.keys.clone();
        let t: KTable<K2, V2> = self.then(
            "KTABLE-SELECT",
            vec![],
            Arc::new(move |_| {
                Box::new(TableGroupBy {
                    f: f.clone(),
                    keys: keys.clone(),
                }) as Box<dyn Node>
            }),
        );
        KGroupedTable {
            node: t.node,
            table: t,
            grouped,
        }
    }

    /// This table in a store (materialising it with `mat` when it is not yet).
    pub(crate) fn materialized_with(&self, mat: Materialized<K, V>) -> KTable<K, V> {
        if self.store.is_some() {
            return self.clone();
        }
        let mut g = self.g.borrow_mut();
        let store = mat
            .name
            .clone()
            .unwrap_or_else(|| g.name("KTABLE-STATE-STORE"));
        g.dsl_store(
            store.clone(),
            StoreKind::KeyValue,
            mat.keys.clone(),
            mat.values.clone(),
            !mat.in_memory,
            mat.logging,
            false,
        );
        let node = g.table_source(
            self.node,
            &store,
            mat.keys.clone(),
            mat.values.clone(),
            false,
            false,
        );
        drop(g);
        let mut t = KTable::new(self.g.clone(), node, Some((store, mat.keys, mat.values)));
        t.close_wait = self.close_wait;
        t
    }

    /// Materialises the table into a named, queryable store (a no-op if it already is).
    pub fn materialize(&self, mat: Materialized<K, V>) -> KTable<K, V> {
        self.materialized_with(mat)
    }
}

impl<K: Data, V: Data> KTable<Windowed<K>, V> {
    /// Holds back window results until the window closes (`Suppressed::UntilWindowCloses`).
    pub fn suppress(&self, _how: Suppressed) -> KTable<Windowed<K>, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.suppress_with(K::default_serde(), V::default_serde())
    }

    /// `suppress` with explicit serdes for the buffer.
    pub fn suppress_with(&self, keys: SerdeRef<K>, values: SerdeRef<V>) -> KTable<Windowed<K>, V> {
        let mut g = self.g.borrow_mut();
        let Some(wait) = self.close_wait else {
            g.fail("suppress(until window closes) needs a windowed aggregation upstream".into());
            drop(g);
            return self.clone();
        };
        let name = g.name("KTABLE-SUPPRESS");
        let store = format!("{name}-STATE-STORE");
        g.dsl_store(
            store.clone(),
            StoreKind::KeyValue,
            keys.clone(),
            values.clone(),
            false,
            true,
            false,
        );
        let sn = store.clone();
        let node = g.processor(
            name,
            &[self.node],
            vec![store],
            Arc::new(move |_| {
                Box::new(Suppress::<K, V> {
                    store_name: sn.clone(),
                    keys: keys.clone(),
                    values: values.clone(),
                    wait,
                    store: None,
                    index: Default::default(),
                    observed: i64::MIN,
                }) as Box<dyn Node>
            }),
        );
        drop(g);
        KTable::new(self.g.clone(), node, None)
    }
}
