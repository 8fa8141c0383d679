//! Window store: values per (key, window start), kept in time segments so
//! expired windows are dropped a whole segment at a time.
//!
//! Engine key: `segment(8) key start(8, order-preserving) [seq(4)]`.
//! Changelog key (Kafka's window key schema): `key start(8) seq(4)`.

use super::cache::WriteCache;
use super::engine::Engine;
use super::segments::Segments;
use super::{dec_ts, enc_ts, read_i64, ChangelogRecord};
use crate::error::StreamsError;

/// Byte-level window store of one task.
pub(crate) struct WindowStore {
    pub(super) engine: Box<dyn Engine>,
    pub(super) log: Option<Vec<ChangelogRecord>>,
    segments: Segments,
    /// Joins keep every record of a key in a window (a sequence number
    /// disambiguates); aggregations keep one value per window.
    retain_duplicates: bool,
    seq: u32,
    /// Only for one-value-per-window stores (aggregations).
    cache: Option<WriteCache>,
}

/// One stored window entry.
pub(crate) struct WindowEntry {
    pub start: i64,
    pub value: Vec<u8>,
}

impl WindowStore {
    pub fn new(
        engine: Box<dyn Engine>,
        logged: bool,
        retention: i64,
        retain_duplicates: bool,
        cache_bytes: usize,
    ) -> Self {
        WindowStore {
            engine,
            log: logged.then(Vec::new),
            segments: Segments::new(retention),
            retain_duplicates,
            seq: 0,
            cache: if retain_duplicates {
                None
            } else {
                WriteCache::new(cache_bytes)
            },
        }
    }

    fn engine_key(&self, key: &[u8], start: i64, seq: Option<u32>) -> Vec<u8> {
        let mut k = Vec::with_capacity(key.len() + 20);
        k.extend_from_slice(&self.segments.prefix(start));
        k.extend_from_slice(key);
        k.extend_from_slice(&enc_ts(start));
        if let Some(s) = seq {
            k.extend_from_slice(&s.to_be_bytes());
        }
        k
    }

    fn suffix(&self) -> usize {
        if self.retain_duplicates {
            12
        } else {
            8
        }
    }

    /// Writes (or with `None` deletes) the value of a window. Writes to
    /// expired windows are ignored, as in Kafka.
    pub fn put(
        &mut self,
        key: &[u8],
        start: i64,
        value: Option<&[u8]>,
        ts: i64,
    ) -> Result<(), StreamsError> {
        self.segments.observe(start, self.engine.as_mut())?;
        if start < self.segments.min_live() {
            return Ok(());
        }
        let seq = if self.retain_duplicates {
            self.seq = self.seq.wrapping_add(1);
            Some(self.seq)
        } else {
            None
        };
        let k = self.engine_key(key, start, seq);
        if let Some(c) = &mut self.cache {
            if c.put(&k, value, ts) {
                self.write_back()?;
            }
            return Ok(());
        }
        self.write_through(&k, key, start, seq, value, ts)
    }

    fn write_through(
        &mut self,
        engine_key: &[u8],
        key: &[u8],
        start: i64,
        seq: Option<u32>,
        value: Option<&[u8]>,
        ts: i64,
    ) -> Result<(), StreamsError> {
        self.engine.put(engine_key, value)?;
        if let Some(log) = &mut self.log {
            let mut ck = Vec::with_capacity(key.len() + 12);
            ck.extend_from_slice(key);
            ck.extend_from_slice(&start.to_be_bytes());
            ck.extend_from_slice(&seq.unwrap_or(0).to_be_bytes());
            log.push(ChangelogRecord {
                key: ck,
                value: value.map(|v| v.to_vec()),
                timestamp: ts,
            });
        }
        Ok(())
    }

    /// Writes the cache through (commit time, or when it is full); windows
    /// that expired meanwhile are dropped.
    pub fn flush(&mut self) -> Result<(), StreamsError> {
        self.write_back()
    }

    fn write_back(&mut self) -> Result<(), StreamsError> {
        let Some(c) = &mut self.cache else {
            return Ok(());
        };
        for (ek, d) in c.take() {
            // Cached keys have no sequence number: segment(8) key start(8).
            let n = ek.len() - 8;
            let start = dec_ts(&ek[n..]);
            if start < self.segments.min_live() {
                continue;
            }
            let key = ek[8..n].to_vec();
            self.write_through(&ek, &key, start, None, d.value.as_deref(), d.timestamp)?;
        }
        Ok(())
    }

    pub fn get(&self, key: &[u8], start: i64) -> Result<Option<Vec<u8>>, StreamsError> {
        if start < self.segments.min_live() {
            return Ok(None);
        }
        let k = self.engine_key(key, start, None);
        if let Some(v) = self.cache.as_ref().and_then(|c| c.get(&k)) {
            return Ok(v.clone());
        }
        self.engine.get(&k)
    }

