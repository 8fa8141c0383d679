//! Stream–stream windowed joins (inner, left, outer).
//!
//! Each side has a window store of its records; a record joins the other
//! side's records of the same key within the join window. Left and outer
//! joins emit a record with a missing side only once its window has closed
//! (Kafka ≥ 3.1), keeping unmatched records in a shared "outer" store until then.
//!
//! Window expiry follows the join's own stream time (Kafka's `TimeTracker`): the largest
//! timestamp either side of the join has seen in this task, not the task's stream time, so
//! another input of the same sub-topology running ahead cannot close join windows early.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::fns::Joiner;

use super::{from_bytes, key_bytes, to_bytes};
use crate::error::StreamsError;
use crate::processor::{Ctx, Node};
use crate::record::{Data, DynRecord, Headers, Record};
use crate::serde::SerdeRef;
use crate::state::{Store, StoreRef};
use crate::window::JoinWindows;
use crate::TaskId;

/// The stream times of one join, one per task (Kafka's `TimeTrackerSupplier`): both sides of a
/// task share one clock. An entry belongs to the task incarnation whose left window store it
/// was created with, so a task reopened after a rebalance starts a fresh clock.
#[derive(Default)]
pub(crate) struct JoinClocks {
    by_task: Mutex<HashMap<TaskId, TaskClock>>,
}

/// A task incarnation's left window store (held weakly, only compared) and its join clock.
type TaskClock = (Weak<Mutex<Store>>, Arc<AtomicI64>);

impl JoinClocks {
    fn get(&self, task: TaskId, left_store: &StoreRef) -> Arc<AtomicI64> {
        let mut m = self.by_task.lock();
        if let Some((store, clock)) = m.get(&task) {
            if std::ptr::eq(store.as_ptr(), Arc::as_ptr(left_store)) {
                return clock.clone();
            }
        }
        // Kafka's NO_TIMESTAMP: every record advances it before it is compared.
        let clock = Arc::new(AtomicI64::new(-1));
        m.insert(task, (Arc::downgrade(left_store), clock.clone()));
        clock
    }

    fn remove(&self, task: TaskId, left_store: &StoreRef) {
        let mut m = self.by_task.lock();
        if m.get(&task)
            .is_some_and(|(s, _)| std::ptr::eq(s.as_ptr(), Arc::as_ptr(left_store)))
        {
            m.remove(&task);
        }
    }
}

/// One side of the join; the topology has one for the left and one for the right stream.
pub(crate) struct JoinSide<K, VL, VR, VO> {
    pub is_left: bool,
    pub windows: JoinWindows,
    pub keys: SerdeRef<K>,
    pub left_values: SerdeRef<VL>,
    pub right_values: SerdeRef<VR>,
    pub this_store_name: String,
    pub other_store_name: String,
    /// Present for left joins (left side only emits unmatched) and outer joins.
    pub outer_store_name: Option<String>,
    /// Which sides emit unmatched records: (left, right).
    pub emit_unmatched: (bool, bool),
    pub joiner: Joiner<K, VL, VR, VO>,
    pub stores: Option<(StoreRef, StoreRef, Option<StoreRef>)>,
    /// Shared by the two sides' factories; each task's pair picks its clock at init.
    pub clocks: Arc<JoinClocks>,
    /// This task's join clock and task id, set at init.
    pub clock: Option<(Arc<AtomicI64>, TaskId)>,
}

fn outer_key(ts: i64, left: bool, kb: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(kb.len() + 17);
    k.extend_from_slice(&crate::state::enc_ts(ts));
    k.push(if left { 0 } else { 1 });
    k.extend_from_slice(&(kb.len() as u32).to_be_bytes());
    k.extend_from_slice(kb);
    k
}

fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut e = prefix.to_vec();
    e.push(0xff);
    e.extend_from_slice(&[0xff; 4]);
    e
}

impl<K: Data, VL: Data, VR: Data, VO: Data> JoinSide<K, VL, VR, VO> {
    /// (look back, look ahead) of this side's records into the other side.
    fn reach(&self) -> (i64, i64) {
        if self.is_left {
            (self.windows.before, self.windows.after)
        } else {
            (self.windows.after, self.windows.before)
        }
    }

    /// The window store of the left side (this side's or the other's).
    fn left_store(&self) -> Option<&StoreRef> {
        self.stores
            .as_ref()
            .map(|(this, other, _)| if self.is_left { this } else { other })
    }

