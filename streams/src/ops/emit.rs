//! Forwarding of table updates, collapsed between commits when caching is on.

use indexmap::IndexMap;

use crate::error::StreamsError;
use crate::processor::Ctx;
use crate::record::{Change, Data, Headers, Record};
use crate::state::cache::FastState;
use crate::state::StoreRef;

/// Holds back table updates until commit when caching is on, so a key updated
/// many times between commits is forwarded once with its first old value and
/// last new value — what Kafka's record cache does downstream of a store.
pub(crate) struct Emitter<K, V> {
    max_bytes: usize,
    bytes: usize,
    pending: IndexMap<Vec<u8>, Pending<K, V>, FastState>,
}

struct Pending<K, V> {
    key: K,
    old: Option<V>,
    new: Option<V>,
    ts: i64,
    headers: Headers,
    size: usize,
}

impl<K: Data, V: Data> Emitter<K, V> {
    /// `max_bytes` 0 disables caching.
    pub fn new(max_bytes: usize) -> Self {
        Emitter {
            max_bytes,
            bytes: 0,
            pending: IndexMap::default(),
        }
    }

    /// Fetches the operator's store and, with caching on, takes the task's
    /// cache budget.
    pub fn init(
        &mut self,
        ctx: &Ctx<'_>,
        store: &str,
        cached: bool,
    ) -> Result<StoreRef, StreamsError> {
        if cached {
            self.max_bytes = ctx.shared.cache_bytes;
        }
        ctx.store(store)
    }

    /// Forwards (or holds back) one update; `size` estimates its bytes.
    #[allow(clippy::too_many_arguments)]
    pub fn emit(
        &mut self,
        ctx: &mut Ctx<'_>,
        key_bytes: Vec<u8>,
        key: K,
        new: Option<V>,
        old: Option<V>,
        ts: i64,
        headers: Headers,
        size: usize,
    ) {
        if self.max_bytes == 0 {
            ctx.forward_typed(Record {
                key,
                value: Change { new, old },
                timestamp: ts,
                headers,
            });
            return;
        }
        match self.pending.get_mut(&key_bytes) {
            Some(p) => {
                p.new = new;
                p.ts = p.ts.max(ts);
                p.headers = headers;
                self.bytes = self.bytes - p.size + size;
                p.size = size;
            }
            None => {
                self.bytes += size + key_bytes.len();
                self.pending.insert(
                    key_bytes,
                    Pending {
                        key,
                        old,
                        new,
                        ts,
                        headers,
                        size,
                    },
                );
            }
        }
        if self.bytes > self.max_bytes {
            self.flush(ctx);
        }
    }

    /// Forwards everything held back.
    pub fn flush(&mut self, ctx: &mut Ctx<'_>) {
        self.bytes = 0;
        for (_, p) in self.pending.drain(..) {
            if p.new.is_none() && p.old.is_none() {
                continue;
            }
            ctx.forward_typed(Record {
                key: p.key,
                value: Change {
                    new: p.new,
                    old: p.old,
                },
                timestamp: p.ts,
                headers: p.headers,
            });
        }
    }
}
