//! Sliding window aggregation (Kafka's `SlidingWindows`): windows are the
//! distinct sets of records no more than `time_difference` apart, each
//! represented by a window ending at a record (`[t - d, t]`) or starting just
//! after one (`[t + 1, t + 1 + d]`); bounds are inclusive.
//!
//! Unlike Kafka, which derives window aggregates incrementally from
//! neighbouring windows, this keeps the raw records of the last
//! `2d + grace` per key and recomputes the windows a record touches. The
//! results are the same; the cost grows with the records per window.

use std::collections::BTreeSet;

use super::aggregate::Fold;
use super::emit::Emitter;
use super::{from_bytes, key_bytes, to_bytes};
use crate::error::StreamsError;
use crate::processor::{Ctx, Node};
use crate::record::{Data, DynRecord};
use crate::serde::SerdeRef;
use crate::state::StoreRef;
use crate::window::{SlidingWindows, Window, Windowed};

pub(crate) struct SlidingAggregate<K, V, A> {
    pub store_name: String,
    pub windows: SlidingWindows,
    pub keys: SerdeRef<K>,
    pub values: SerdeRef<V>,
    pub fold: Fold<K, V, A>,
    pub cached: bool,
    pub store: Option<StoreRef>,
    pub emitter: Emitter<Windowed<K>, A>,
    pub observed: i64,
}

/// Window starts that exist for a sorted set of record times.
fn window_starts(times: &[i64], d: i64) -> BTreeSet<i64> {
    let mut w = BTreeSet::new();
    for (i, &t) in times.iter().enumerate() {
        w.insert(t - d);
        // The right window of t exists when a later record falls into it.
        if times[i + 1..].iter().any(|&u| u > t && u <= t + 1 + d) {
            w.insert(t + 1);
        }
    }
    w
}

impl<K: Data, V: Data, A: Data> SlidingAggregate<K, V, A> {
    fn aggregate(&self, key: &K, records: &[(i64, V)], s: i64, d: i64) -> Option<(A, i64)> {
        let mut acc: Option<A> = None;
        let mut max_ts = i64::MIN;
        for (t, v) in records.iter().filter(|(t, _)| *t >= s && *t <= s + d) {
            acc = Some(self.fold.apply(key, v.clone(), acc));
            max_ts = max_ts.max(*t);
        }
        acc.map(|a| (a, max_ts))
    }
}

impl<K: Data, V: Data, A: Data> Node for SlidingAggregate<K, V, A> {
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
        let t = r.timestamp;
        let d = self.windows.time_difference;
        self.observed = self.observed.max(t);
        let close = self.observed - self.windows.grace;
        if t + d < close {
            ctx.record_dropped("expired-window");
            return Ok(());
        }
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let raw = store
            .lock()
            .window()
            .fetch(&kb, t - 2 * d - 1, t + 2 * d + 1)?;
        let mut old_records = Vec::with_capacity(raw.len());
        for (_, e) in raw {
            old_records.push((
                e.start,
                from_bytes(&self.values, &e.value, &self.store_name)?,
            ));
        }
        let vb = to_bytes(&self.values, &r.value, &self.store_name)?;
        store.lock().window().put(&kb, t, Some(&vb), t)?;
        let mut new_records = old_records.clone();
        let pos = new_records.partition_point(|(u, _)| *u <= t);
        new_records.insert(pos, (t, r.value));
        let old_times: Vec<i64> = old_records.iter().map(|(u, _)| *u).collect();
        let new_times: Vec<i64> = new_records.iter().map(|(u, _)| *u).collect();
        let before = window_starts(&old_times, d);
        let after = window_starts(&new_times, d);
        // Windows that contain t, plus t's own right window.
        let mut touched: BTreeSet<i64> = after
            .iter()
            .copied()
            .filter(|&s| s <= t && t <= s + d)
            .collect();
        if after.contains(&(t + 1)) {
            touched.insert(t + 1);
        }
        for s in touched {
            if s + d < close {
                continue;
            }
            let Some((new, ts)) = self.aggregate(&r.key, &new_records, s, d) else {
                continue;
            };
            let old = if before.contains(&s) {
                self.aggregate(&r.key, &old_records, s, d).map(|(a, _)| a)
            } else {
                None
            };
            if s == t + 1 && old.is_some() {
                // t's right window already existed with the same records.
                continue;
            }
            let mut ekey = kb.clone();
            ekey.extend_from_slice(&s.to_be_bytes());
            let key = Windowed {
                key: r.key.clone(),
                window: Window {
                    start: s,
                    end: s + d,
                },
            };
            self.emitter
                .emit(ctx, ekey, key, Some(new), old, ts, r.headers.clone(), 64);
        }
        Ok(())
    }

    fn flush(&mut self, ctx: &mut Ctx<'_>) -> Result<(), StreamsError> {
        self.emitter.flush(ctx);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_starts_follow_records() {
        // Records at 10 and 15, d = 10: [0,10], [5,15], [11,21].
        let w: Vec<i64> = window_starts(&[10, 15], 10).into_iter().collect();
        assert_eq!(w, vec![0, 5, 11]);
        // A right window coinciding with the next record's left window is one window.
        let w: Vec<i64> = window_starts(&[10, 21], 10).into_iter().collect();
        assert_eq!(w, vec![0, 11]);
    }
}
