//! Join operators: stream–stream (windowed), stream–table and table–table.

use crate::fns::{Joiner, LookupJoiner};
use std::sync::Arc;

use super::kstream::KStream;
use super::ktable::KTable;
use super::options::{Materialized, StreamJoined};
use crate::ops::stream_join::{JoinClocks, JoinSide};
use crate::ops::table_join::{JoinKind, StreamTableJoin, TableTableJoin};
use crate::processor::{fn_node, Ctx, Node};
use crate::record::{Change, Data, Record};
use crate::serde::{DefaultSerde, SerdeRef};
use crate::state::StoreKind;
use crate::window::JoinWindows;

impl<K: Data, V: Data> KStream<K, V> {
    /// The stream, repartitioned first if its key changed.
    fn partitioned(&self, name: &str, keys: &SerdeRef<K>, values: &SerdeRef<V>) -> usize {
        if !self.needs_repartition {
            return self.node;
        }
        self.g
            .borrow_mut()
            .repartition(self.node, name, keys.clone(), values.clone())
    }

    #[allow(clippy::too_many_arguments)]
    fn stream_join<VO: Data, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: Joiner<K, V, VO, VR>,
        windows: JoinWindows,
        opts: StreamJoined<K, V, VO>,
        emit_unmatched: (bool, bool),
        prefix: &str,
    ) -> KStream<K, VR> {
        let base = {
            let mut g = self.g.borrow_mut();
            opts.name.clone().unwrap_or_else(|| g.name(prefix))
        };
        let left = self.partitioned(&format!("{base}-left"), &opts.keys, &opts.values);
        let right = other.partitioned(&format!("{base}-right"), &opts.keys, &opts.other_values);
        let mut g = self.g.borrow_mut();
        g.copartition(&[left, right]);
        let retention = windows.before + windows.after + 1 + windows.grace;
        let kind = StoreKind::Window {
            retention,
            retain_duplicates: true,
        };
        let persistent = !opts.in_memory;
        let this_store = g.dsl_store(
            format!("{base}-this-join-store"),
            kind.clone(),
            opts.keys.clone(),
            opts.values.clone(),
            persistent,
            true,
            false,
        );
        let other_store = g.dsl_store(
            format!("{base}-other-join-store"),
            kind,
            opts.keys.clone(),
            opts.other_values.clone(),
            persistent,
            true,
            false,
        );
        let outer_store = (emit_unmatched.0 || emit_unmatched.1).then(|| {
            g.dsl_store(
                format!("{base}-outer-shared-join-store"),
                StoreKind::KeyValue,
                opts.keys.clone(),
                opts.values.clone(),
                persistent,
                true,
                false,
            )
        });
        let clocks = Arc::new(JoinClocks::default());
        let mut sides = Vec::new();
        for (is_left, parent) in [(true, left), (false, right)] {
            let (this, that) = if is_left {
                (this_store.clone(), other_store.clone())
            } else {
                (other_store.clone(), this_store.clone())
            };
            let mut stores = vec![this.clone(), that.clone()];
            stores.extend(outer_store.clone());
            let (keys, lv, rv, j, outer, clocks) = (
                opts.keys.clone(),
                opts.values.clone(),
                opts.other_values.clone(),
                joiner.clone(),
                outer_store.clone(),
                clocks.clone(),
            );
            let name = format!("{base}-{}", if is_left { "this" } else { "other" });
            let node = g.processor(
                name,
                &[parent],
                stores,
                Arc::new(move |_| {
                    Box::new(JoinSide::<K, V, VO, VR> {
                        is_left,
                        windows,
                        keys: keys.clone(),
                        left_values: lv.clone(),
                        right_values: rv.clone(),
                        this_store_name: this.clone(),
                        other_store_name: that.clone(),
                        outer_store_name: outer.clone(),
                        emit_unmatched,
                        joiner: j.clone(),
                        stores: None,
                        clocks: clocks.clone(),
                        clock: None,
                    }) as Box<dyn Node>
                }),
            );
            sides.push(node);
        }
        let merge = g.processor(
            format!("{base}-merge"),
            &sides,
            vec![],
            Arc::new(|_| fn_node(|ctx: &mut Ctx<'_>, r: Record<K, VR>| ctx.forward_typed(r))),
        );
        drop(g);
        KStream::new(self.g.clone(), merge, false)
    }

    /// Inner windowed join with another stream, default serdes.
    pub fn join<VO: Data + DefaultSerde, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(V, VO) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.join_with(other, joiner, windows, StreamJoined::default())
    }

    /// Inner windowed join with explicit serdes.
    pub fn join_with<VO: Data, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(V, VO) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        opts: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR> {
        let j: Joiner<K, V, VO, VR> = Arc::new(move |_, l, r| match (l, r) {
            (Some(l), Some(r)) => joiner(l, r),
            _ => unreachable!("inner join emits only matched pairs"),
        });
        self.stream_join(other, j, windows, opts, (false, false), "KSTREAM-JOIN")
    }

    /// Left windowed join: every left record is emitted, with `None` when no
    /// right record matched once the window closed.
    pub fn left_join<VO: Data + DefaultSerde, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(V, Option<VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.left_join_with(other, joiner, windows, StreamJoined::default())
    }

    /// Left windowed join with explicit serdes.
    pub fn left_join_with<VO: Data, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(V, Option<VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        opts: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR> {
        let j: Joiner<K, V, VO, VR> = Arc::new(move |_, l, r| match l {
            Some(l) => joiner(l, r),
            None => unreachable!("left join never emits a lone right record"),
        });
        self.stream_join(other, j, windows, opts, (true, false), "KSTREAM-LEFTJOIN")
    }

    /// Outer windowed join: unmatched records of either side are emitted with
    /// the other side `None` once their window closed.
    pub fn outer_join<VO: Data + DefaultSerde, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(Option<V>, Option<VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
    ) -> KStream<K, VR>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.outer_join_with(other, joiner, windows, StreamJoined::default())
    }

    /// Outer windowed join with explicit serdes.
    pub fn outer_join_with<VO: Data, VR: Data>(
        &self,
        other: &KStream<K, VO>,
        joiner: impl Fn(Option<V>, Option<VO>) -> VR + Send + Sync + 'static,
        windows: JoinWindows,
        opts: StreamJoined<K, V, VO>,
    ) -> KStream<K, VR> {
        let j: Joiner<K, V, VO, VR> = Arc::new(move |_, l, r| joiner(l, r));
        self.stream_join(other, j, windows, opts, (true, true), "KSTREAM-OUTERJOIN")
    }

    fn table_join<VT: Data + DefaultSerde, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        left: bool,
        joiner: LookupJoiner<K, V, VT, VR>,
    ) -> KStream<K, VR>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        let table = table.materialized_with(Materialized::default());
        let Some((store, keys, tvalues)) = table.store.clone() else {
            unreachable!("materialized_with always sets a store")
        };
        let prefix = if left {
            "KSTREAM-LEFTJOIN"
        } else {
            "KSTREAM-JOIN"
        };
        let name = self.g.borrow_mut().name(prefix);
        let input = self.partitioned(
            &format!("{name}-left"),
            &K::default_serde(),
            &V::default_serde(),
        );
        let mut g = self.g.borrow_mut();
        g.copartition(&[input, table.node]);
        let sn = store.clone();
        let node = g.processor(
            name,
            &[input],
            vec![store],
            Arc::new(move |_| {
                Box::new(StreamTableJoin::<K, V, VT, VR> {
                    store_name: sn.clone(),
                    keys: keys.clone(),
                    table_values: tvalues.clone(),
                    left,
                    joiner: joiner.clone(),
                    store: None,
                }) as Box<dyn Node>
            }),
        );
        drop(g);
        KStream::new(self.g.clone(), node, false)
    }

    /// Joins each record with the table's current value for its key; records
    /// without one are dropped.
    pub fn join_table<VT: Data + DefaultSerde, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(V, VT) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.table_join(
            table,
            false,
            Arc::new(move |_, v, t| match t {
                Some(t) => joiner(v, t),
                None => unreachable!("inner stream-table join skips missing rows"),
            }),
        )
    }

    /// Like [`join_table`](Self::join_table), but records without a row join with `None`.
    pub fn left_join_table<VT: Data + DefaultSerde, VR: Data>(
        &self,
        table: &KTable<K, VT>,
        joiner: impl Fn(V, Option<VT>) -> VR + Send + Sync + 'static,
    ) -> KStream<K, VR>
    where
        K: DefaultSerde,
        V: DefaultSerde,
    {
        self.table_join(table, true, Arc::new(move |_, v, t| joiner(v, t)))
    }
}

