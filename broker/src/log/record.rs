//! The records inside a batch (magic v2): a bounded walker over a records section.
//!
//! Every length the format carries is checked against the bytes its record actually has
//! before anything is skipped, and nothing is allocated by what a length claims: the walker
//! reads fields one at a time from a [`Source`], either a slice (uncompressed batches, the hot
//! path) or a decompressing reader with a hard output cap. It reports positions, not copies,
//! so the cleaner can slice a decompressed section and validation can stream a compressed one.

use std::io::{self, Read};

use super::batch::BatchHeader;

/// Why a records section is not well formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FormatError {
    /// The bytes do not follow the record format (Kafka: `InvalidRecordException`).
    Malformed(String),
    /// The decompressed section is larger than the cap.
    TooLarge(u64),
    /// The compressed data cannot be decompressed.
    Codec(String),
}

impl std::fmt::Display for FormatError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FormatError::Malformed(m) => f.write_str(m),
            FormatError::TooLarge(cap) => {
                write!(f, "decompressed records exceed {cap} bytes")
            }
            FormatError::Codec(m) => write!(f, "cannot decompress records: {m}"),
        }
    }
}

#[cold]
fn malformed(what: impl Into<String>) -> FormatError {
    FormatError::Malformed(what.into())
}

#[cold]
#[inline(never)]
fn ended() -> FormatError {
    malformed("records section ends inside a record")
}

/// A forward-only byte stream with a position.
pub(crate) trait Source {
    /// Bytes consumed so far.
    fn pos(&self) -> u64;
    /// The next byte; an error at the end.
    fn byte(&mut self) -> Result<u8, FormatError>;
    /// Skips `n` bytes; an error if fewer remain.
    fn skip(&mut self, n: u64) -> Result<(), FormatError>;
    /// Whether every byte was consumed.
    fn at_end(&mut self) -> Result<bool, FormatError>;
    /// The next record when it is well formed and the source can check it in one pass over
    /// contiguous bytes; `None` (nothing consumed) sends the caller down the general path,
    /// which also explains what is wrong.
    #[inline(always)]
    fn well_formed_record(&mut self) -> Option<RecordMeta> {
        None
    }
}

/// An uncompressed records section.
pub(crate) struct SliceSource<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> SliceSource<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        SliceSource { buf, pos: 0 }
    }
}

impl Source for SliceSource<'_> {
    #[inline]
    fn pos(&self) -> u64 {
        self.pos as u64
    }

    #[inline(always)]
    fn byte(&mut self) -> Result<u8, FormatError> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => Err(ended()),
        }
    }

    #[inline]
    fn skip(&mut self, n: u64) -> Result<(), FormatError> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err(malformed("records section ends inside a record"));
        }
        self.pos += n as usize;
        Ok(())
    }

    fn at_end(&mut self) -> Result<bool, FormatError> {
        Ok(self.pos == self.buf.len())
    }

    #[inline(always)]
    fn well_formed_record(&mut self) -> Option<RecordMeta> {
        let r = scan_record(self.buf, self.pos)?;
        self.pos = r.end as usize;
        Some(r)
    }
}

/// A zigzag varint of at most 5 bytes at `*pos` in `buf`, for the one-pass record scan.
#[inline(always)]
fn slice_varint(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut raw: u64 = 0;
    for i in 0..5 {
        let b = *buf.get(*pos)?;
        *pos += 1;
        raw |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            let v = ((raw >> 1) as i64) ^ -((raw & 1) as i64);
            return (v >= i32::MIN as i64 && v <= i32::MAX as i64).then_some(v);
        }
    }
    None
}

/// The record at `start` if every field is well formed and fits its size; `None` otherwise
/// (then `read_record`'s general path finds and names the problem). Timestamp deltas longer
/// than 5 bytes also take the general path.
#[inline(always)]
fn scan_record(buf: &[u8], start: usize) -> Option<RecordMeta> {
    let mut pos = start;
    let size = slice_varint(buf, &mut pos)?;
    if size < 0 {
        return None;
    }
    let end = pos.checked_add(size as usize)?;
    if end > buf.len() {
        return None;
    }
    let rec = &buf[..end];
    pos += 1; // attributes
    let timestamp_delta = slice_varint(rec, &mut pos)?;
    let offset_delta = slice_varint(rec, &mut pos)? as i32;
    let field = |pos: &mut usize| -> Option<Option<(u64, u32)>> {
        let len = slice_varint(rec, pos)?;
        if len == -1 {
            return Some(None);
        }
        if len < 0 || *pos + len as usize > end {
            return None;
        }
        let at = *pos;
        *pos += len as usize;
        Some(Some((at as u64, len as u32)))
    };
    let key = field(&mut pos)?;
    let value = field(&mut pos)?;
    let headers = slice_varint(rec, &mut pos)?;
    if headers < 0 || pos + 2 * headers as usize > end {
        return None;
    }
    for _ in 0..headers {
        field(&mut pos)??;
        field(&mut pos)?;
    }
    (pos == end).then_some(RecordMeta {
        start: start as u64,
        end: end as u64,
        timestamp_delta,
        offset_delta,
        key,
        value,
    })
}

