use super::*;
use crate::log::batch::tests::make_batch;
use crate::log::codec;

use crate::log::testing::{batch, zigzag, TestRecord};

fn record(
    offset_delta: i64,
    ts_delta: i64,
    key: Option<&[u8]>,
    header_count: Option<i64>,
) -> Vec<u8> {
    TestRecord {
        offset_delta,
        ts_delta,
        key,
        header_count,
        ..Default::default()
    }
    .encode()
}

const NOW: i64 = 1_700_000_000_000;

fn policy() -> Policy {
    Policy {
        max_message_bytes: 1 << 20,
        compacted: false,
        timestamps: Some(TimestampBounds {
            now_ms: NOW,
            before_max_ms: i64::MAX,
            after_max_ms: i64::MAX,
        }),
        max_decompressed_bytes: 1 << 20,
        allow_zstd: true,
    }
}

fn check(data: Vec<u8>, p: &Policy) -> Result<(Bytes, Vec<BatchHeader>), BatchError> {
    validate(Bytes::from(data), p)
}

fn section(n: i64) -> Vec<u8> {
    (0..n)
        .flat_map(|i| record(i, i, Some(b"k"), None))
        .collect()
}

#[test]
fn accepts_well_formed_batches_of_every_codec() {
    let plain = make_batch(50, None);
    check(plain.clone(), &policy()).unwrap();
    let h = batch_headers(&plain, 1 << 20).unwrap()[0];
    for id in 1..=4u8 {
        let other = codec::recompress(&h, &plain, id, 1 << 20).unwrap();
        let (_, hs) = check(other, &policy()).unwrap();
        assert_eq!(hs[0].compression(), id);
    }
}

#[test]
fn garbage_records_with_a_valid_crc_are_refused() {
    let garbage: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
    let err = check(batch(&garbage, 0, 3, NOW, NOW), &policy()).unwrap_err();
    assert_eq!(err.error(), ResponseError::InvalidRecord, "{err}");
}

#[test]
fn count_and_offset_delta_mismatches_are_refused() {
    // Header says 3, section holds 2; and holds 4.
    let err = check(batch(&section(2), 0, 3, NOW, NOW + 1), &policy()).unwrap_err();
    assert_eq!(err.error(), ResponseError::InvalidRecord);
    let err = check(batch(&section(4), 0, 3, NOW, NOW + 2), &policy()).unwrap_err();
    assert!(err.to_string().contains("bytes remain"), "{err}");
    // Offset delta -1 on the second record.
    let mut s = record(0, 0, Some(b"k"), None);
    s.extend(record(-1, 0, Some(b"k"), None));
    let err = check(batch(&s, 0, 2, NOW, NOW), &policy()).unwrap_err();
    assert!(err.to_string().contains("offset delta -1"), "{err}");
}

#[test]
fn hostile_header_count_is_refused_without_allocating() {
    let mut p = policy();
    p.compacted = true;
    let s = record(0, 0, Some(b"k"), Some(i32::MAX as i64));
    let err = check(batch(&s, 0, 1, NOW, NOW), &p).unwrap_err();
    assert_eq!(err.error(), ResponseError::InvalidRecord);
    assert!(err.to_string().contains("header count"), "{err}");
}

#[test]
fn unknown_codecs_and_early_zstd_are_refused() {
    let s = section(1);
    for id in 5..=7u8 {
        let err = check(batch(&s, id, 1, NOW, NOW), &policy()).unwrap_err();
        assert_eq!(err.error(), ResponseError::CorruptMessage);
    }
    let mut z = bytes::BytesMut::new();
    codec::compress(4, &s, &mut z).unwrap();
    let mut p = policy();
    p.allow_zstd = false;
    let err = check(batch(&z, 4, 1, NOW, NOW), &p).unwrap_err();
    assert_eq!(err.error(), ResponseError::UnsupportedCompressionType);
}

#[test]
fn decompression_bombs_stop_at_the_cap() {
    // 64 MiB of one record's worth of zeros compresses to a few KiB with every codec.
    let mut value = Vec::new();
    let big = 64 << 20;
    let mut body = vec![0u8];
    zigzag(0, &mut body);
    zigzag(0, &mut body);
    zigzag(1, &mut body);
    body.push(b'k');
    zigzag(big as i64, &mut body);
    value.resize(big, 0);
    body.extend_from_slice(&value);
    zigzag(0, &mut body);
    let mut rec = Vec::new();
    zigzag(body.len() as i64, &mut rec);
    rec.extend_from_slice(&body);
    for id in 1..=4u8 {
        let mut z = bytes::BytesMut::new();
        codec::compress(id, &rec, &mut z).unwrap();
        // Snappy tops out near 21:1; the others shrink zeros far more.
        assert!(z.len() < 4 << 20, "codec {id}: {}", z.len());
        let mut capped = policy();
        capped.max_message_bytes = 8 << 20;
        let err = check(batch(&z, id, 1, NOW, NOW), &capped).unwrap_err();
        assert_eq!(err, BatchError::DecompressedTooLarge(1 << 20), "codec {id}");
        // The same batch passes when the cap allows it.
        let mut p = policy();
        p.max_decompressed_bytes = 128 << 20;
        p.max_message_bytes = 8 << 20;
        check(batch(&z, id, 1, NOW, NOW), &p).unwrap();
    }
}

#[test]
fn compacted_topics_need_keys_and_report_each_record() {
    let mut p = policy();
    p.compacted = true;
    let mut s = record(0, 0, Some(b"k"), None);
    s.extend(record(1, 0, None, None));
    s.extend(record(2, 0, None, None));
    let err = check(batch(&s, 0, 3, NOW, NOW), &p).unwrap_err();
    assert_eq!(err.error(), ResponseError::InvalidRecord);
    let idx: Vec<i32> = err.record_errors().iter().map(|r| r.index).collect();
    assert_eq!(idx, vec![1, 2]);
}

#[test]
fn timestamps_are_checked_per_record() {
    let mut p = policy();
    p.timestamps = Some(TimestampBounds {
        now_ms: NOW,
        before_max_ms: 1000,
        after_max_ms: 1000,
    });
    let mut s = record(0, 0, Some(b"k"), None);
    s.extend(record(1, 5_000, Some(b"k"), None));
    let err = check(batch(&s, 0, 2, NOW, NOW + 5_000), &p).unwrap_err();
    assert_eq!(err.error(), ResponseError::InvalidTimestamp);
    assert_eq!(err.record_errors()[0].index, 1);
    let err = check(batch(&section(1), 0, 1, NOW - 5_000, NOW - 5_000), &p).unwrap_err();
    assert_eq!(err.error(), ResponseError::InvalidTimestamp);
    check(batch(&section(1), 0, 1, NOW + 900, NOW + 900), &p).unwrap();
}

#[test]
fn a_wrong_max_timestamp_is_corrected() {
    let (bytes, hs) = check(batch(&section(3), 0, 3, NOW, NOW + 99), &policy()).unwrap();
    assert_eq!(hs[0].max_timestamp, NOW + 2);
    let again = batch_headers(&bytes, 1 << 20).unwrap();
    assert_eq!(again[0].max_timestamp, NOW + 2);
}

#[test]
fn one_bad_batch_refuses_the_whole_set() {
    let mut data = make_batch(3, None);
    data.extend(batch(&section(2), 0, 3, NOW, NOW));
    assert!(check(data, &policy()).is_err());
}