impl<K: Data + DefaultSerde, V: Data + DefaultSerde> KTable<K, V> {
    fn table_table<VO: Data + DefaultSerde, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        kind: JoinKind,
        joiner: Joiner<K, V, VO, VR>,
    ) -> KTable<K, VR> {
        let l = self.materialized_with(Materialized::default());
        let r = other.materialized_with(Materialized::default());
        let (Some((lstore, keys, lv)), Some((rstore, _, rv))) = (l.store.clone(), r.store.clone())
        else {
            unreachable!("materialized_with always sets a store")
        };
        let mut g = self.g.borrow_mut();
        g.copartition(&[l.node, r.node]);
        let base = g.name(match kind {
            JoinKind::Inner => "KTABLE-JOIN",
            JoinKind::Left => "KTABLE-LEFTJOIN",
            JoinKind::Outer => "KTABLE-OUTERJOIN",
        });
        let mut sides = Vec::new();
        for (is_left, parent, other_store) in [
            (true, l.node, rstore.clone()),
            (false, r.node, lstore.clone()),
        ] {
            let (keys, lv, rv, j, os) = (
                keys.clone(),
                lv.clone(),
                rv.clone(),
                joiner.clone(),
                other_store.clone(),
            );
            let node = g.processor(
                format!("{base}-{}", if is_left { "this" } else { "other" }),
                &[parent],
                vec![other_store],
                Arc::new(move |_| {
                    Box::new(TableTableJoin::<K, V, VO, VR> {
                        is_left,
                        kind,
                        other_store_name: os.clone(),
                        keys: keys.clone(),
                        left_values: lv.clone(),
                        right_values: rv.clone(),
                        joiner: j.clone(),
                        store: None,
                    }) as Box<dyn Node>
                }),
            );
            sides.push(node);
        }
        let merge = g.processor(
            format!("{base}-merge"),
            &sides,
            vec![],
            Arc::new(|_| {
                fn_node(|ctx: &mut Ctx<'_>, r: Record<K, Change<VR>>| ctx.forward_typed(r))
            }),
        );
        drop(g);
        KTable::new(self.g.clone(), merge, None)
    }

    /// Inner table–table join: a row exists while both sides have one.
    pub fn join<VO: Data + DefaultSerde, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(V, VO) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.table_table(
            other,
            JoinKind::Inner,
            Arc::new(move |_, l, r| match (l, r) {
                (Some(l), Some(r)) => joiner(l, r),
                _ => unreachable!("inner table join needs both rows"),
            }),
        )
    }

    /// Left table–table join: a row exists while the left side has one.
    pub fn left_join<VO: Data + DefaultSerde, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(V, Option<VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.table_table(
            other,
            JoinKind::Left,
            Arc::new(move |_, l, r| match l {
                Some(l) => joiner(l, r),
                None => unreachable!("left table join needs the left row"),
            }),
        )
    }

    /// Outer table–table join: a row exists while either side has one.
    pub fn outer_join<VO: Data + DefaultSerde, VR: Data>(
        &self,
        other: &KTable<K, VO>,
        joiner: impl Fn(Option<V>, Option<VO>) -> VR + Send + Sync + 'static,
    ) -> KTable<K, VR> {
        self.table_table(
            other,
            JoinKind::Outer,
            Arc::new(move |_, l, r| joiner(l, r)),
        )
    }
}