/// A decompressing reader, buffered, that fails once it has produced more than `cap` bytes.
pub(crate) struct ReadSource<R> {
    reader: R,
    buf: Box<[u8]>,
    lo: usize,
    hi: usize,
    /// Bytes handed out before `buf[lo]`.
    consumed: u64,
    /// Bytes the reader produced in all.
    produced: u64,
    cap: u64,
}

const READ_BUFFER: usize = 64 << 10;

impl<R: Read> ReadSource<R> {
    pub fn new(reader: R, cap: u64) -> Self {
        ReadSource {
            reader,
            buf: vec![0u8; READ_BUFFER].into_boxed_slice(),
            lo: 0,
            hi: 0,
            consumed: 0,
            produced: 0,
            cap,
        }
    }

    /// Refills the buffer; `false` at the end of the stream.
    fn fill(&mut self) -> Result<bool, FormatError> {
        debug_assert_eq!(self.lo, self.hi);
        loop {
            match self.reader.read(&mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.produced += n as u64;
                    if self.produced > self.cap {
                        return Err(FormatError::TooLarge(self.cap));
                    }
                    self.lo = 0;
                    self.hi = n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(FormatError::Codec(e.to_string())),
            }
        }
    }
}

impl<R: Read> Source for ReadSource<R> {
    fn pos(&self) -> u64 {
        self.consumed
    }

    fn byte(&mut self) -> Result<u8, FormatError> {
        if self.lo == self.hi && !self.fill()? {
            return Err(malformed("records section ends inside a record"));
        }
        let b = self.buf[self.lo];
        self.lo += 1;
        self.consumed += 1;
        Ok(b)
    }

    fn skip(&mut self, mut n: u64) -> Result<(), FormatError> {
        while n > 0 {
            if self.lo == self.hi && !self.fill()? {
                return Err(malformed("records section ends inside a record"));
            }
            let step = n.min((self.hi - self.lo) as u64);
            self.lo += step as usize;
            self.consumed += step;
            n -= step;
        }
        Ok(())
    }

    fn at_end(&mut self) -> Result<bool, FormatError> {
        Ok(self.lo == self.hi && !self.fill()?)
    }
}

/// Reads a zigzag varint of at most 5 bytes (Kafka's `readVarint`).
#[inline(always)]
pub(crate) fn varint32<S: Source>(src: &mut S) -> Result<i32, FormatError> {
    // Most varints in a record (attributes aside: deltas, small lengths) are one byte.
    let first = src.byte()?;
    if first & 0x80 == 0 {
        return Ok(((first >> 1) as i32) ^ -((first & 1) as i32));
    }
    // Record sizes and value lengths of typical records take two.
    let second = src.byte()?;
    let raw = (first & 0x7f) as u32 | ((second & 0x7f) as u32) << 7;
    if second & 0x80 == 0 {
        return Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32));
    }
    varint32_rest(src, raw)
}

/// The rest of a varint longer than two bytes.
#[inline(never)]
fn varint32_rest<S: Source>(src: &mut S, mut raw: u32) -> Result<i32, FormatError> {
    for i in 2..5 {
        let b = src.byte()?;
        raw |= ((b & 0x7f) as u32) << (7 * i);
        if b & 0x80 == 0 {
            if i == 4 && b > 0x0f {
                break;
            }
            return Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32));
        }
    }
    Err(malformed("varint longer than 5 bytes"))
}

