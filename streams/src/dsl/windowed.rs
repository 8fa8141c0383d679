//! Windowed grouped streams: time (tumbling/hopping), sliding and session windows.

use crate::fns::{Adder, Init, Merger};
use std::sync::Arc;

use super::grouped::KGroupedStream;
use super::ktable::KTable;
use super::options::Materialized;
use crate::ops::aggregate::Fold;
use crate::ops::emit::Emitter;
use crate::ops::session::SessionAggregate;
use crate::ops::sliding::SlidingAggregate;
use crate::ops::window::WindowAggregate;
use crate::processor::Node;
use crate::record::Data;
use crate::serde::{DefaultSerde, IntSerde, SerdeRef};
use crate::state::StoreKind;
use crate::topology::NodeFactory;
use crate::window::{SessionWindows, SlidingWindows, TimeWindows, Windowed};

/// Builds the store and processor of a windowed aggregation.
fn windowed<K: Data, V: Data, A: Data>(
    grouped: &KGroupedStream<K, V>,
    mat_name: Option<String>,
    kind: StoreKind,
    store_values: (SerdeRef<K>, SerdeRef<A>),
    mat: (bool, bool, bool),
    close_wait: i64,
    make: impl Fn(String) -> NodeFactory,
) -> KTable<Windowed<K>, A> {
    let (in_memory, logging, caching) = mat;
    let store = {
        let mut g = grouped.stream.g.borrow_mut();
        mat_name.unwrap_or_else(|| g.name("KSTREAM-AGGREGATE-STATE-STORE"))
    };
    let input = grouped.input(&store);
    let mut g = grouped.stream.g.borrow_mut();
    g.dsl_store(
        store.clone(),
        kind,
        store_values.0,
        store_values.1,
        !in_memory,
        logging,
        caching,
    );
    let name = g.name("KSTREAM-AGGREGATE");
    let node = g.processor(name, &[input], vec![store.clone()], make(store));
    drop(g);
    let mut t = KTable::new(grouped.stream.g.clone(), node, None);
    t.close_wait = Some(close_wait);
    t
}

/// A grouped stream windowed by tumbling or hopping windows.
pub struct TimeWindowedKStream<K, V> {
    pub(crate) grouped: KGroupedStream<K, V>,
    pub(crate) windows: TimeWindows,
}

impl<K: Data, V: Data> TimeWindowedKStream<K, V> {
    /// Counts records per key and window.
    pub fn count(&self) -> KTable<Windowed<K>, i64>
    where
        K: DefaultSerde,
    {
        self.aggregate_with(
            || 0i64,
            |_, _, c| c + 1,
            Materialized::with(K::default_serde(), Arc::new(IntSerde)),
        )
    }

    /// Combines values per key and window.
    pub fn reduce(
        &self,
        reducer: impl Fn(V, V) -> V + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, V>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.fold(Fold::Reduce(Arc::new(reducer)), Materialized::default())
    }

    /// Folds values per key and window, starting from `init()`.
    pub fn aggregate<A: Data + DefaultSerde>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, A>
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
    ) -> KTable<Windowed<K>, A> {
        self.fold(
            Fold::Aggregate {
                init: Arc::new(init),
                add: Arc::new(add),
            },
            mat,
        )
    }

    fn fold<A: Data>(
        &self,
        fold: Fold<K, V, A>,
        mat: Materialized<K, A>,
    ) -> KTable<Windowed<K>, A> {
        let w = self.windows;
        let retention = mat.retention_ms.unwrap_or(0).max(w.size + w.grace);
        let (keys, values, cached) = (mat.keys.clone(), mat.values.clone(), mat.caching);
        windowed(
            &self.grouped,
            mat.name.clone(),
            StoreKind::Window {
                retention,
                retain_duplicates: false,
            },
            (mat.keys, mat.values),
            (mat.in_memory, mat.logging, mat.caching),
            w.grace,
            move |store| {
                let (keys, values, fold) = (keys.clone(), values.clone(), fold.clone());
                Arc::new(move |_| {
                    Box::new(WindowAggregate::<K, V, A> {
                        store_name: store.clone(),
                        windows: w,
                        keys: keys.clone(),
                        values: values.clone(),
                        fold: fold.clone(),
                        cached,
                        store: None,
                        emitter: Emitter::new(0),
                        observed: i64::MIN,
                    }) as Box<dyn Node>
                })
            },
        )
    }
}

/// A grouped stream windowed by sliding windows.
pub struct SlidingWindowedKStream<K, V> {
    pub(crate) grouped: KGroupedStream<K, V>,
    pub(crate) windows: SlidingWindows,
}

