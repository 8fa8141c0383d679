//! Record batch (magic v2) headers: parsing, validation and the in-place rewrites the broker makes.
//!
//! The fetch path never decodes records; produce validates them (`validator.rs`) and then
//! rewrites only the base offset and leader epoch (outside the CRC) on the way to disk.

/// Size of the fixed batch header, up to and including the record count.
pub(crate) const HEADER_LEN: usize = 61;
/// Bytes before `batchLength`'s coverage starts: base offset (8) and the length itself (4).
pub(crate) const LOG_OVERHEAD: usize = 12;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

/// The fixed header of one record batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

impl BatchHeader {
    /// Parses the header at the start of `buf`; `None` when fewer than 61 bytes are there.
    pub fn parse(buf: &[u8]) -> Option<Self> {
        if buf.len() < HEADER_LEN {
            return None;
        }
        Some(BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length: be_i32(buf, 8),
            magic: buf[16] as i8,
            crc: u32::from_be_bytes(buf[CRC_OFFSET..CRC_OFFSET + 4].try_into().ok()?),
            attributes: be_i16(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            records_count: be_i32(buf, 57),
        })
    }

    /// Whole size of the batch on disk and on the wire.
    pub fn size(&self) -> usize {
        self.batch_length.max(0) as usize + LOG_OVERHEAD
    }

    /// Offset of the batch's last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> u8 {
        (self.attributes & 0x07) as u8
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_BIT != 0
    }

    /// Whether the batch came from an idempotent producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence number of the last record, wrapping as Kafka does at `i32::MAX`.
    pub fn last_sequence(&self) -> i32 {
        wrapping_seq(self.base_sequence, self.last_offset_delta)
    }
}

/// `seq + delta` with Kafka's wrap-around at `i32::MAX` back to 0.
pub(crate) fn wrapping_seq(seq: i32, delta: i32) -> i32 {
    let sum = seq as i64 + delta as i64;
    if sum > i32::MAX as i64 {
        (sum - i32::MAX as i64 - 1) as i32
    } else {
        sum as i32
    }
}

/// Checks the batch's CRC-32C, which covers everything from the attributes to the end.
pub(crate) fn crc_matches(batch: &[u8], header: &BatchHeader) -> bool {
    batch.len() >= HEADER_LEN && crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]) == header.crc
}

/// Sets the base offset (outside the CRC) and the partition leader epoch (also outside it).
pub(crate) fn assign_offset(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// The first 16 bytes of a stored batch: base offset, batch length and leader epoch.
pub(crate) fn offset_prefix(base_offset: i64, batch_length: i32, leader_epoch: i32) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0..8].copy_from_slice(&base_offset.to_be_bytes());
    p[8..12].copy_from_slice(&batch_length.to_be_bytes());
    p[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
    p
}

/// Stamps a batch with LogAppendTime: the timestamp-type bit and max timestamp change, so the CRC is recomputed.
pub(crate) fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attrs = be_i16(batch, ATTRIBUTES_OFFSET) | TIMESTAMP_TYPE_BIT;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attrs.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Sets the max timestamp (under the CRC, which is recomputed).
pub(crate) fn set_max_timestamp(batch: &mut [u8], max_timestamp: i64) {
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8]
        .copy_from_slice(&max_timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..]);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Walks the complete batches at the start of `buf`, returning each position and header.
pub(crate) fn complete_batches(buf: &[u8]) -> impl Iterator<Item = (usize, BatchHeader)> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let header = BatchHeader::parse(&buf[pos..])?;
        if header.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32
            || pos + header.size() > buf.len()
        {
            return None;
        }
        let at = pos;
        pos += header.size();
        Some((at, header))
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::log::validator::batch_headers;
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    /// Encodes `n` records with keys `k{i}` into one batch, for tests across the crate.
    pub(crate) fn make_batch(n: usize, producer: Option<(i64, i16, i32)>) -> Vec<u8> {
        let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: -1,
                producer_id: pid,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The codec splits batches where offset - sequence changes: keep it constant.
                sequence: if seq < 0 {
                    i as i32 - 1
                } else {
                    seq + i as i32
                },
                timestamp: 1_700_000_000_000 + i as i64,
                key: Some(format!("k{i}").into_bytes().into()),
                value: Some(format!("value-{i}").into_bytes().into()),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        buf.to_vec()
    }

    #[test]
    fn parses_and_validates_a_batch() {
        let batch = make_batch(3, None);
        let headers = batch_headers(&batch, 1 << 20).unwrap();
        assert_eq!(headers.len(), 1);
        assert_eq!(headers[0].records_count, 3);
        assert_eq!(headers[0].last_offset_delta, 2);
        assert_eq!(headers[0].size(), batch.len());
    }

    #[test]
    fn rejects_corruption_size_and_magic() {
        let mut batch = make_batch(3, None);
        let n = batch.len();
        batch[n - 1] ^= 0xff;
        assert_eq!(batch_headers(&batch, 1 << 20).unwrap_err().code(), 2);
        let batch = make_batch(3, None);
        assert_eq!(batch_headers(&batch, 10).unwrap_err().code(), 10);
        assert_eq!(batch_headers(&batch[..30], 1 << 20).unwrap_err().code(), 2);
        let mut batch = make_batch(3, None);
        batch[16] = 1;
        assert_eq!(batch_headers(&batch, 1 << 20).unwrap_err().code(), 43);
    }

    #[test]
    fn rewrites_keep_crc_valid() {
        let mut batch = make_batch(2, None);
        assign_offset(&mut batch, 42, 0);
        set_log_append_time(&mut batch, 123);
        let h = batch_headers(&batch, 1 << 20).unwrap()[0];
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.max_timestamp, 123);
        assert!(h.is_log_append_time());
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        assert_eq!(wrapping_seq(i32::MAX, 1), 0);
        assert_eq!(wrapping_seq(5, 2), 7);
    }
}
