//! Stateless table operators over `Change` records.

use crate::fns::{KeyValueMapper, Pred, ValueMapper};

use super::drop_null_key;
use crate::error::StreamsError;
use crate::processor::{Ctx, Node};
use crate::record::{Change, Data, DynRecord, Record};
use crate::serde::SerdeRef;

/// `KTable::filter`: a value failing the predicate reads as absent.
pub(crate) struct TableFilter<K, V> {
    pub pred: Pred<K, V>,
    pub negate: bool,
}

impl<K: Data, V: Data> Node for TableFilter<K, V> {
    fn process(&mut self, ctx: &mut Ctx<'_>, rec: DynRecord) -> Result<(), StreamsError> {
        let r = rec.typed::<K, Change<V>>();
        let keep = |v: Option<V>| v.filter(|v| (self.pred)(&r.key, v) != self.negate);
        let new = keep(r.value.new);
        let old = keep(r.value.old);
        if new.is_none() && old.is_none() {
            return Ok(());
        }
        ctx.forward_typed(Record {
            key: r.key,
            value: Change { new, old },
            timestamp: r.timestamp,
            headers: r.headers,
        });
        Ok(())
    }
}

/// `KTable::map_values`.
pub(crate) struct TableMapValues<K, V, V2> {
    pub f: ValueMapper<K, V, V2>,
}

impl<K: Data, V: Data, V2: Data> Node for TableMapValues<K, V, V2> {
    fn process(&mut self, ctx: &mut Ctx<'_>, rec: DynRecord) -> Result<(), StreamsError> {
        let r = rec.typed::<K, Change<V>>();
        let new = r.value.new.map(|v| (self.f)(&r.key, v));
        let old = r.value.old.map(|v| (self.f)(&r.key, v));
        ctx.forward_typed(Record {
            key: r.key,
            value: Change { new, old },
            timestamp: r.timestamp,
            headers: r.headers,
        });
        Ok(())
    }
}

/// `KTable::to_stream`: the new value, `None` for a deletion.
pub(crate) struct TableToStream<K, V>(pub std::marker::PhantomData<fn(K, V)>);

impl<K: Data, V: Data> Node for TableToStream<K, V> {
    fn process(&mut self, ctx: &mut Ctx<'_>, rec: DynRecord) -> Result<(), StreamsError> {
        let r = rec.typed::<K, Change<V>>();
        ctx.forward_typed(Record {
            key: r.key,
            value: r.value.new,
            timestamp: r.timestamp,
            headers: r.headers,
        });
        Ok(())
    }
}

/// `KTable::group_by`: re-keys each update, sending the old value to the
/// old key (to be subtracted) and the new value to the new key (to be added).
pub(crate) struct TableGroupBy<K, V, K2, V2> {
    pub f: KeyValueMapper<K, V, K2, V2>,
    /// The new keys' serde: a key it writes as null cannot be aggregated.
    pub keys: SerdeRef<K2>,
}

impl<K: Data, V: Data, K2: Data + PartialEq, V2: Data> Node for TableGroupBy<K, V, K2, V2> {
    fn process(&mut self, ctx: &mut Ctx<'_>, rec: DynRecord) -> Result<(), StreamsError> {
        let r = rec.typed::<K, Change<V>>();
        // A pair whose new key is null is dropped and counted; the other side of the update
        // still goes through (a row moving to a null key is subtracted from its old key).
        let regroup = |v: &V| {
            let (k, v) = (self.f)(&r.key, v);
            if matches!(self.keys.serialize(&k), Ok(None)) {
                drop_null_key(ctx);
                return None;
            }
            Some((k, v))
        };
        let old = r.value.old.as_ref().and_then(&regroup);
        let new = r.value.new.as_ref().and_then(&regroup);
        let fwd = |ctx: &mut Ctx<'_>, k: K2, c: Change<V2>| {
            ctx.forward_typed(Record {
                key: k,
                value: c,
                timestamp: r.timestamp,
                headers: r.headers.clone(),
            })
        };
        match (old, new) {
            (Some((ok, ov)), Some((nk, nv))) if ok == nk => fwd(
                ctx,
                nk,
                Change {
                    new: Some(nv),
                    old: Some(ov),
                },
            ),
            (old, new) => {
                if let Some((ok, ov)) = old {
                    fwd(
                        ctx,
                        ok,
                        Change {
                            new: None,
                            old: Some(ov),
                        },
                    );
                }
                if let Some((nk, nv)) = new {
                    fwd(
                        ctx,
                        nk,
                        Change {
                            new: Some(nv),
                            old: None,
                        },
                    );
                }
            }
        }
        Ok(())
    }
}