    /// Entries of `key` with `from <= start <= to`, oldest first; each with
    /// its engine key (for [`delete_exact`](Self::delete_exact)).
    pub fn fetch(
        &mut self,
        key: &[u8],
        from: i64,
        to: i64,
    ) -> Result<Vec<(Vec<u8>, WindowEntry)>, StreamsError> {
        self.write_back()?;
        let from = from.max(self.segments.min_live());
        let mut out = Vec::new();
        if from > to {
            return Ok(out);
        }
        let want_len = 8 + key.len() + self.suffix();
        for seg in self.segments.id(from)..=self.segments.id(to) {
            let mut lo = Vec::with_capacity(want_len);
            lo.extend_from_slice(&(seg as u64).to_be_bytes());
            lo.extend_from_slice(key);
            let mut hi = lo.clone();
            lo.extend_from_slice(&enc_ts(from));
            hi.extend_from_slice(&enc_ts(to));
            hi.extend_from_slice(&[0xff; 5]);
            self.engine.range(&lo, Some(&hi), &mut |k, v| {
                if k.len() == want_len && &k[8..8 + key.len()] == key {
                    out.push((
                        k.to_vec(),
                        WindowEntry {
                            start: dec_ts(&k[8 + key.len()..]),
                            value: v.to_vec(),
                        },
                    ));
                }
                true
            })?;
        }
        Ok(out)
    }

    pub fn restore(&mut self, ck: &[u8], value: Option<&[u8]>) -> Result<(), StreamsError> {
        if ck.len() < 12 {
            return Ok(());
        }
        let klen = ck.len() - 12;
        let start = read_i64(&ck[klen..]);
        let seq = u32::from_be_bytes([ck[klen + 8], ck[klen + 9], ck[klen + 10], ck[klen + 11]]);
        self.segments.observe(start, self.engine.as_mut())?;
        if start < self.segments.min_live() {
            return Ok(());
        }
        if self.retain_duplicates {
            self.seq = self.seq.max(seq);
        }
        let k = self.engine_key(&ck[..klen], start, self.retain_duplicates.then_some(seq));
        self.engine.put(&k, value)
    }
}

#[cfg(test)]
mod tests {
    use super::super::engine::MemoryEngine;
    use super::*;

    #[test]
    fn fetch_filters_keys_sharing_a_prefix_and_expires() {
        let mut s = WindowStore::new(Box::new(MemoryEngine::default()), true, 100_000, false, 0);
        s.put(b"a", 0, Some(b"1"), 0).unwrap();
        s.put(b"ab", 0, Some(b"2"), 0).unwrap();
        s.put(b"a", 60_000, Some(b"3"), 0).unwrap();
        let got: Vec<i64> = s
            .fetch(b"a", 0, 200_000)
            .unwrap()
            .iter()
            .map(|(_, e)| e.start)
            .collect();
        assert_eq!(got, vec![0, 60_000]);
        s.put(b"a", 400_000, Some(b"4"), 0).unwrap();
        assert_eq!(s.get(b"a", 0).unwrap(), None);
        assert_eq!(s.fetch(b"a", 0, 500_000).unwrap().len(), 1);
        // Late write to an expired window is ignored.
        s.put(b"a", 10, Some(b"x"), 0).unwrap();
        assert_eq!(s.get(b"a", 10).unwrap(), None);
    }

    #[test]
    fn cache_collapses_window_updates_until_flush() {
        let mut s = WindowStore::new(
            Box::new(MemoryEngine::default()),
            true,
            100_000,
            false,
            1 << 20,
        );
        for i in 0..5u8 {
            s.put(b"k", 60_000, Some(&[i]), 60_000).unwrap();
        }
        assert_eq!(s.get(b"k", 60_000).unwrap(), Some(vec![4]));
        assert!(s.log.as_ref().unwrap().is_empty());
        s.flush().unwrap();
        let log = s.log.take().unwrap();
        assert_eq!(log.len(), 1);
        // Restored from the changelog key schema (key, start, seq).
        let mut r = WindowStore::new(Box::new(MemoryEngine::default()), false, 100_000, false, 0);
        r.restore(&log[0].key, log[0].value.as_deref()).unwrap();
        assert_eq!(r.get(b"k", 60_000).unwrap(), Some(vec![4]));
        assert_eq!(r.fetch(b"k", 0, 100_000).unwrap().len(), 1);
    }

    #[test]
    fn duplicates_and_restore() {
        let mut s = WindowStore::new(Box::new(MemoryEngine::default()), true, 100_000, true, 0);
        s.put(b"k", 5, Some(b"x"), 5).unwrap();
        s.put(b"k", 5, Some(b"y"), 5).unwrap();
        assert_eq!(s.fetch(b"k", 0, 10).unwrap().len(), 2);
        let log = s.log.take().unwrap();
        let mut r = WindowStore::new(Box::new(MemoryEngine::default()), false, 100_000, true, 0);
        for c in &log {
            r.restore(&c.key, c.value.as_deref()).unwrap();
        }
        let vals: Vec<Vec<u8>> = r
            .fetch(b"k", 0, 10)
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.value)
            .collect();
        assert_eq!(vals, vec![b"x".to_vec(), b"y".to_vec()]);
    }
}
