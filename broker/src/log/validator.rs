//! Validation of produced record sets before anything is stored, as Kafka's `LogValidator`.
//!
//! Every batch is checked whole: header, CRC, codec, then every record, walked with the
//! bounded reader of [`super::record`] (compressed batches are decompressed as a stream with
//! an output cap, so neither a claimed count nor a decompression bomb can make the broker
//! allocate). A record set is accepted or refused as a whole: a bad batch stores nothing.

use std::fmt;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::batch::{BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use super::codec;
use super::record::{read_record, FormatError, ReadSource, SliceSource, Source};

/// Per-record errors reported back (Produce v8+ `record_errors`) are capped at this many.
const MAX_RECORD_ERRORS: usize = 100;

/// What a partition accepts: its topic's settings at the time of the append.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// `max.message.bytes`: the largest batch, as sent.
    pub max_message_bytes: usize,
    /// Compacted topics need a key on every record.
    pub compacted: bool,
    /// CreateTime bounds on record timestamps; `None` for LogAppendTime topics.
    pub timestamps: Option<TimestampBounds>,
    /// Largest decompressed records section of one batch.
    pub max_decompressed_bytes: u64,
    /// Produce before v7 cannot carry zstd (Kafka answers UNSUPPORTED_COMPRESSION_TYPE).
    pub allow_zstd: bool,
}

/// How far record timestamps may be from the broker's clock (KIP-937).
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimestampBounds {
    pub now_ms: i64,
    /// `message.timestamp.before.max.ms` (and the older `difference.max.ms`).
    pub before_max_ms: i64,
    /// `message.timestamp.after.max.ms` (and the older `difference.max.ms`).
    pub after_max_ms: i64,
}

/// One record's failure, as Produce v8+ reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecordError {
    /// The record's index within its batch.
    pub index: i32,
    pub message: String,
}

/// Why a produced record set was refused; each maps to a Kafka error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BatchError {
    /// CORRUPT_MESSAGE: bad lengths, CRC, or undecodable compressed data.
    Corrupt(String),
    /// MESSAGE_TOO_LARGE: (size, limit).
    TooLarge(usize, usize),
    /// MESSAGE_TOO_LARGE: the batch decompresses to more than the cap.
    DecompressedTooLarge(u64),
    /// INVALID_RECORD: structurally invalid records or an unacceptable batch.
    InvalidRecord(String),
    /// UNSUPPORTED_FOR_MESSAGE_FORMAT: magic other than 2.
    Unsupported(i8),
    /// UNSUPPORTED_COMPRESSION_TYPE.
    UnsupportedCompression(String),
    /// Records refused one by one (INVALID_RECORD or INVALID_TIMESTAMP), with their indexes.
    Records {
        error: ResponseError,
        message: String,
        records: Vec<RecordError>,
    },
}

impl BatchError {
    /// The Kafka error for this failure.
    pub fn error(&self) -> ResponseError {
        match self {
            BatchError::Corrupt(_) => ResponseError::CorruptMessage,
            BatchError::TooLarge(..) | BatchError::DecompressedTooLarge(_) => {
                ResponseError::MessageTooLarge
            }
            BatchError::InvalidRecord(_) => ResponseError::InvalidRecord,
            BatchError::Unsupported(_) => ResponseError::UnsupportedForMessageFormat,
            BatchError::UnsupportedCompression(_) => ResponseError::UnsupportedCompressionType,
            BatchError::Records { error, .. } => *error,
        }
    }

    /// The Kafka error code for this failure.
    pub fn code(&self) -> i16 {
        self.error().code()
    }

    /// The refused records (empty unless records were refused one by one).
    pub fn record_errors(&self) -> &[RecordError] {
        match self {
            BatchError::Records { records, .. } => records,
            _ => &[],
        }
    }
}

impl fmt::Display for BatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BatchError::Corrupt(m) => write!(f, "corrupt record batch: {m}"),
            BatchError::TooLarge(size, max) => write!(
                f,
                "record batch of {size} bytes exceeds max.message.bytes {max}"
            ),
            BatchError::DecompressedTooLarge(cap) => write!(
                f,
                "record batch decompresses to more than {cap} bytes (message.max.decompressed.bytes)"
            ),
            BatchError::InvalidRecord(m) => write!(f, "invalid record: {m}"),
            BatchError::Unsupported(magic) => {
                write!(f, "record batch magic {magic} is not supported (need 2)")
            }
            BatchError::UnsupportedCompression(m) => f.write_str(m),
            BatchError::Records { message, .. } => f.write_str(message),
        }
    }
}

impl From<FormatError> for BatchError {
    fn from(e: FormatError) -> Self {
        match e {
            FormatError::Malformed(m) => BatchError::InvalidRecord(m),
            FormatError::TooLarge(cap) => BatchError::DecompressedTooLarge(cap),
            FormatError::Codec(m) => BatchError::Corrupt(m),
        }
    }
}

/// Checks the framing of every batch in `data` (header, lengths, CRC) without reading
/// records; returns the headers. The storage layer uses it on bytes it wrote itself.
pub(crate) fn batch_headers(
    data: &[u8],
    max_message_bytes: usize,
) -> Result<Vec<BatchHeader>, BatchError> {
    if data.is_empty() {
        return Err(BatchError::InvalidRecord("empty record set".into()));
    }
    let mut headers = Vec::with_capacity(1);
    let mut pos = 0;
    while pos < data.len() {
        let rest = &data[pos..];
        if rest.len() >= 17 && rest[16] as i8 != 2 {
            return Err(BatchError::Unsupported(rest[16] as i8));
        }
        let header = BatchHeader::parse(rest)
            .ok_or_else(|| BatchError::Corrupt(format!("{} trailing bytes", rest.len())))?;
        if header.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32 {
            return Err(BatchError::Corrupt(format!(
                "batch length {} is below the header size",
                header.batch_length
            )));
        }
        let size = header.size();
        if size > max_message_bytes {
            return Err(BatchError::TooLarge(size, max_message_bytes));
        }
        if size > rest.len() {
            return Err(BatchError::Corrupt(format!(
                "batch length {} but only {} bytes present",
                size,
                rest.len()
            )));
        }
        if !super::batch::crc_matches(&rest[..size], &header) {
            return Err(BatchError::Corrupt("CRC-32C mismatch".into()));
        }
        headers.push(header);
        pos += size;
    }
    Ok(headers)
}