/// Reads a zigzag varlong of at most 10 bytes (Kafka's `readVarlong`).
#[inline]
pub(crate) fn varint64<S: Source>(src: &mut S) -> Result<i64, FormatError> {
    let mut raw: u64 = 0;
    for i in 0..10 {
        let b = src.byte()?;
        raw |= ((b & 0x7f) as u64) << (7 * i);
        if b & 0x80 == 0 {
            if i == 9 && b > 0x01 {
                break;
            }
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err(malformed("varlong longer than 10 bytes"))
}

/// One record, located within its section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordMeta {
    /// Position of the record's length prefix.
    pub start: u64,
    /// Position just after the record.
    pub end: u64,
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    /// Position and length of the key; `None` for a null key.
    pub key: Option<(u64, u32)>,
    /// Position and length of the value; `None` for a null value (a tombstone).
    pub value: Option<(u64, u32)>,
}

/// Reads a length (-1 = null when `nullable`) and checks it fits before `end`.
#[inline(always)]
fn length<S: Source>(
    src: &mut S,
    end: u64,
    nullable: bool,
    what: &str,
) -> Result<Option<u32>, FormatError> {
    let len = varint32(src)?;
    if len == -1 && nullable {
        return Ok(None);
    }
    if len < 0 {
        return Err(malformed(format!("invalid {what} length {len}")));
    }
    if src.pos() + len as u64 > end {
        return Err(malformed(format!(
            "{what} length {len} runs past the end of its record"
        )));
    }
    Ok(Some(len as u32))
}

/// Reads one record, checking every length against the record's own size.
pub(crate) fn read_record<S: Source>(src: &mut S) -> Result<RecordMeta, FormatError> {
    if let Some(r) = src.well_formed_record() {
        return Ok(r);
    }
    let start = src.pos();
    let size = varint32(src)?;
    if size < 0 {
        return Err(malformed(format!("invalid record size {size}")));
    }
    let end = src.pos() + size as u64;
    let _attributes = src.byte()?;
    let timestamp_delta = varint64(src)?;
    let offset_delta = varint32(src)?;
    if src.pos() > end {
        return Err(malformed("record fields run past its size"));
    }
    let key = match length(src, end, true, "key")? {
        Some(len) => {
            let at = src.pos();
            src.skip(len as u64)?;
            Some((at, len))
        }
        None => None,
    };
    let value = match length(src, end, true, "value")? {
        Some(len) => {
            let at = src.pos();
            src.skip(len as u64)?;
            Some((at, len))
        }
        None => None,
    };
    let headers = varint32(src)?;
    // A header takes at least two bytes (two lengths), so the record's size bounds the count.
    if headers < 0 || src.pos() + 2 * headers as u64 > end {
        return Err(malformed(format!("invalid header count {headers}")));
    }
    for _ in 0..headers {
        let key_len = length(src, end, false, "header key")?.expect("not nullable");
        src.skip(key_len as u64)?;
        if let Some(len) = length(src, end, true, "header value")? {
            src.skip(len as u64)?;
        }
    }
    if src.pos() != end {
        return Err(malformed(format!(
            "record size {size} but its fields take {}",
            src.pos() - (end - size as u64)
        )));
    }
    Ok(RecordMeta {
        start,
        end,
        timestamp_delta,
        offset_delta,
        key,
        value,
    })
}

/// Walks `count` records of an uncompressed section, which must hold exactly those.
pub(crate) fn records_in(section: &[u8], count: i32) -> Result<Vec<RecordMeta>, FormatError> {
    let mut src = SliceSource::new(section);
    // The count is the sender's claim; the section's size bounds what can really be there
    // (a record takes at least 7 bytes).
    let mut out = Vec::with_capacity((count.max(0) as usize).min(section.len() / 7));
    for _ in 0..count {
        out.push(read_record(&mut src)?);
    }
    if !src.at_end()? {
        return Err(malformed(format!(
            "bytes remain after the batch's {count} records"
        )));
    }
    Ok(out)
}

/// A batch's records section (decompressed up to `cap` bytes) and its records, checked as
/// `records_in` does. Readers of stored batches (cleaner, ListOffsets, offsets loader) use it.
pub(crate) fn batch_records(
    h: &BatchHeader,
    raw: &[u8],
    cap: u64,
) -> Result<(Vec<u8>, Vec<RecordMeta>), FormatError> {
    let section = super::codec::records_section(h, raw, cap)?;
    let records = records_in(&section, h.records_count)?;
    Ok((section, records))
}

/// The bytes of a located field (key or value) within its section.
pub(crate) fn field(section: &[u8], at: Option<(u64, u32)>) -> Option<&[u8]> {
    at.map(|(pos, len)| &section[pos as usize..pos as usize + len as usize])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::testing::{zigzag, TestRecord};

    fn record(
        offset_delta: i64,
        key: Option<&[u8]>,
        headers: &[(&[u8], &[u8])],
        size: Option<i64>,
    ) -> Vec<u8> {
        TestRecord {
            offset_delta,
            ts_delta: 5,
            key,
            headers,
            size,
            ..Default::default()
        }
        .encode()
    }

    #[test]
    fn walks_well_formed_records() {
        let mut section = record(0, Some(b"k"), &[(b"h", b"v")], None);
        section.extend(record(1, None, &[], None));
        let recs = records_in(&section, 2).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].offset_delta, 0);
        assert_eq!(recs[0].timestamp_delta, 5);
        let (at, len) = recs[0].key.unwrap();
        assert_eq!(&section[at as usize..(at + len as u64) as usize], b"k");
        assert_eq!(recs[1].key, None);
        assert_eq!(recs[1].end, section.len() as u64);
    }

    #[test]
    fn refuses_malformed_records() {
        let good = record(0, Some(b"k"), &[], None);
        // Count above what is there, and bytes left over below it.
        assert!(records_in(&good, 2).is_err());
        let mut two = good.clone();
        two.extend(record(1, Some(b"k"), &[], None));
        assert!(records_in(&two, 1).is_err());
        // Size prefix too small and too large.
        assert!(records_in(&record(0, Some(b"k"), &[], Some(3)), 1).is_err());
        assert!(records_in(&record(0, Some(b"k"), &[], Some(100)), 1).is_err());
        assert!(records_in(&record(0, Some(b"k"), &[], Some(-5)), 1).is_err());
        // A hostile header count is refused from the record's size, not by trying.
        let mut hostile = record(0, Some(b"k"), &[], None);
        let n = hostile.len();
        hostile.truncate(n - 1);
        zigzag(i32::MAX as i64, &mut hostile);
        hostile[0] = 0; // fix the size prefix below
        let body_len = hostile.len() - 1;
        hostile[0] = (body_len as u8) << 1;
        let err = records_in(&hostile, 1).unwrap_err();
        assert!(err.to_string().contains("header count"), "{err}");
        // Varint longer than 5 bytes.
        assert!(records_in(&[0xff, 0xff, 0xff, 0xff, 0xff, 0x01], 1).is_err());
    }

    #[test]
    fn varints_of_every_length_round_trip() {
        for v in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            -65,
            8191,
            -8192,
            8192,
            1 << 20,
            -(1 << 27),
            i32::MAX as i64,
            i32::MIN as i64,
        ] {
            let mut buf = Vec::new();
            zigzag(v, &mut buf);
            assert_eq!(varint32(&mut SliceSource::new(&buf)), Ok(v as i32), "{v}");
            assert_eq!(varint64(&mut SliceSource::new(&buf)), Ok(v), "{v}");
        }
        let mut too_big = Vec::new();
        zigzag(i32::MAX as i64 + 1, &mut too_big);
        assert!(varint32(&mut SliceSource::new(&too_big)).is_err());
        assert!(varint32(&mut SliceSource::new(&[0x80, 0x80])).is_err());
    }

    /// The one-pass scan of contiguous records accepts nothing the general walker refuses and
    /// locates fields identically (the general path is what `ReadSource` uses).
    #[test]
    fn one_pass_scan_agrees_with_the_general_walker() {
        let base = [
            record(0, Some(b"key"), &[(b"h1", b"v1"), (b"h2", b"")], None),
            record(1, None, &[], None),
        ]
        .concat();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut agreed = 0;
        for round in 0..20_000 {
            let mut buf = base.clone();
            for _ in 0..1 + round % 3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed as usize) % buf.len();
                buf[at] = (seed >> 32) as u8;
            }
            if let Some(fast) = scan_record(&buf, 0) {
                let mut general = ReadSource::new(&buf[..], 1 << 20);
                assert_eq!(read_record(&mut general), Ok(fast), "{buf:?}");
                agreed += 1;
            }
        }
        assert!(
            agreed > 100,
            "too few mutations stayed well formed ({agreed})"
        );
    }

    #[test]
    fn read_source_caps_output() {
        let data = vec![0u8; 200_000];
        let mut src = ReadSource::new(&data[..], 100_000);
        assert_eq!(src.skip(150_000), Err(FormatError::TooLarge(100_000)));
        let mut src = ReadSource::new(&data[..], 1 << 20);
        src.skip(199_999).unwrap();
        assert!(!src.at_end().unwrap());
        assert_eq!(src.byte().unwrap(), 0);
        assert!(src.at_end().unwrap());
        assert!(src.byte().is_err());
    }
}
