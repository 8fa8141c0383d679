//! Byte-level storage engines under the stores: an ordered map in memory or RocksDB.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

use crate::error::StreamsError;

/// An ordered byte map. Keys sort bytewise, like RocksDB's default comparator.
pub(crate) trait Engine: Send {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError>;
    /// `None` deletes.
    fn put(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StreamsError>;
    /// Entries with `from <= key < to` (`to = None`: to the end), in key order.
    fn range(
        &self,
        from: &[u8],
        to: Option<&[u8]>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StreamsError>;
    /// Removes `from <= key < to`.
    fn delete_range(&mut self, from: &[u8], to: &[u8]) -> Result<(), StreamsError>;
    /// Makes writes durable locally (memtables to files).
    fn flush(&mut self) -> Result<(), StreamsError>;
    /// Whether state survives the process (decides checkpointing).
    fn persistent(&self) -> bool;
    /// Collects the following writes in one batch until [`end_batch`](Self::end_batch)
    /// (restoration writes thousands of records at once; RocksDB applies a batch in one go).
    fn begin_batch(&mut self) {}
    /// Applies the writes collected since [`begin_batch`](Self::begin_batch).
    fn end_batch(&mut self) -> Result<(), StreamsError> {
        Ok(())
    }
    /// Bulk loading (restoration): background compaction paused while on.
    fn set_bulk_loading(&mut self, _on: bool) -> Result<(), StreamsError> {
        Ok(())
    }
}

/// In-memory ordered map.
#[derive(Default)]
pub(crate) struct MemoryEngine {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Engine for MemoryEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError> {
        Ok(self.map.get(key).cloned())
    }
    fn put(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StreamsError> {
        match value {
            Some(v) => {
                self.map.insert(key.to_vec(), v.to_vec());
            }
            None => {
                self.map.remove(key);
            }
        }
        Ok(())
    }
    fn range(
        &self,
        from: &[u8],
        to: Option<&[u8]>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StreamsError> {
        let upper = match to {
            Some(t) => Bound::Excluded(t),
            None => Bound::Unbounded,
        };
        for (k, v) in self.map.range::<[u8], _>((Bound::Included(from), upper)) {
            if !f(k, v) {
                break;
            }
        }
        Ok(())
    }
    fn delete_range(&mut self, from: &[u8], to: &[u8]) -> Result<(), StreamsError> {
        let keys: Vec<Vec<u8>> = self
            .map
            .range::<[u8], _>((Bound::Included(from), Bound::Excluded(to)))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            self.map.remove(&k);
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamsError> {
        Ok(())
    }
    fn persistent(&self) -> bool {
        false
    }
}

/// Memory shared by every RocksDB store of one application instance: one block
/// cache that also accounts for write buffers, so the total stays bounded
/// whatever the number of tasks.
#[derive(Clone)]
pub(crate) struct RocksEnv {
    cache: rocksdb::Cache,
    wbm: rocksdb::WriteBufferManager,
}

impl RocksEnv {
    pub fn new(total_bytes: usize) -> Self {
        let cache = rocksdb::Cache::new_lru_cache(total_bytes);
        // Write buffers are charged to the cache and may use half of it.
        let wbm = rocksdb::WriteBufferManager::new_write_buffer_manager_with_cache(
            total_bytes / 2,
            false,
            cache.clone(),
        );
        RocksEnv { cache, wbm }
    }

    pub fn usage(&self) -> usize {
        self.cache.get_usage()
    }
}

/// A RocksDB instance for one store of one task.
pub(crate) struct RocksEngine {
    db: rocksdb::DB,
    name: String,
    write_opts: rocksdb::WriteOptions,
    /// Writes collected between `begin_batch` and `end_batch`.
    batch: Option<rocksdb::WriteBatch>,
}

impl RocksEngine {
    pub fn open(env: &RocksEnv, path: &Path, name: &str) -> Result<Self, StreamsError> {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.set_write_buffer_manager(&env.wbm);
        opts.set_write_buffer_size(4 << 20);
        opts.set_max_write_buffer_number(2);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.set_max_open_files(256);
        opts.set_keep_log_file_num(2);
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_block_cache(&env.cache);
        table.set_cache_index_and_filter_blocks(true);
        table.set_bloom_filter(10.0, false);
        opts.set_block_based_table_factory(&table);
        let db = rocksdb::DB::open(&opts, path).map_err(|e| StreamsError::Store {
            store: name.to_string(),
            reason: format!("open {}: {e}", path.display()),
        })?;
        let mut write_opts = rocksdb::WriteOptions::default();
        // The changelog topic is the durable copy; a crash restores from it.
        write_opts.disable_wal(true);
        Ok(RocksEngine {
            db,
            name: name.to_string(),
            write_opts,
            batch: None,
        })
    }

    fn err(&self, e: rocksdb::Error) -> StreamsError {
        StreamsError::Store {
            store: self.name.clone(),
            reason: e.to_string(),
        }
    }

    /// Writes the pending batch, if any. Restoration only writes (puts and
    /// segment range deletes), so nothing reads while a batch is open.
    fn apply_batch(&mut self) -> Result<(), StreamsError> {
        if let Some(b) = self.batch.as_mut() {
            if !b.is_empty() {
                let full = std::mem::take(b);
                self.db
                    .write_opt(full, &self.write_opts)
                    .map_err(|e| self.err(e))?;
            }
        }
        Ok(())
    }
}

impl Engine for RocksEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StreamsError> {
        debug_assert!(self.batch.is_none(), "read during a restore batch");
        self.db.get(key).map_err(|e| self.err(e))
    }
    fn put(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StreamsError> {
        if let Some(b) = self.batch.as_mut() {
            match value {
                Some(v) => b.put(key, v),
                None => b.delete(key),
            }
            return Ok(());
        }
        let r = match value {
            Some(v) => self.db.put_opt(key, v, &self.write_opts),
            None => self.db.delete_opt(key, &self.write_opts),
        };
        r.map_err(|e| self.err(e))
    }
    fn range(
        &self,
        from: &[u8],
        to: Option<&[u8]>,
        f: &mut dyn FnMut(&[u8], &[u8]) -> bool,
    ) -> Result<(), StreamsError> {
        let mut ro = rocksdb::ReadOptions::default();
        if let Some(t) = to {
            ro.set_iterate_upper_bound(t.to_vec());
        }
        let it = self.db.iterator_opt(
            rocksdb::IteratorMode::From(from, rocksdb::Direction::Forward),
            ro,
        );
        for item in it {
            let (k, v) = item.map_err(|e| self.err(e))?;
            if !f(&k, &v) {
                break;
            }
        }
        Ok(())
    }
    fn delete_range(&mut self, from: &[u8], to: &[u8]) -> Result<(), StreamsError> {
        if let Some(b) = self.batch.as_mut() {
            b.delete_range(from, to);
            return Ok(());
        }
        let mut batch = rocksdb::WriteBatch::default();
        batch.delete_range(from, to);
        self.db
            .write_opt(batch, &self.write_opts)
            .map_err(|e| self.err(e))
    }
    fn flush(&mut self) -> Result<(), StreamsError> {
        self.apply_batch()?;
        self.db.flush().map_err(|e| self.err(e))
    }
    fn persistent(&self) -> bool {
        true
    }
    fn begin_batch(&mut self) {
        if self.batch.is_none() {
            self.batch = Some(rocksdb::WriteBatch::default());
        }
    }
    fn end_batch(&mut self) -> Result<(), StreamsError> {
        self.apply_batch()?;
        self.batch = None;
        Ok(())
    }
    fn set_bulk_loading(&mut self, on: bool) -> Result<(), StreamsError> {
        // A restore rewrites the same keys many times over: compacting level-0
        // files while it runs costs CPU and stalls writes once L0 piles up
        // (RocksDB stalls on L0 only while auto compaction is on). Compaction
        // resumes, in the background, when the store is restored.
        let v = if on { "true" } else { "false" };
        self.db
            .set_options(&[("disable_auto_compactions", v)])
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(e: &mut dyn Engine) {
        e.put(b"a", Some(b"1")).unwrap();
        e.put(b"b", Some(b"2")).unwrap();
        e.put(b"c", Some(b"3")).unwrap();
        assert_eq!(e.get(b"b").unwrap(), Some(b"2".to_vec()));
        let mut seen = vec![];
        e.range(b"a", Some(b"c"), &mut |k, _| {
            seen.push(k.to_vec());
            true
        })
        .unwrap();
        assert_eq!(seen, vec![b"a".to_vec(), b"b".to_vec()]);
        e.delete_range(b"a", b"c").unwrap();
        e.put(b"c", None).unwrap();
        let mut n = 0;
        e.range(b"", None, &mut |_, _| {
            n += 1;
            true
        })
        .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn memory_engine() {
        exercise(&mut MemoryEngine::default());
    }

    #[test]
    fn rocks_engine() {
        let dir = tempfile::tempdir().unwrap();
        let env = RocksEnv::new(8 << 20);
        exercise(&mut RocksEngine::open(&env, dir.path(), "s").unwrap());
    }
}
