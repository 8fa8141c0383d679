//! Key-value store: engine + changelog + write cache.

use std::collections::HashMap;

use super::engine::Engine;
use super::ChangelogRecord;
use crate::error::StreamsError;

/// A key and its value.
pub(crate) type Entry = (Vec<u8>, Vec<u8>);

/// Byte-level key-value store of one task.
pub(crate) struct KvStore {
    pub(super) engine: Box<dyn Engine>,
    /// `Some` when the store is logged to a changelog topic.
    pub(super) log: Option<Vec<ChangelogRecord>>,
    cache: Option<WriteCache>,
}

/// Collapses repeated writes to one key between flushes
/// (`statestore.cache.max.bytes`).
struct WriteCache {
    dirty: HashMap<Vec<u8>, (Option<Vec<u8>>, i64)>,
    bytes: usize,
    max_bytes: usize,
}

impl KvStore {
    pub fn new(engine: Box<dyn Engine>, logged: bool, cache_bytes: usize) -> Self {
        KvStore {
            engine,
            log: logged.then(Vec::new),
            cache: (cache_bytes > 0).then(|| WriteCache {
                dirty: HashMap::new(),
                bytes: 0,
                max_bytes: cache_bytes,
            }),
        }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError> {
        if let Some(c) = &self.cache {
            if let Some((v, _)) = c.dirty.get(key) {
                return Ok(v.clone());
            }
        }
        self.engine.get(key)
    }

    /// `None` deletes.
    pub fn put(&mut self, key: &[u8], value: Option<&[u8]>, ts: i64) -> Result<(), StreamsError> {
        if let Some(c) = &mut self.cache {
            let add = key.len() + value.map_or(0, |v| v.len()) + 32;
            let prev = c
                .dirty
                .insert(key.to_vec(), (value.map(|v| v.to_vec()), ts));
            if let Some((pv, _)) = prev {
                c.bytes -= key.len() + pv.map_or(0, |v| v.len()) + 32;
            }
            c.bytes += add;
            if c.bytes > c.max_bytes {
                self.write_back()?;
            }
            return Ok(());
        }
        self.write_through(key, value, ts)
    }

    fn write_through(
        &mut self,
        key: &[u8],
        value: Option<&[u8]>,
        ts: i64,
    ) -> Result<(), StreamsError> {
        self.engine.put(key, value)?;
        if let Some(log) = &mut self.log {
            log.push(ChangelogRecord {
                key: key.to_vec(),
                value: value.map(|v| v.to_vec()),
                timestamp: ts,
            });
        }
        Ok(())
    }

    fn write_back(&mut self) -> Result<(), StreamsError> {
        let Some(c) = &mut self.cache else {
            return Ok(());
        };
        let dirty = std::mem::take(&mut c.dirty);
        c.bytes = 0;
        for (k, (v, ts)) in dirty {
            self.write_through(&k, v.as_deref(), ts)?;
        }
        Ok(())
    }

    /// Entries with `from <= key < to`, cache included.
    pub fn range(&mut self, from: &[u8], to: Option<&[u8]>) -> Result<Vec<Entry>, StreamsError> {
        self.write_back()?;
        let mut out = Vec::new();
        self.engine.range(from, to, &mut |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            true
        })?;
        Ok(out)
    }

    /// Writes the cache through to the engine and the changelog.
    pub fn flush(&mut self) -> Result<(), StreamsError> {
        self.write_back()
    }

    pub fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StreamsError> {
        self.engine.put(key, value)
    }
}

#[cfg(test)]
mod tests {
    use super::super::engine::MemoryEngine;
    use super::*;

    #[test]
    fn cache_collapses_updates_until_flush() {
        let mut s = KvStore::new(Box::new(MemoryEngine::default()), true, 1 << 20);
        for i in 0..10u8 {
            s.put(b"k", Some(&[i]), i as i64).unwrap();
        }
        assert_eq!(s.get(b"k").unwrap(), Some(vec![9]));
        assert!(s.log.as_ref().unwrap().is_empty());
        s.flush().unwrap();
        let log = s.log.as_ref().unwrap();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].value, Some(vec![9]));
    }

    #[test]
    fn small_cache_writes_back_when_full() {
        let mut s = KvStore::new(Box::new(MemoryEngine::default()), true, 100);
        for i in 0..10u8 {
            s.put(&[i], Some(&[i; 20]), 0).unwrap();
        }
        assert!(!s.log.as_ref().unwrap().is_empty());
        assert_eq!(s.range(&[], None).unwrap().len(), 10);
    }

    #[test]
    fn uncached_logs_every_write() {
        let mut s = KvStore::new(Box::new(MemoryEngine::default()), true, 0);
        s.put(b"a", Some(b"1"), 5).unwrap();
        s.put(b"a", None, 6).unwrap();
        assert_eq!(s.get(b"a").unwrap(), None);
        assert_eq!(s.log.as_ref().unwrap().len(), 2);
    }
}
