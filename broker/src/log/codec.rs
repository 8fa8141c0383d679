//! Compression codecs of record batches: decompressing a records section, compressing one,
//! and re-encoding a whole batch with another codec (topic `compression.type`).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{self as codec, Compressor, Decompressor};

use super::batch::{BatchHeader, HEADER_LEN};

/// The codec id for a `compression.type` value; `None` for `producer` (keep what was sent).
pub(crate) fn codec_id(compression_type: &str) -> Option<u8> {
    match compression_type {
        "uncompressed" => Some(0),
        "gzip" => Some(1),
        "snappy" => Some(2),
        "lz4" => Some(3),
        "zstd" => Some(4),
        _ => None,
    }
}

/// The batch's records section, decompressed; `None` (logged) when it cannot be.
pub(crate) fn records_section(h: &BatchHeader, raw: &Bytes) -> Option<Bytes> {
    decompress(h.compression(), raw.slice(HEADER_LEN..))
        .map_err(|e| tracing::warn!(error = %e, "cannot decompress a record batch"))
        .ok()
}

fn decompress(codec_id: u8, mut data: Bytes) -> Result<Bytes, String> {
    let all = |b: &mut Bytes| Ok(b.copy_to_bytes(b.remaining()));
    match codec_id {
        0 => Ok(data),
        1 => codec::Gzip::decompress(&mut data, all),
        2 => codec::Snappy::decompress(&mut data, all),
        3 => codec::Lz4::decompress(&mut data, all),
        4 => codec::Zstd::decompress(&mut data, all),
        other => return Err(format!("unknown compression codec {other}")),
    }
    .map_err(|e| e.to_string())
}

/// Appends `plain` (a records section) compressed with `codec_id` to `out`.
pub(crate) fn compress(codec_id: u8, plain: &[u8], out: &mut BytesMut) -> Result<(), String> {
    let fill = |b: &mut BytesMut| {
        b.put_slice(plain);
        Ok(())
    };
    match codec_id {
        1 => codec::Gzip::compress(out, fill),
        2 => codec::Snappy::compress(out, fill),
        3 => codec::Lz4::compress(out, fill),
        4 => codec::Zstd::compress(out, fill),
        _ => {
            out.put_slice(plain);
            Ok(())
        }
    }
    .map_err(|e| e.to_string())
}

/// The same batch with its records section in `codec_id`: codec bits, length and CRC change.
pub(crate) fn recompress(h: &BatchHeader, raw: &[u8], codec_id: u8) -> Result<Vec<u8>, String> {
    let plain = decompress(h.compression(), Bytes::copy_from_slice(&raw[HEADER_LEN..]))?;
    let mut body = BytesMut::new();
    compress(codec_id, &plain, &mut body)?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&raw[..HEADER_LEN]);
    out.extend_from_slice(&body);
    let batch_length = (out.len() - 12) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = (h.attributes & !0x07) | codec_id as i16;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::{tests::make_batch, validate_record_set};
    use kafka_protocol::records::RecordBatchDecoder;

    #[test]
    fn recompression_keeps_records() {
        let plain = make_batch(20, None);
        let h = validate_record_set(&plain, 1 << 20).unwrap()[0];
        for id in [1u8, 2, 3, 4, 0] {
            let other = recompress(&h, &plain, id).unwrap();
            let h2 = validate_record_set(&other, 1 << 20).unwrap()[0];
            assert_eq!(h2.compression(), id);
            let back = recompress(&h2, &other, 0).unwrap();
            assert_eq!(back, plain, "codec {id}");
            let set = RecordBatchDecoder::decode(&mut Bytes::from(other)).unwrap();
            assert_eq!(set.records.len(), 20);
        }
    }
}
