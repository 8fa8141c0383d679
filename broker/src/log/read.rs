//! Reading stored batches for Fetch: whole batches as bytes, never re-encoded.

use std::fs::File;
use std::io;
use std::sync::Arc;

use bytes::Bytes;

use super::batch::complete_batches;
use super::segment::{header_at, read_at};

/// A segment as a reader sees it: its file, where to start scanning and where data ends.
pub(crate) struct SegmentView {
    pub file: Arc<File>,
    pub start: u64,
    pub limit: u64,
}

/// What to read for one fetch, captured under the partition lock and executed without it.
pub(crate) struct ReadPlan {
    pub views: Vec<SegmentView>,
}

impl ReadPlan {
    /// Whole batches from the one containing `offset`, up to `max_bytes` — but always at least
    /// one batch, so a batch larger than the limit still makes progress (KIP-74).
    pub fn read(&self, offset: i64, max_bytes: usize) -> io::Result<Bytes> {
        for v in &self.views {
            let mut pos = v.start;
            while let Some(h) = header_at(&v.file, pos, v.limit)? {
                if h.last_offset() < offset {
                    pos += h.size() as u64;
                    continue;
                }
                let want = max_bytes.max(h.size()).min((v.limit - pos) as usize);
                let mut buf = read_at(&v.file, pos, want)?;
                let end = complete_batches(&buf)
                    .last()
                    .map(|(p, h)| p + h.size())
                    .unwrap_or(0);
                buf.truncate(end);
                return Ok(Bytes::from(buf));
            }
        }
        Ok(Bytes::new())
    }
}
