//! Stream–table and table–table joins: lookups into the other side's store.

use crate::fns::{Joiner, LookupJoiner};

use super::{from_bytes, to_bytes};
use crate::error::StreamsError;
use crate::processor::{Ctx, Node};
use crate::record::{Change, Data, DynRecord, Record};
use crate::serde::SerdeRef;
use crate::state::StoreRef;

fn lookup<K: 'static, V: 'static>(
    store: &StoreRef,
    keys: &SerdeRef<K>,
    values: &SerdeRef<V>,
    key: &K,
    name: &str,
) -> Result<Option<V>, StreamsError> {
    let kb = to_bytes(keys, key, name)?;
    let found = store.lock().kv().get(&kb)?;
    match found {
        Some(b) => Ok(Some(from_bytes(values, &b, name)?)),
        None => Ok(None),
    }
}

/// Stream–table join: each stream record looks up the table's current value.
/// Table updates trigger nothing (the table is not time-synchronised).
pub(crate) struct StreamTableJoin<K, V, VT, VO> {
    pub store_name: String,
    pub keys: SerdeRef<K>,
    pub table_values: SerdeRef<VT>,
    /// `true`: left join (a missing table value joins as `None`).
    pub left: bool,
    pub joiner: LookupJoiner<K, V, VT, VO>,
    pub store: Option<StoreRef>,
}

impl<K: Data, V: Data, VT: Data, VO: Data> Node for StreamTableJoin<K, V, VT, VO> {
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<(), StreamsError> {
        self.store = Some(ctx.store(&self.store_name)?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut Ctx<'_>, rec: DynRecord) -> Result<(), StreamsError> {
        let r = rec.typed::<K, V>();
        let Some(store) = &self.store else {
            return Ok(());
        };
        let t = lookup(
            store,
            &self.keys,
            &self.table_values,
            &r.key,
            &self.store_name,
        )?;
        if t.is_none() && !self.left {
            return Ok(());
        }
        let out = (self.joiner)(&r.key, r.value, t);
        ctx.forward_typed(Record {
            key: r.key,
            value: out,
            timestamp: r.timestamp,
            headers: r.headers,
        });
        Ok(())
    }
}

/// Which table–table join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JoinKind {
    Inner,
    Left,
    Outer,
}

/// One side of a table–table join: an update on this side is joined with the
/// other side's current value, old and new results forwarded as a `Change`.
pub(crate) struct TableTableJoin<K, VL, VR, VO> {
    pub is_left: bool,
    pub kind: JoinKind,
    pub other_store_name: String,
    pub keys: SerdeRef<K>,
    pub left_values: SerdeRef<VL>,
    pub right_values: SerdeRef<VR>,
    pub joiner: Joiner<K, VL, VR, VO>,
    pub store: Option<StoreRef>,
}

impl<K: Data, VL: Data, VR: Data, VO: Data> TableTableJoin<K, VL, VR, VO> {
    fn join(&self, key: &K, l: Option<VL>, r: Option<VR>) -> Option<VO> {
        let ok = match self.kind {
            JoinKind::Inner => l.is_some() && r.is_some(),
            JoinKind::Left => l.is_some(),
            JoinKind::Outer => l.is_some() || r.is_some(),
        };
        ok.then(|| (self.joiner)(key, l, r))
    }
}

impl<K: Data, VL: Data, VR: Data, VO: Data> Node for TableTableJoin<K, VL, VR, VO> {
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<(), StreamsError> {
        self.store = Some(ctx.store(&self.other_store_name)?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut Ctx<'_>, rec: DynRecord) -> Result<(), StreamsError> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let (key, ts, headers, new, old) = if self.is_left {
            let r = rec.typed::<K, Change<VL>>();
            let other = lookup(
                &store,
                &self.keys,
                &self.right_values,
                &r.key,
                &self.other_store_name,
            )?;
            let new = self.join(&r.key, r.value.new, other.clone());
            let old = self.join(&r.key, r.value.old, other);
            (r.key, r.timestamp, r.headers, new, old)
        } else {
            let r = rec.typed::<K, Change<VR>>();
            let other = lookup(
                &store,
                &self.keys,
                &self.left_values,
                &r.key,
                &self.other_store_name,
            )?;
            let new = self.join(&r.key, other.clone(), r.value.new);
            let old = self.join(&r.key, other, r.value.old);
            (r.key, r.timestamp, r.headers, new, old)
        };
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        ctx.forward_typed(Record {
            key,
            value: Change { new, old },
            timestamp: ts,
            headers,
        });
        Ok(())
    }
}
