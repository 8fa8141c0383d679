//! One log segment: a `.log` file of record batches named by its base offset, and its indexes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, IoSlice, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::batch::{crc_matches, BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use super::index::{entries_look_valid, IndexEntry, SegmentIndex};

/// File name of a segment file: the base offset as 20 digits, like Kafka.
pub(crate) fn file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

/// How thoroughly to check a segment when opening it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// Walk batch headers; truncate an incomplete tail.
    Headers,
    /// A closed segment known to be fsynced whose batches nobody needs to see (producer state
    /// comes from a later snapshot): trust its indexes, as Kafka does after a clean stop, and
    /// walk only the headers after the last index entry, for the segment's end. Falls back to
    /// `Headers` when the indexes are missing or do not fit the file.
    Indexed,
    /// Walk headers and check the CRCs of the last `TAIL_CHECK_BYTES`: the active segment
    /// after a clean shutdown, where a torn or damaged write would be.
    Tail,
    /// Read everything and check every CRC; truncate at the first bad batch.
    Full,
}

/// An open segment.
pub(crate) struct Segment {
    pub base_offset: i64,
    pub file: Arc<File>,
    /// Bytes of complete batches in the file.
    pub size: u64,
    /// Offset after the last batch (the base offset when empty).
    pub next_offset: i64,
    /// Largest batch max-timestamp in the segment (-1 when empty).
    pub max_timestamp: i64,
    /// Wall-clock ms when the segment was created or opened, for `segment.ms`.
    pub created_ms: i64,
    index: SegmentIndex,
    bytes_since_index: u64,
    log_path: PathBuf,
    /// Unsynced appended records, for `flush.messages`.
    pub unflushed: i64,
}