impl<K: Data, V: Data> SlidingWindowedKStream<K, V> {
    /// Counts records per key and sliding window.
    pub fn count(&self) -> KTable<Windowed<K>, i64>
    where
        K: DefaultSerde,
    {
        self.aggregate_with(
            || 0i64,
            |_, _, c| c + 1,
            self.grouped.grouped.values.clone(),
            Materialized::with(K::default_serde(), Arc::new(IntSerde)),
        )
    }

    /// Folds values per key and sliding window. The store keeps raw values,
    /// so it needs the value serde.
    pub fn aggregate_with<A: Data>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        values: SerdeRef<V>,
        mat: Materialized<K, A>,
    ) -> KTable<Windowed<K>, A> {
        let w = self.windows;
        let d = w.time_difference;
        let retention = 2 * d + w.grace + 2;
        let fold = Fold::Aggregate {
            init: Arc::new(init),
            add: Arc::new(add),
        };
        let (keys, cached) = (mat.keys.clone(), mat.caching);
        let vs = values.clone();
        windowed(
            &self.grouped,
            mat.name.clone(),
            StoreKind::Window {
                retention,
                retain_duplicates: true,
            },
            (mat.keys.clone(), mat.values.clone()),
            (mat.in_memory, mat.logging, mat.caching),
            w.grace,
            move |store| {
                let (keys, values, fold) = (keys.clone(), vs.clone(), fold.clone());
                Arc::new(move |_| {
                    Box::new(SlidingAggregate::<K, V, A> {
                        store_name: store.clone(),
                        windows: w,
                        keys: keys.clone(),
                        values: values.clone(),
                        fold: fold.clone(),
                        cached,
                        store: None,
                        emitter: Emitter::new(0),
                        observed: i64::MIN,
                    }) as Box<dyn Node>
                })
            },
        )
    }
}

/// A grouped stream windowed by sessions.
pub struct SessionWindowedKStream<K, V> {
    pub(crate) grouped: KGroupedStream<K, V>,
    pub(crate) windows: SessionWindows,
}

impl<K: Data, V: Data> SessionWindowedKStream<K, V> {
    /// Counts records per session.
    pub fn count(&self) -> KTable<Windowed<K>, i64>
    where
        K: DefaultSerde,
    {
        self.aggregate_with(
            || 0i64,
            |_, _, c| c + 1,
            |_, a, b| a + b,
            Materialized::with(K::default_serde(), Arc::new(IntSerde)),
        )
    }

    /// Folds values per session; `merge` combines two sessions that a record joins.
    pub fn aggregate<A: Data + DefaultSerde>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        merge: impl Fn(&K, A, A) -> A + Send + Sync + 'static,
    ) -> KTable<Windowed<K>, A>
    where
        K: DefaultSerde,
    {
        self.aggregate_with(init, add, merge, Materialized::default())
    }

    /// `aggregate` into the given store.
    pub fn aggregate_with<A: Data>(
        &self,
        init: impl Fn() -> A + Send + Sync + 'static,
        add: impl Fn(&K, V, A) -> A + Send + Sync + 'static,
        merge: impl Fn(&K, A, A) -> A + Send + Sync + 'static,
        mat: Materialized<K, A>,
    ) -> KTable<Windowed<K>, A> {
        let w = self.windows;
        let retention = mat.retention_ms.unwrap_or(0).max(w.gap + w.grace + 1);
        let (keys, values, cached) = (mat.keys.clone(), mat.values.clone(), mat.caching);
        let init: Init<A> = Arc::new(init);
        let add: Adder<K, V, A> = Arc::new(add);
        let merge: Merger<K, A> = Arc::new(merge);
        windowed(
            &self.grouped,
            mat.name.clone(),
            StoreKind::Session { retention },
            (mat.keys, mat.values),
            (mat.in_memory, mat.logging, mat.caching),
            w.gap + w.grace,
            move |store| {
                let (keys, values, init, add, merge) = (
                    keys.clone(),
                    values.clone(),
                    init.clone(),
                    add.clone(),
                    merge.clone(),
                );
                Arc::new(move |_| {
                    Box::new(SessionAggregate::<K, V, A> {
                        store_name: store.clone(),
                        windows: w,
                        keys: keys.clone(),
                        values: values.clone(),
                        init: init.clone(),
                        add: add.clone(),
                        merge: merge.clone(),
                        cached,
                        store: None,
                        emitter: Emitter::new(0),
                        observed: i64::MIN,
                    }) as Box<dyn Node>
                })
            },
        )
    }
}
