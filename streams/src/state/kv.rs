//! Key-value store: engine + changelog + write cache.

use super::cache::WriteCache;
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

impl KvStore {
    pub fn new(engine: Box<dyn Engine>, logged: bool, cache_bytes: usize) -> Self {
        KvStore {
            engine,
            log: logged.then(Vec::new),
            cache: WriteCache::new(cache_bytes),
        }
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError> {
        if let Some(c) = &self.cache {
            if let Some(v) = c.get(key) {
                return Ok(v.clone());
            }
        }
        self.engine.get(key)
    }

    /// `None` deletes.
    pub fn put(&mut self, key: &[u8], value: Option<&[u8]>, ts: i64) -> Result<(), StreamsError> {
        if let Some(c) = &mut self.cache {
            if c.put(key, value, ts) {
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
        for (k, d) in c.take() {
            self.write_through(&k, d.value.as_deref(), d.timestamp)?;
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