impl Segment {
    /// Creates an empty segment.
    pub fn create(dir: &Path, base_offset: i64, now_ms: i64) -> io::Result<Segment> {
        let log_path = dir.join(file_name(base_offset, "log"));
        // O_APPEND: every write lands at the end of the valid data, whatever the cursor.
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&log_path)?;
        file.set_len(0)?;
        let index = SegmentIndex::open(
            &dir.join(file_name(base_offset, "index")),
            &dir.join(file_name(base_offset, "timeindex")),
            false,
        )?;
        Ok(Segment {
            base_offset,
            file: Arc::new(file),
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            created_ms: now_ms,
            index,
            bytes_since_index: 0,
            log_path,
            unflushed: 0,
        })
    }

    /// Opens an existing segment, recovering its tail and rebuilding bad or missing indexes.
    /// `on_batch` sees every valid batch header in order (producer state is rebuilt from them).
    /// `truncated` tells whether recovery cut the file.
    pub fn open(
        dir: &Path,
        base_offset: i64,
        recovery: Recovery,
        index_interval: u32,
        now_ms: i64,
        on_batch: &mut dyn FnMut(&BatchHeader),
    ) -> io::Result<(Segment, bool)> {
        let log_path = dir.join(file_name(base_offset, "log"));
        // O_APPEND matters here: without it, appends after a restart would start at byte 0.
        let file = OpenOptions::new().read(true).append(true).open(&log_path)?;
        let file_len = file.metadata()?.len();
        let offset_path = dir.join(file_name(base_offset, "index"));
        let time_path = dir.join(file_name(base_offset, "timeindex"));
        let file = Arc::new(file);
        if recovery == Recovery::Indexed {
            if let Some(index) =
                Self::load_fitting_index(&file, &offset_path, &time_path, index_interval)?
            {
                let mut seg = Segment {
                    base_offset,
                    file: Arc::clone(&file),
                    size: file_len,
                    next_offset: base_offset,
                    max_timestamp: -1,
                    created_ms: now_ms,
                    index,
                    bytes_since_index: 0,
                    log_path: log_path.clone(),
                    unflushed: 0,
                };
                if seg.walk_after_last_entry(file_len, index_interval)? {
                    return Ok((seg, false));
                }
            }
            tracing::debug!(segment = %log_path.display(), "indexes do not fit the segment; walking its headers");
        }
        let mut headers: Vec<(u64, BatchHeader)> = Vec::new();
        let valid_len = match recovery {
            Recovery::Full => scan_full(&file, base_offset, &mut headers)?,
            Recovery::Headers | Recovery::Indexed => {
                scan_headers(&file, file_len, 0, base_offset, &mut headers)?
            }
            Recovery::Tail => {
                let len = scan_headers(&file, file_len, 0, base_offset, &mut headers)?;
                check_tail_crcs(&file, len, &mut headers)?
            }
        };
        if valid_len < file_len {
            tracing::warn!(
                segment = %log_path.display(),
                valid_len,
                file_len,
                "truncating torn or corrupt tail of segment"
            );
            file.set_len(valid_len)?;
        }
        let mut index = SegmentIndex::open(&offset_path, &time_path, true)?;
        let loaded_ok = valid_len == file_len
            && offset_path.exists()
            && entries_look_valid(index.entries(), valid_len)
            && (!index.entries().is_empty() || valid_len <= index_interval as u64)
            && index.entries().last().is_none_or(|e| {
                // The last entry must name a batch that is there (a stale index is rebuilt).
                let at = headers.binary_search_by_key(&(e.position as u64), |(pos, _)| *pos);
                at.is_ok_and(|i| headers[i].1.base_offset == base_offset + e.rel_offset as i64)
            });
        if !loaded_ok {
            index = SegmentIndex::open(&offset_path, &time_path, false)?;
        }
        let mut seg = Segment {
            base_offset,
            file,
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            created_ms: now_ms,
            index,
            bytes_since_index: 0,
            log_path,
            unflushed: 0,
        };
        for (pos, h) in &headers {
            seg.account(*pos, h, index_interval, !loaded_ok)?;
            on_batch(h);
        }
        seg.size = valid_len;
        if !loaded_ok {
            seg.index.flush(false)?;
        }
        Ok((seg, valid_len < file_len))
    }

    /// `Recovery::Indexed`: the segment's indexes as written, if they look like its file's.
    fn load_fitting_index(
        file: &File,
        offset_path: &Path,
        time_path: &Path,
        index_interval: u32,
    ) -> io::Result<Option<SegmentIndex>> {
        let file_len = file.metadata()?.len();
        if !offset_path.exists() {
            return Ok(None);
        }
        let index = SegmentIndex::open(offset_path, time_path, true)?;
        let entries = index.entries();
        let fits = entries_look_valid(entries, file_len)
            && (!entries.is_empty() || file_len <= index_interval as u64);
        Ok(fits.then_some(index))
    }

    /// `Recovery::Indexed`: sets the end offset and largest timestamp from the last index entry
    /// and the headers after it. False when the entry does not point at a batch of its offset
    /// or the walk does not reach the end of the file: the index is stale (or the file
    /// damaged), and walking every header decides.
    fn walk_after_last_entry(&mut self, file_len: u64, index_interval: u32) -> io::Result<bool> {
        let (from, first_offset) = match self.index.entries().last() {
            Some(e) => {
                self.max_timestamp = e.max_timestamp_before;
                (e.position as u64, self.base_offset + e.rel_offset as i64)
            }
            None => (0, self.base_offset),
        };
        let mut headers = Vec::new();
        let end = scan_headers(&self.file, file_len, from, first_offset, &mut headers)?;
        let starts_right = match headers.first() {
            Some((_, h)) => h.base_offset == first_offset,
            None => file_len == 0,
        };
        if !starts_right || end != file_len {
            return Ok(false);
        }
        for (pos, h) in &headers {
            self.account(*pos, h, index_interval, false)?;
        }
        Ok(true)
    }

    /// Records a batch written at `pos` in the in-memory state, adding an index entry when due.
    fn account(
        &mut self,
        pos: u64,
        h: &BatchHeader,
        index_interval: u32,
        write_index: bool,
    ) -> io::Result<()> {
        if pos > 0 && self.bytes_since_index >= index_interval as u64 {
            if write_index {
                self.index.append(IndexEntry {
                    rel_offset: (h.base_offset - self.base_offset) as u32,
                    position: pos as u32,
                    max_timestamp_before: self.max_timestamp,
                })?;
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += h.size() as u64;
        self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
        self.next_offset = h.last_offset() + 1;
        Ok(())
    }

    /// Appends validated batches whose offsets are already assigned.
    pub fn append(
        &mut self,
        parts: &[&[u8]],
        headers: &[BatchHeader],
        index_interval: u32,
    ) -> io::Result<()> {
        if let Err(e) = write_all_vectored(&self.file, parts) {
            // Never leave half a batch behind: cut the file back to the last complete batch.
            let _ = self.file.set_len(self.size);
            return Err(e);
        }
        let mut pos = self.size;
        for h in headers {
            self.account(pos, h, index_interval, true)?;
            pos += h.size() as u64;
            self.unflushed += h.records_count as i64;
        }
        self.size = pos;
        Ok(())
    }

    /// File position from which to scan for the batch containing `offset`.
    pub fn position_for_offset(&self, offset: i64) -> u64 {
        let rel = (offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
        self.index.position_for_offset(rel) as u64
    }

    /// File position from which to scan for the first batch with a timestamp ≥ `ts`.
    pub fn position_for_timestamp(&self, ts: i64) -> u64 {
        self.index.position_for_timestamp(ts) as u64
    }

    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Writes buffered index entries and, when `sync`, fsyncs data and indexes.
    pub fn flush(&mut self, sync: bool) -> io::Result<()> {
        self.index.flush(sync)?;
        if sync {
            self.file.sync_data()?;
            self.unflushed = 0;
        }
        Ok(())
    }

    /// Removes the segment's files.
    pub fn delete(self) -> io::Result<()> {
        let [a, b] = self.index.paths();
        let (a, b) = (a.to_path_buf(), b.to_path_buf());
        drop(self.index);
        fs::remove_file(&self.log_path)?;
        let _ = fs::remove_file(a);
        let _ = fs::remove_file(b);
        Ok(())
    }
}

/// Writes every part with as few `writev` calls as the kernel allows.
fn write_all_vectored(mut file: &File, parts: &[&[u8]]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "segment write returned 0",
                ))
            }
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads up to `len` bytes at `pos`, fewer at end of file.
pub(crate) fn read_at(file: &File, pos: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    while buf.len() < len {
        let filled = buf.len();
        // pread straight into spare capacity: fetches read megabytes, and zeroing them first
        // cost about as much as the read itself.
        // SAFETY: pointer and length stay inside the allocation's capacity; set_len below
        // only covers bytes the kernel reports as written.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                buf.as_mut_ptr().add(filled) as *mut libc::c_void,
                len - filled,
                (pos + filled as u64) as libc::off_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        // SAFETY: pread initialised these bytes.
        unsafe { buf.set_len(filled + n as usize) };
    }
    Ok(buf)
}

