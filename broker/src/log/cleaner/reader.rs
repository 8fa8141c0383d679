//! Sequential batch reading and lazily started rewriting of one segment, in bounded buffers.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::log::batch::{BatchHeader, HEADER_LEN, LOG_OVERHEAD};

/// Reads a segment's batches in order through one buffer of `chunk` bytes (positioned reads:
/// the file's cursor is shared with the rest of the broker). A batch larger than the buffer
/// is read whole into a grown buffer, as Kafka's cleaner grows its read buffer.
pub(crate) struct BatchReader<'a> {
    file: &'a File,
    limit: u64,
    chunk: usize,
    buf: Vec<u8>,
    /// File position of `buf[0]`.
    buf_pos: u64,
    /// Next batch within `buf`.
    at: usize,
}

impl<'a> BatchReader<'a> {
    /// A reader of the first `limit` bytes of `file`.
    pub fn new(file: &'a File, limit: u64, chunk: usize) -> BatchReader<'a> {
        BatchReader {
            file,
            limit,
            chunk: chunk.max(HEADER_LEN),
            buf: Vec::new(),
            buf_pos: 0,
            at: 0,
        }
    }

    /// Makes `need` bytes from the next batch's start available; `false` at the limit.
    fn fill(&mut self, need: usize) -> io::Result<bool> {
        if self.buf.len() - self.at >= need {
            return Ok(true);
        }
        self.buf.drain(..self.at);
        self.buf_pos += self.at as u64;
        self.at = 0;
        let end = self.buf_pos + self.buf.len() as u64;
        let left = self.limit.saturating_sub(end);
        let want = (need.max(self.chunk) - self.buf.len()).min(left as usize);
        if self.buf.len() + want < need {
            return Ok(false);
        }
        let old = self.buf.len();
        self.buf.resize(old + want, 0);
        self.file.read_exact_at(&mut self.buf[old..], end)?;
        if self.buf.capacity() > self.chunk.max(need) * 2 {
            // Let go of the memory a big batch needed once it has been passed.
            self.buf.shrink_to(self.chunk.max(need));
        }
        Ok(true)
    }

    /// The next batch: its file position, header and bytes; `None` at the end or at bytes
    /// that are not a plausible batch (the segment's size covers complete batches only).
    pub fn next_batch(&mut self) -> io::Result<Option<(u64, BatchHeader, &[u8])>> {
        if !self.fill(HEADER_LEN)? {
            return Ok(None);
        }
        let Some(h) = BatchHeader::parse(&self.buf[self.at..]) else {
            return Ok(None);
        };
        if h.magic != 2 || h.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Ok(None);
        }
        if !self.fill(h.size())? {
            return Ok(None);
        }
        let pos = self.buf_pos + self.at as u64;
        let raw = &self.buf[self.at..self.at + h.size()];
        self.at += h.size();
        Ok(Some((pos, h, raw)))
    }
}

/// The `.cleaned` file of a segment, created only once the first batch changes: the bytes
/// before that batch are then copied from the original in `chunk`-sized pieces.
pub(crate) struct CleanedWriter<'a> {
    source: &'a File,
    path: PathBuf,
    chunk: usize,
    out: Option<BufWriter<File>>,
    /// Bytes written so far.
    pub written: u64,
}

impl<'a> CleanedWriter<'a> {
    /// A writer for `path` (nothing is created yet).
    pub fn new(source: &'a File, path: &Path, chunk: usize) -> CleanedWriter<'a> {
        CleanedWriter {
            source,
            path: path.to_path_buf(),
            chunk: chunk.max(HEADER_LEN),
            out: None,
            written: 0,
        }
    }

    /// Starts the file at the first change, at source position `pos`.
    pub fn start(&mut self, pos: u64) -> io::Result<()> {
        if self.out.is_some() {
            return Ok(());
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        let mut out = BufWriter::with_capacity(self.chunk, file);
        let mut piece = vec![0u8; self.chunk.min(pos as usize)];
        let mut copied = 0u64;
        while copied < pos {
            let n = piece.len().min((pos - copied) as usize);
            self.source.read_exact_at(&mut piece[..n], copied)?;
            out.write_all(&piece[..n])?;
            copied += n as u64;
        }
        self.written = pos;
        self.out = Some(out);
        Ok(())
    }

    /// Appends a kept batch (a no-op before the first change: the original has it).
    pub fn write(&mut self, batch: &[u8]) -> io::Result<()> {
        if let Some(out) = self.out.as_mut() {
            out.write_all(batch)?;
            self.written += batch.len() as u64;
        }
        Ok(())
    }

    /// Flushes and fsyncs the file; returns its path when one was started.
    pub fn finish(self) -> io::Result<Option<PathBuf>> {
        let Some(out) = self.out else {
            return Ok(None);
        };
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(Some(self.path))
    }
}
