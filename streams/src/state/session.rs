//! Session store: values per (key, session start, session end), segmented by end.
//!
//! Engine key: `segment(8) key end(8, ordered) start(8, ordered)`.
//! Changelog key (Kafka's session key schema): `key end(8) start(8)`.

use super::engine::Engine;
use super::segments::Segments;
use super::{dec_ts, enc_ts, read_i64, ChangelogRecord};
use crate::error::StreamsError;

/// Byte-level session store of one task.
pub(crate) struct SessionStore {
    pub(super) engine: Box<dyn Engine>,
    pub(super) log: Option<Vec<ChangelogRecord>>,
    segments: Segments,
}

/// One stored session.
#[derive(Debug, Clone)]
pub(crate) struct SessionEntry {
    pub start: i64,
    pub end: i64,
    pub value: Vec<u8>,
}

impl SessionStore {
    pub fn new(engine: Box<dyn Engine>, logged: bool, retention: i64) -> Self {
        SessionStore {
            engine,
            log: logged.then(Vec::new),
            segments: Segments::new(retention),
        }
    }

    fn engine_key(&self, key: &[u8], start: i64, end: i64) -> Vec<u8> {
        let mut k = Vec::with_capacity(key.len() + 24);
        k.extend_from_slice(&self.segments.prefix(end));
        k.extend_from_slice(key);
        k.extend_from_slice(&enc_ts(end));
        k.extend_from_slice(&enc_ts(start));
        k
    }

    /// Writes (`None`: removes) a session.
    pub fn put(
        &mut self,
        key: &[u8],
        start: i64,
        end: i64,
        value: Option<&[u8]>,
        ts: i64,
    ) -> Result<(), StreamsError> {
        self.segments.observe(end, self.engine.as_mut())?;
        if end < self.segments.min_live() {
            return Ok(());
        }
        self.engine.put(&self.engine_key(key, start, end), value)?;
        if let Some(log) = &mut self.log {
            let mut ck = Vec::with_capacity(key.len() + 16);
            ck.extend_from_slice(key);
            ck.extend_from_slice(&end.to_be_bytes());
            ck.extend_from_slice(&start.to_be_bytes());
            log.push(ChangelogRecord {
                key: ck,
                value: value.map(|v| v.to_vec()),
                timestamp: ts,
            });
        }
        Ok(())
    }

    /// Sessions of `key` with `end >= earliest_end` and `start <= latest_start`.
    pub fn find(
        &self,
        key: &[u8],
        earliest_end: i64,
        latest_start: i64,
    ) -> Result<Vec<SessionEntry>, StreamsError> {
        let earliest_end = earliest_end.max(self.segments.min_live());
        let mut out = Vec::new();
        let want_len = 8 + key.len() + 16;
        let last_seg = self.segments.id(self.segments.observed().max(earliest_end));
        for seg in self.segments.id(earliest_end)..=last_seg {
            let mut lo = Vec::with_capacity(want_len);
            lo.extend_from_slice(&(seg as u64).to_be_bytes());
            lo.extend_from_slice(key);
            let mut hi = lo.clone();
            lo.extend_from_slice(&enc_ts(earliest_end));
            hi.extend_from_slice(&[0xff; 17]);
            self.engine.range(&lo, Some(&hi), &mut |k, v| {
                if k.len() == want_len && &k[8..8 + key.len()] == key {
                    let end = dec_ts(&k[8 + key.len()..]);
                    let start = dec_ts(&k[16 + key.len()..]);
                    if start <= latest_start {
                        out.push(SessionEntry {
                            start,
                            end,
                            value: v.to_vec(),
                        });
                    }
                }
                true
            })?;
        }
        out.sort_by_key(|s| (s.start, s.end));
        Ok(out)
    }

    pub fn restore(&mut self, ck: &[u8], value: Option<&[u8]>) -> Result<(), StreamsError> {
        if ck.len() < 16 {
            return Ok(());
        }
        let klen = ck.len() - 16;
        let end = read_i64(&ck[klen..]);
        let start = read_i64(&ck[klen + 8..]);
        self.segments.observe(end, self.engine.as_mut())?;
        if end < self.segments.min_live() {
            return Ok(());
        }
        let k = self.engine_key(&ck[..klen], start, end);
        self.engine.put(&k, value)
    }
}

#[cfg(test)]
mod tests {
    use super::super::engine::MemoryEngine;
    use super::*;

    #[test]
    fn find_overlapping_sessions() {
        let mut s = SessionStore::new(Box::new(MemoryEngine::default()), true, 1_000_000);
        s.put(b"k", 0, 10, Some(b"a"), 10).unwrap();
        s.put(b"k", 50, 70, Some(b"b"), 70).unwrap();
        s.put(b"kk", 0, 10, Some(b"c"), 10).unwrap();
        let f = s.find(b"k", 5, 60).unwrap();
        assert_eq!(f.len(), 2);
        let f = s.find(b"k", 11, 60).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].start, 50);
        s.put(b"k", 0, 10, None, 10).unwrap();
        assert_eq!(s.find(b"k", 0, 100).unwrap().len(), 1);
        let log = s.log.take().unwrap();
        let mut r = SessionStore::new(Box::new(MemoryEngine::default()), false, 1_000_000);
        for c in &log {
            r.restore(&c.key, c.value.as_deref()).unwrap();
        }
        assert_eq!(r.find(b"k", 0, 100).unwrap().len(), 1);
        assert_eq!(r.find(b"kk", 0, 100).unwrap().len(), 1);
    }
}
