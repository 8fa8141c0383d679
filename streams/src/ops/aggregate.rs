//! Key-value aggregations: stream aggregate/reduce/count, table sources and
//! table re-aggregation with adder and subtractor.

use crate::fns::{Adder, Init};
use std::sync::Arc;

use super::emit::Emitter;
use super::{from_bytes, key_bytes, to_bytes};
use crate::error::StreamsError;
use crate::processor::{Ctx, Node};
use crate::record::{Change, Data, DynRecord};
use crate::serde::SerdeRef;
use crate::state::StoreRef;

/// How a stream aggregation folds a value into the aggregate.
pub(crate) enum Fold<K, V, A> {
    /// `aggregate(initializer, adder)`.
    Aggregate { init: Init<A>, add: Adder<K, V, A> },
    /// `reduce(reducer)`: the first value is the initial aggregate (A = V).
    Reduce(Arc<dyn Fn(A, V) -> A + Send + Sync>),
}

impl<K, V, A> Clone for Fold<K, V, A> {
    fn clone(&self) -> Self {
        match self {
            Fold::Aggregate { init, add } => Fold::Aggregate {
                init: init.clone(),
                add: add.clone(),
            },
            Fold::Reduce(r) => Fold::Reduce(r.clone()),
        }
    }
}

impl<K: 'static, V: Data, A: 'static> Fold<K, V, A> {
    pub fn apply(&self, key: &K, value: V, old: Option<A>) -> A {
        match self {
            Fold::Aggregate { init, add } => add(key, value, old.unwrap_or_else(|| init())),
            Fold::Reduce(r) => match old {
                Some(o) => r(o, value),
                // Reduce is only built with A = V.
                None => crate::record::take::<A>(Box::new(value) as crate::record::Val),
            },
        }
    }
}

/// `KGroupedStream::aggregate` and friends over a key-value store.
pub(crate) struct StreamAggregate<K, V, A> {
    pub store_name: String,
    pub keys: SerdeRef<K>,
    pub values: SerdeRef<A>,
    pub fold: Fold<K, V, A>,
    pub cached: bool,
    pub store: Option<StoreRef>,
    pub emitter: Emitter<K, A>,
}

