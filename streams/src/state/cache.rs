//! The record cache's store side (`statestore.cache.max.bytes`): collapses
//! repeated writes to one key between commits, so only the last value of
//! each key reaches the engine and the changelog.

use std::collections::HashMap;

/// Keys are short and many lookups per record hit these maps: foldhash, seeded per map
/// (std's SipHash showed in profiles), not an unseeded hash a hostile key set could flood.
pub(crate) type FastState = foldhash::fast::RandomState;

/// A pending write.
pub(crate) struct Dirty {
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
}

pub(crate) struct WriteCache {
    dirty: HashMap<Vec<u8>, Dirty, FastState>,
    bytes: usize,
    max_bytes: usize,
}

fn size(key: &[u8], value: &Option<Vec<u8>>) -> usize {
    key.len() + value.as_ref().map_or(0, |v| v.len()) + 32
}

impl WriteCache {
    /// `None` when `max_bytes` is 0 (caching off).
    pub fn new(max_bytes: usize) -> Option<Self> {
        (max_bytes > 0).then(|| WriteCache {
            dirty: HashMap::default(),
            bytes: 0,
            max_bytes,
        })
    }

    /// A pending write of `key`: `Some(None)` is a pending delete.
    pub fn get(&self, key: &[u8]) -> Option<&Option<Vec<u8>>> {
        self.dirty.get(key).map(|d| &d.value)
    }

    /// Records a write; true when the cache is over budget and must be written back.
    pub fn put(&mut self, key: &[u8], value: Option<&[u8]>, timestamp: i64) -> bool {
        let value = value.map(|v| v.to_vec());
        self.bytes += size(key, &value);
        match self.dirty.get_mut(key) {
            Some(d) => {
                self.bytes -= size(key, &d.value);
                d.value = value;
                d.timestamp = timestamp;
            }
            None => {
                self.dirty.insert(key.to_vec(), Dirty { value, timestamp });
            }
        }
        self.bytes > self.max_bytes
    }

    /// Everything pending, emptying the cache.
    pub fn take(&mut self) -> HashMap<Vec<u8>, Dirty, FastState> {
        self.bytes = 0;
        std::mem::take(&mut self.dirty)
    }
}
