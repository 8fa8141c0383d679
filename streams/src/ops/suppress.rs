//! `suppress(untilWindowCloses)`: hold each window's latest result until the
//! window can no longer change, then emit it once.

use std::collections::BTreeSet;

use super::{from_bytes, to_bytes};
use crate::error::StreamsError;
use crate::processor::{Ctx, Node};
use crate::record::{Change, Data, DynRecord, Headers, Record};
use crate::serde::SerdeRef;
use crate::state::StoreRef;
use crate::window::{Window, Windowed};

/// The buffer lives in a logged key-value store (key: inner key bytes, window
/// start, window end; value: record timestamp and the latest value), so final
/// results survive a restart.
pub(crate) struct Suppress<K, V> {
    pub store_name: String,
    pub keys: SerdeRef<K>,
    pub values: SerdeRef<V>,
    /// Time after a window's end before it is final (grace; gap + grace for sessions).
    pub wait: i64,
    pub store: Option<StoreRef>,
    /// (window end, buffer key), in emission order.
    pub index: BTreeSet<(i64, Vec<u8>)>,
    pub observed: i64,
}

fn window_of(ek: &[u8]) -> (usize, Window) {
    let n = ek.len() - 16;
    let start = i64::from_be_bytes(ek[n..n + 8].try_into().unwrap_or_default());
    let end = i64::from_be_bytes(ek[n + 8..].try_into().unwrap_or_default());
    (n, Window { start, end })
}

impl<K: Data, V: Data> Suppress<K, V> {
    fn evict(&mut self, ctx: &mut Ctx<'_>) -> Result<(), StreamsError> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        while let Some((end, ek)) = self.index.first().cloned() {
            if end > self.observed - self.wait {
                break;
            }
            self.index.pop_first();
            let mut s = store.lock();
            let kv = s.kv();
            let Some(buf) = kv.get(&ek)? else { continue };
            kv.put(&ek, None, self.observed)?;
            drop(s);
            if buf.len() < 8 {
                continue;
            }
            let ts = i64::from_be_bytes(buf[..8].try_into().unwrap_or_default());
            let (n, window) = window_of(&ek);
            let key = from_bytes(&self.keys, &ek[..n], &self.store_name)?;
            let value = from_bytes(&self.values, &buf[8..], &self.store_name)?;
            ctx.forward_typed(Record {
                key: Windowed { key, window },
                value: Change {
                    new: Some(value),
                    old: None,
                },
                timestamp: ts,
                headers: Headers::new(),
            });
        }
        Ok(())
    }
}

impl<K: Data, V: Data> Node for Suppress<K, V> {
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<(), StreamsError> {
        let store = ctx.store(&self.store_name)?;
        // Rebuild the emission order from what was restored.
        for (ek, _) in store.lock().kv().range(&[], None)? {
            if ek.len() >= 16 {
                let (_, w) = window_of(&ek);
                self.index.insert((w.end, ek));
            }
        }
        self.store = Some(store);
        Ok(())
    }

    fn process(&mut self, ctx: &mut Ctx<'_>, rec: DynRecord) -> Result<(), StreamsError> {
        let r = rec.typed::<Windowed<K>, Change<V>>();
        self.observed = self.observed.max(r.timestamp);
        let mut ek = to_bytes(&self.keys, &r.key.key, &self.store_name)?;
        ek.extend_from_slice(&r.key.window.start.to_be_bytes());
        ek.extend_from_slice(&r.key.window.end.to_be_bytes());
        if let Some(store) = &self.store {
            let mut s = store.lock();
            match &r.value.new {
                Some(v) => {
                    let mut buf = r.timestamp.to_be_bytes().to_vec();
                    buf.extend_from_slice(&to_bytes(&self.values, v, &self.store_name)?);
                    s.kv().put(&ek, Some(&buf), r.timestamp)?;
                    self.index.insert((r.key.window.end, ek));
                }
                None => {
                    // A window that disappeared (a merged session) is never final.
                    s.kv().put(&ek, None, r.timestamp)?;
                    self.index.remove(&(r.key.window.end, ek));
                }
            }
        }
        self.evict(ctx)
    }
}