/// Validates a produced record set: every batch and every record in it. Returns the bytes to
/// store (rewritten only when a batch's max timestamp disagreed with its records, which Kafka
/// corrects too) and a header per batch.
pub(crate) fn validate(
    data: Bytes,
    policy: &Policy,
) -> Result<(Bytes, Vec<BatchHeader>), BatchError> {
    let mut headers = batch_headers(&data, policy.max_message_bytes)?;
    let mut fix = false;
    let mut pos = 0;
    for h in headers.iter_mut() {
        let raw = &data[pos..pos + h.size()];
        if let Some(max_ts) = validate_batch(h, raw, policy)? {
            h.max_timestamp = max_ts;
            fix = true;
        }
        pos += h.size();
    }
    if !fix {
        return Ok((data, headers));
    }
    let mut owned = data.to_vec();
    let mut pos = 0;
    for h in &headers {
        super::batch::set_max_timestamp(&mut owned[pos..pos + h.size()], h.max_timestamp);
        pos += h.size();
    }
    Ok((Bytes::from(owned), headers))
}

/// Checks one batch's header fields and records; returns the records' real max timestamp
/// when the header's disagrees with it.
fn validate_batch(h: &BatchHeader, raw: &[u8], policy: &Policy) -> Result<Option<i64>, BatchError> {
    if h.records_count <= 0 || h.last_offset_delta != h.records_count - 1 {
        return Err(BatchError::InvalidRecord(format!(
            "record count {} does not match last offset delta {}",
            h.records_count, h.last_offset_delta
        )));
    }
    if h.is_control() {
        return Err(BatchError::InvalidRecord(
            "clients may not produce control batches".into(),
        ));
    }
    let body = &raw[HEADER_LEN..];
    match h.compression() {
        0 => walk(h, &mut SliceSource::new(body), policy),
        4 if !policy.allow_zstd => Err(BatchError::UnsupportedCompression(
            "zstd needs Produce v7 or later".into(),
        )),
        id @ 1..=4 => codec::with_reader(id, body, |reader| {
            walk(
                h,
                &mut ReadSource::new(reader, policy.max_decompressed_bytes),
                policy,
            )
        })?,
        other => Err(BatchError::Corrupt(format!(
            "unknown compression codec id {other}"
        ))),
    }
}

/// Walks every record of a batch, checking framing, offsets, keys and timestamps.
fn walk<S: Source>(
    h: &BatchHeader,
    src: &mut S,
    policy: &Policy,
) -> Result<Option<i64>, BatchError> {
    let mut errors: Vec<RecordError> = Vec::new();
    let mut error_kind = ResponseError::InvalidRecord;
    let mut refused = 0usize;
    let mut max_ts = i64::MIN;
    let bounds = policy.timestamps;
    for i in 0..h.records_count {
        let r = read_record(src)?;
        if r.offset_delta != i {
            return Err(BatchError::InvalidRecord(format!(
                "record {i} has offset delta {} (expected {i})",
                r.offset_delta
            )));
        }
        let ts = h.base_timestamp.wrapping_add(r.timestamp_delta);
        max_ts = max_ts.max(ts);
        let mut refuse = |kind: ResponseError, message: String| {
            refused += 1;
            error_kind = kind;
            if errors.len() < MAX_RECORD_ERRORS {
                errors.push(RecordError { index: i, message });
            }
        };
        if policy.compacted && r.key.is_none() {
            refuse(
                ResponseError::InvalidRecord,
                "Compacted topic cannot accept message without key".into(),
            );
        } else if let Some(b) = bounds {
            if ts < b.now_ms.saturating_sub(b.before_max_ms) {
                refuse(
                    ResponseError::InvalidTimestamp,
                    format!(
                        "timestamp {ts} is more than message.timestamp.before.max.ms={} before broker time {}",
                        b.before_max_ms, b.now_ms
                    ),
                );
            } else if ts > b.now_ms.saturating_add(b.after_max_ms) {
                refuse(
                    ResponseError::InvalidTimestamp,
                    format!(
                        "timestamp {ts} is more than message.timestamp.after.max.ms={} after broker time {}",
                        b.after_max_ms, b.now_ms
                    ),
                );
            }
        }
    }
    if !src.at_end()? {
        return Err(BatchError::InvalidRecord(format!(
            "bytes remain after the batch's {} records",
            h.records_count
        )));
    }
    if refused > 0 {
        let first = errors
            .first()
            .map(|e| e.message.clone())
            .unwrap_or_default();
        return Err(BatchError::Records {
            error: error_kind,
            message: format!("{refused} of {} records refused: {first}", h.records_count),
            records: errors,
        });
    }
    // CreateTime batches must carry their records' largest timestamp, which retention and the
    // time index trust; LogAppendTime batches get the broker's time on append anyway.
    let wrong = bounds.is_some() && !h.is_log_append_time() && max_ts != h.max_timestamp;
    Ok(wrong.then_some(max_ts))
}

#[cfg(test)]
mod tests;