/// Reads the header of the batch at `pos`, if a plausible complete one lies within `limit`.
pub(crate) fn header_at(file: &File, pos: u64, limit: u64) -> io::Result<Option<BatchHeader>> {
    if pos + HEADER_LEN as u64 > limit {
        return Ok(None);
    }
    let buf = read_at(file, pos, HEADER_LEN)?;
    Ok(BatchHeader::parse(&buf).filter(|h| {
        h.magic == 2
            && h.batch_length >= (HEADER_LEN - LOG_OVERHEAD) as i32
            && pos + h.size() as u64 <= limit
    }))
}

fn plausible_successor(h: &BatchHeader, base_offset: i64, prev_next: i64) -> bool {
    h.base_offset >= prev_next.max(base_offset) && h.last_offset_delta >= 0
}

/// How much of the active segment's end is CRC-checked at every start-up.
const TAIL_CHECK_BYTES: u64 = 4 << 20;

/// Checks the CRCs of the batches in the last `TAIL_CHECK_BYTES`; drops the first bad batch
/// and everything after it. Returns the new valid length.
fn check_tail_crcs(
    file: &File,
    len: u64,
    headers: &mut Vec<(u64, BatchHeader)>,
) -> io::Result<u64> {
    let from = len.saturating_sub(TAIL_CHECK_BYTES);
    let first = headers.partition_point(|(pos, _)| *pos < from);
    for i in first..headers.len() {
        let (pos, h) = headers[i];
        let batch = read_at(file, pos, h.size())?;
        if batch.len() < h.size() || !crc_matches(&batch, &h) {
            headers.truncate(i);
            return Ok(pos);
        }
    }
    Ok(len)
}