impl<K: Data, V: Data, A: Data> Node for StreamAggregate<K, V, A> {
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<(), StreamsError> {
        self.store = Some(self.emitter.init(ctx, &self.store_name, self.cached)?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut Ctx<'_>, rec: DynRecord) -> Result<(), StreamsError> {
        let r = rec.typed::<K, V>();
        let Some(kb) = key_bytes(ctx, &self.keys, &r.key, &self.store_name)? else {
            return Ok(());
        };
        let Some(store) = &self.store else {
            return Ok(());
        };
        let mut s = store.lock();
        let kv = s.kv();
        let old = match kv.get(&kb)? {
            Some(b) => Some(from_bytes(&self.values, &b, &self.store_name)?),
            None => None,
        };
        let new = self.fold.apply(&r.key, r.value, old.clone());
        let vb = to_bytes(&self.values, &new, &self.store_name)?;
        kv.put(&kb, Some(&vb), r.timestamp)?;
        drop(s);
        let size = vb.len();
        self.emitter
            .emit(ctx, kb, r.key, Some(new), old, r.timestamp, r.headers, size);
        Ok(())
    }

    fn flush(&mut self, ctx: &mut Ctx<'_>) -> Result<(), StreamsError> {
        self.emitter.flush(ctx);
        Ok(())
    }
}

/// Materialises a topic (or a table's updates) as a table: null values delete.
pub(crate) struct TableSource<K, V> {
    pub store_name: String,
    pub keys: SerdeRef<K>,
    pub values: SerdeRef<V>,
    pub cached: bool,
    pub store: Option<StoreRef>,
    pub emitter: Emitter<K, V>,
    /// Input carries `(Option<K>, Option<V>)` (a topic, where keys and values may be null)
    /// rather than `(K, Change<V>)` (a table).
    pub from_topic: bool,
}

impl<K: Data, V: Data> Node for TableSource<K, V> {
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<(), StreamsError> {
        self.store = Some(self.emitter.init(ctx, &self.store_name, self.cached)?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut Ctx<'_>, rec: DynRecord) -> Result<(), StreamsError> {
        let (key, new, ts, headers) = if self.from_topic {
            let r = rec.typed::<Option<K>, Option<V>>();
            let Some(key) = r.key else {
                super::drop_null_key(ctx);
                return Ok(());
            };
            (key, r.value, r.timestamp, r.headers)
        } else {
            let r = rec.typed::<K, Change<V>>();
            (r.key, r.value.new, r.timestamp, r.headers)
        };
        let Some(kb) = key_bytes(ctx, &self.keys, &key, &self.store_name)? else {
            return Ok(());
        };
        let Some(store) = &self.store else {
            return Ok(());
        };
        let mut s = store.lock();
        let kv = s.kv();
        let old = match kv.get(&kb)? {
            Some(b) => Some(from_bytes(&self.values, &b, &self.store_name)?),
            None => None,
        };
        let vb = match &new {
            Some(v) => Some(to_bytes(&self.values, v, &self.store_name)?),
            None => None,
        };
        if vb.is_none() && old.is_none() {
            return Ok(());
        }
        kv.put(&kb, vb.as_deref(), ts)?;
        drop(s);
        let size = vb.as_ref().map_or(0, |v| v.len());
        self.emitter.emit(ctx, kb, key, new, old, ts, headers, size);
        Ok(())
    }

    fn flush(&mut self, ctx: &mut Ctx<'_>) -> Result<(), StreamsError> {
        self.emitter.flush(ctx);
        Ok(())
    }
}

/// `KGroupedTable::aggregate`: updates arrive as (old, new) pairs; the old
/// value is subtracted before the new one is added.
pub(crate) struct TableAggregate<K, V, A> {
    pub store_name: String,
    pub keys: SerdeRef<K>,
    pub values: SerdeRef<A>,
    pub init: Init<A>,
    pub add: Adder<K, V, A>,
    pub subtract: Adder<K, V, A>,
    pub cached: bool,
    pub store: Option<StoreRef>,
    pub emitter: Emitter<K, A>,
}

impl<K: Data, V: Data, A: Data> Node for TableAggregate<K, V, A> {
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<(), StreamsError> {
        self.store = Some(self.emitter.init(ctx, &self.store_name, self.cached)?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut Ctx<'_>, rec: DynRecord) -> Result<(), StreamsError> {
        let r = rec.typed::<K, Change<V>>();
        let Some(kb) = key_bytes(ctx, &self.keys, &r.key, &self.store_name)? else {
            return Ok(());
        };
        let Some(store) = &self.store else {
            return Ok(());
        };
        let mut s = store.lock();
        let kv = s.kv();
        let old = match kv.get(&kb)? {
            Some(b) => Some(from_bytes(&self.values, &b, &self.store_name)?),
            None => None,
        };
        let mut agg = old.clone();
        if let Some(o) = r.value.old {
            agg = Some((self.subtract)(
                &r.key,
                o,
                agg.unwrap_or_else(|| (self.init)()),
            ));
        }
        if let Some(n) = r.value.new {
            agg = Some((self.add)(&r.key, n, agg.unwrap_or_else(|| (self.init)())));
        }
        let vb = match &agg {
            Some(a) => Some(to_bytes(&self.values, a, &self.store_name)?),
            None => None,
        };
        kv.put(&kb, vb.as_deref(), r.timestamp)?;
        drop(s);
        let size = vb.as_ref().map_or(0, |v| v.len());
        self.emitter
            .emit(ctx, kb, r.key, agg, old, r.timestamp, r.headers, size);
        Ok(())
    }

    fn flush(&mut self, ctx: &mut Ctx<'_>) -> Result<(), StreamsError> {
        self.emitter.flush(ctx);
        Ok(())
    }
}
