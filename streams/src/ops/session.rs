//! Session window aggregation: sessions of a key merge when a record falls
//! within the inactivity gap of more than one.

use crate::fns::{Adder, Init, Merger};

use super::emit::Emitter;
use super::{from_bytes, key_bytes, to_bytes};
use crate::error::StreamsError;
use crate::processor::{Ctx, Node};
use crate::record::{Data, DynRecord};
use crate::serde::SerdeRef;
use crate::state::StoreRef;
use crate::window::{SessionWindows, Window, Windowed};

/// `SessionWindowedKStream::aggregate` with Kafka's merge rules.
pub(crate) struct SessionAggregate<K, V, A> {
    pub store_name: String,
    pub windows: SessionWindows,
    pub keys: SerdeRef<K>,
    pub values: SerdeRef<A>,
    pub init: Init<A>,
    pub add: Adder<K, V, A>,
    pub merge: Merger<K, A>,
    pub cached: bool,
    pub store: Option<StoreRef>,
    pub emitter: Emitter<Windowed<K>, A>,
    pub observed: i64,
}

impl<K: Data, V: Data, A: Data> SessionAggregate<K, V, A> {
    fn ekey(kb: &[u8], w: Window) -> Vec<u8> {
        let mut k = kb.to_vec();
        k.extend_from_slice(&w.start.to_be_bytes());
        k.extend_from_slice(&w.end.to_be_bytes());
        k
    }
}

impl<K: Data, V: Data, A: Data> Node for SessionAggregate<K, V, A> {
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<(), StreamsError> {
        self.store = Some(self.emitter.init(ctx, &self.store_name, self.cached)?);
        Ok(())
    }

    fn process(&mut self, ctx: &mut Ctx<'_>, rec: DynRecord) -> Result<(), StreamsError> {
        let r = rec.typed::<K, V>();
        // A null-keyed record is dropped before it can advance the observed time (as Kafka).
        let Some(kb) = key_bytes(ctx, &self.keys, &r.key, &self.store_name)? else {
            return Ok(());
        };
        let ts = r.timestamp;
        self.observed = self.observed.max(ts);
        // A session can still grow until stream time passes end + gap + grace.
        let close = self.observed - self.windows.grace - self.windows.gap;
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let gap = self.windows.gap;
        let found =
            store
                .lock()
                .session()
                .find(&kb, ts.saturating_sub(gap), ts.saturating_add(gap))?;
        let mut merged = Window { start: ts, end: ts };
        let mut agg = (self.init)();
        let mut old_sessions = Vec::with_capacity(found.len());
        for s in found {
            let v: A = from_bytes(&self.values, &s.value, &self.store_name)?;
            agg = (self.merge)(&r.key, agg, v.clone());
            merged.start = merged.start.min(s.start);
            merged.end = merged.end.max(s.end);
            old_sessions.push((
                Window {
                    start: s.start,
                    end: s.end,
                },
                v,
            ));
        }
        if merged.end < close {
            ctx.record_dropped("expired-window");
            return Ok(());
        }
        if merged != (Window { start: ts, end: ts }) {
            for (w, v) in old_sessions {
                store.lock().session().put(&kb, w.start, w.end, None, ts)?;
                let key = Windowed {
                    key: r.key.clone(),
                    window: w,
                };
                self.emitter.emit(
                    ctx,
                    Self::ekey(&kb, w),
                    key,
                    None,
                    Some(v),
                    ts,
                    r.headers.clone(),
                    0,
                );
            }
        }
        let agg = (self.add)(&r.key, r.value, agg);
        let vb = to_bytes(&self.values, &agg, &self.store_name)?;
        store
            .lock()
            .session()
            .put(&kb, merged.start, merged.end, Some(&vb), ts)?;
        let key = Windowed {
            key: r.key,
            window: merged,
        };
        self.emitter.emit(
            ctx,
            Self::ekey(&kb, merged),
            key,
            Some(agg),
            None,
            ts,
            r.headers,
            vb.len(),
        );
        Ok(())
    }

    fn flush(&mut self, ctx: &mut Ctx<'_>) -> Result<(), StreamsError> {
        self.emitter.flush(ctx);
        Ok(())
    }
}