#[cfg(test)]
thread_local! {
    /// Batch headers this thread's segment opens walked (tests check what start-up reads).
    pub(crate) static HEADERS_WALKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Walks headers only (one small read per batch) from `pos`, where a batch at or after
/// offset `next` starts; returns the length of the valid prefix.
fn scan_headers(
    file: &File,
    file_len: u64,
    mut pos: u64,
    mut next: i64,
    out: &mut Vec<(u64, BatchHeader)>,
) -> io::Result<u64> {
    let base_offset = next;
    while let Some(h) = header_at(file, pos, file_len)? {
        if !plausible_successor(&h, base_offset, next) {
            break;
        }
        #[cfg(test)]
        HEADERS_WALKED.with(|n| n.set(n.get() + 1));
        next = h.last_offset() + 1;
        out.push((pos, h));
        pos += h.size() as u64;
    }
    Ok(pos)
}

/// Reads the whole segment checking every CRC; returns the length of the valid prefix.
fn scan_full(file: &File, base_offset: i64, out: &mut Vec<(u64, BatchHeader)>) -> io::Result<u64> {
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut pos = 0u64;
    let mut next = base_offset;
    let mut buf = Vec::new();
    loop {
        let mut head = [0u8; HEADER_LEN];
        if read_full(&mut reader, &mut head)? < HEADER_LEN {
            break;
        }
        let Some(h) = BatchHeader::parse(&head) else {
            break;
        };
        if h.magic != 2
            || h.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32
            || !plausible_successor(&h, base_offset, next)
        {
            break;
        }
        buf.clear();
        buf.extend_from_slice(&head);
        buf.resize(h.size(), 0);
        if read_full(&mut reader, &mut buf[HEADER_LEN..])? < h.size() - HEADER_LEN {
            break;
        }
        if !crc_matches(&buf, &h) {
            break;
        }
        next = h.last_offset() + 1;
        out.push((pos, h));
        pos += h.size() as u64;
    }
    Ok(pos)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{assign_offset, tests::make_batch};
    use crate::log::validator::batch_headers;

    fn append_n(seg: &mut Segment, batches: usize) {
        for _ in 0..batches {
            let mut b = make_batch(4, None);
            assign_offset(&mut b, seg.next_offset, 0);
            let h = batch_headers(&b, 1 << 20).unwrap();
            seg.append(&[&b], &h, 200).unwrap();
        }
    }

    #[test]
    fn reopen_truncates_corrupt_tail_and_rebuilds_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = Segment::create(dir.path(), 0, 0).unwrap();
        append_n(&mut seg, 10);
        seg.flush(true).unwrap();
        let good_size = seg.size;
        drop(seg);
        // A torn write: half a batch at the end.
        let mut half = make_batch(4, None);
        assign_offset(&mut half, 40, 0);
        let path = dir.path().join(file_name(0, "log"));
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&half[..half.len() / 2]).unwrap();
        fs::remove_file(dir.path().join(file_name(0, "index"))).unwrap();
        let mut seen = 0;
        let seg = Segment::open(dir.path(), 0, Recovery::Headers, 200, 0, &mut |_| seen += 1)
            .unwrap()
            .0;
        assert_eq!(seen, 10);
        assert_eq!(seg.size, good_size);
        assert_eq!(seg.next_offset, 40);
        assert!(seg.position_for_offset(39) > 0);
        drop(seg);
        // A complete batch with a flipped byte is caught by the full (CRC) scan.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        let mut bad = half.clone();
        let n = bad.len();
        bad[n - 2] ^= 0x55;
        f.write_all(&bad).unwrap();
        let (seg, _) = Segment::open(dir.path(), 0, Recovery::Full, 200, 0, &mut |_| {}).unwrap();
        assert_eq!(seg.size, good_size);
        assert_eq!(fs::metadata(&path).unwrap().len(), good_size);
    }
}
