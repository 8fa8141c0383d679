//! Window store: values per (key, window start), kept in time segments so
//! expired windows are dropped a whole segment at a time.
//!
//! Engine key: `segment(8) key start(8, order-preserving) [seq(4)]`.
//! Changelog key (Kafka's window key schema): `key start(8) seq(4)`.

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
    ) -> Self {
        WindowStore {
            engine,
            log: logged.then(Vec::new),
            segments: Segments::new(retention),
            retain_duplicates,
            seq: 0,
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
        self.engine.put(&k, value)?;
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

    pub fn get(&self, key: &[u8], start: i64) -> Result<Option<Vec<u8>>, StreamsError> {
        if start < self.segments.min_live() {
            return Ok(None);
        }
        self.engine.get(&self.engine_key(key, start, None))
    }

    /// Entries of `key` with `from <= start <= to`, oldest first; each with
    /// its engine key (for [`delete_exact`](Self::delete_exact)).
    pub fn fetch(
        &self,
        key: &[u8],
        from: i64,
        to: i64,
    ) -> Result<Vec<(Vec<u8>, WindowEntry)>, StreamsError> {
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
        let mut s = WindowStore::new(Box::new(MemoryEngine::default()), true, 100_000, false);
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
    fn duplicates_and_restore() {
        let mut s = WindowStore::new(Box::new(MemoryEngine::default()), true, 100_000, true);
        s.put(b"k", 5, Some(b"x"), 5).unwrap();
        s.put(b"k", 5, Some(b"y"), 5).unwrap();
        assert_eq!(s.fetch(b"k", 0, 10).unwrap().len(), 2);
        let log = s.log.take().unwrap();
        let mut r = WindowStore::new(Box::new(MemoryEngine::default()), false, 100_000, true);
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