    fn emit_expired(&mut self, ctx: &mut Ctx<'_>, now: i64) -> Result<(), StreamsError> {
        let Some((_, _, Some(outer))) = self.stores.clone() else {
            return Ok(());
        };
        let g = self.windows.grace;
        let min_reach = self.windows.before.min(self.windows.after);
        let entries = {
            let mut s = outer.lock();
            let hi = crate::state::enc_ts(now.saturating_sub(min_reach + g));
            s.kv().range(&[], Some(&hi))?
        };
        for (k, v) in entries {
            if k.len() < 17 {
                continue;
            }
            let ts = crate::state::dec_ts(&k);
            let left = k[8] == 0;
            // A left record waits for right records up to `after`, a right one up to `before`.
            let ahead = if left {
                self.windows.after
            } else {
                self.windows.before
            };
            if ts + ahead + g >= now {
                continue;
            }
            let klen = u32::from_be_bytes(k[9..13].try_into().unwrap_or_default()) as usize;
            let kb = &k[13..13 + klen.min(k.len() - 13)];
            let key: K = from_bytes(&self.keys, kb, "outer-join-store")?;
            let out = if left {
                let v: VL = from_bytes(&self.left_values, &v, "outer-join-store")?;
                (self.joiner)(&key, Some(v), None)
            } else {
                let v: VR = from_bytes(&self.right_values, &v, "outer-join-store")?;
                (self.joiner)(&key, None, Some(v))
            };
            outer.lock().kv().put(&k, None, ts)?;
            ctx.forward_typed(Record {
                key,
                value: out,
                timestamp: ts,
                headers: Headers::new(),
            });
        }
        Ok(())
    }
}

impl<K: Data, VL: Data, VR: Data, VO: Data> Node for JoinSide<K, VL, VR, VO> {
    fn init(&mut self, ctx: &mut Ctx<'_>) -> Result<(), StreamsError> {
        let outer = match &self.outer_store_name {
            Some(n) => Some(ctx.store(n)?),
            None => None,
        };
        self.stores = Some((
            ctx.store(&self.this_store_name)?,
            ctx.store(&self.other_store_name)?,
            outer,
        ));
        let task = ctx.shared.task_id;
        let clock = self.left_store().map(|left| self.clocks.get(task, left));
        self.clock = clock.map(|c| (c, task));
        Ok(())
    }

    fn close(&mut self) {
        if let (Some((_, task)), Some(left)) = (&self.clock, self.left_store()) {
            self.clocks.remove(*task, left);
        }
    }

    fn process(&mut self, ctx: &mut Ctx<'_>, rec: DynRecord) -> Result<(), StreamsError> {
        let (Some((this, other, outer)), Some((clock, _))) =
            (self.stores.clone(), self.clock.clone())
        else {
            return Ok(());
        };
        let (key, ts, headers) = (
            crate::record::peek::<K>(&rec.key).clone(),
            rec.timestamp,
            rec.headers.clone(),
        );
        // A null key joins nothing: dropped before it can advance the join's clock (as Kafka).
        let Some(kb) = key_bytes(ctx, &self.keys, &key, &self.this_store_name)? else {
            return Ok(());
        };
        let now = clock.fetch_max(ts, Ordering::Relaxed).max(ts);
        let (this_val_bytes, this_l, this_r): (Vec<u8>, Option<VL>, Option<VR>) = if self.is_left {
            let v = crate::record::take::<VL>(rec.value);
            (
                to_bytes(&self.left_values, &v, &self.this_store_name)?,
                Some(v),
                None,
            )
        } else {
            let v = crate::record::take::<VR>(rec.value);
            (
                to_bytes(&self.right_values, &v, &self.this_store_name)?,
                None,
                Some(v),
            )
        };
        let (back, ahead) = self.reach();
        if ts + ahead + self.windows.grace < now {
            ctx.record_dropped("expired-window");
            return Ok(());
        }
        this.lock()
            .window()
            .put(&kb, ts, Some(&this_val_bytes), ts)?;
        let matches = other.lock().window().fetch(
            &kb,
            ts.saturating_sub(back).max(0),
            ts.saturating_add(ahead),
        )?;
        let other_emits = if self.is_left {
            self.emit_unmatched.1
        } else {
            self.emit_unmatched.0
        };
        let this_emits = if self.is_left {
            self.emit_unmatched.0
        } else {
            self.emit_unmatched.1
        };
        for (_, m) in &matches {
            let out = if self.is_left {
                let o: VR = from_bytes(&self.right_values, &m.value, &self.other_store_name)?;
                (self.joiner)(&key, this_l.clone(), Some(o))
            } else {
                let o: VL = from_bytes(&self.left_values, &m.value, &self.other_store_name)?;
                (self.joiner)(&key, Some(o), this_r.clone())
            };
            if other_emits {
                if let Some(outer) = &outer {
                    // The other record found a partner: it will not be emitted alone.
                    let p = outer_key(m.start, !self.is_left, &kb);
                    let end = prefix_end(&p);
                    let mut s = outer.lock();
                    for (k, _) in s.kv().range(&p, Some(&end))? {
                        s.kv().put(&k, None, ts)?;
                    }
                }
            }
            ctx.forward_typed(Record {
                key: key.clone(),
                value: out,
                timestamp: ts.max(m.start),
                headers: headers.clone(),
            });
        }
        if matches.is_empty() && this_emits {
            if let Some(outer) = &outer {
                let mut k = outer_key(ts, self.is_left, &kb);
                // Several unmatched records of one key at one time each need a slot.
                let p = k.clone();
                let n = outer.lock().kv().range(&p, Some(&prefix_end(&p)))?.len() as u32;
                k.extend_from_slice(&n.to_be_bytes());
                outer.lock().kv().put(&k, Some(&this_val_bytes), ts)?;
            }
        }
        self.emit_expired(ctx, now)
    }
}
