//! Tumbling and hopping window aggregation.

use super::aggregate::Fold;
use super::emit::Emitter;
use super::{from_bytes, key_bytes, to_bytes};
use crate::error::StreamsError;
use crate::processor::{Ctx, Node};
use crate::record::{Data, DynRecord};
use crate::serde::SerdeRef;
use crate::state::StoreRef;
use crate::window::{TimeWindows, Window, Windowed};

/// `TimeWindowedKStream::aggregate`: one aggregate per key and window in a window store.
pub(crate) struct WindowAggregate<K, V, A> {
    pub store_name: String,
    pub windows: TimeWindows,
    pub keys: SerdeRef<K>,
    pub values: SerdeRef<A>,
    pub fold: Fold<K, V, A>,
    pub cached: bool,
    pub store: Option<StoreRef>,
    pub emitter: Emitter<Windowed<K>, A>,
    /// Largest timestamp this processor has seen (Kafka's observed stream time).
    pub observed: i64,
}

impl<K: Data, V: Data, A: Data> Node for WindowAggregate<K, V, A> {
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
        let close = self.observed - self.windows.grace;
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        for start in self.windows.windows_for(ts) {
            let end = start + self.windows.size;
            if end <= close {
                // Window end + grace has passed: Kafka drops and counts it.
                ctx.record_dropped("expired-window");
                continue;
            }
            let mut s = store.lock();
            let ws = s.window();
            let old = match ws.get(&kb, start)? {
                Some(b) => Some(from_bytes(&self.values, &b, &self.store_name)?),
                None => None,
            };
            let new = self.fold.apply(&r.key, r.value.clone(), old.clone());
            let vb = to_bytes(&self.values, &new, &self.store_name)?;
            ws.put(&kb, start, Some(&vb), ts)?;
            drop(s);
            let mut ekey = kb.clone();
            ekey.extend_from_slice(&start.to_be_bytes());
            let key = Windowed {
                key: r.key.clone(),
                window: Window { start, end },
            };
            self.emitter.emit(
                ctx,
                ekey,
                key,
                Some(new),
                old,
                ts,
                r.headers.clone(),
                vb.len(),
            );
        }
        Ok(())
    }

    fn flush(&mut self, ctx: &mut Ctx<'_>) -> Result<(), StreamsError> {
        self.emitter.flush(ctx);
        Ok(())
    }
}
