//! Compression codecs of record batches: decompressing a records section, compressing one,
//! and re-encoding a whole batch with another codec (topic `compression.type`).

use std::cell::RefCell;
use std::io::{self, Read};

use bytes::{BufMut, BytesMut};
use kafka_protocol::compression::{self as codec, Compressor};

use super::batch::{BatchHeader, HEADER_LEN};
use super::record::FormatError;

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

/// The batch's records section, decompressed into memory up to `cap` bytes.
pub(crate) fn records_section(
    h: &BatchHeader,
    raw: &[u8],
    cap: u64,
) -> Result<Vec<u8>, FormatError> {
    let body = &raw[HEADER_LEN..];
    if h.compression() == 0 {
        return Ok(body.to_vec());
    }
    let mut out = Vec::new();
    with_reader(h.compression(), body, |r| {
        r.take(cap + 1).read_to_end(&mut out)
    })?
    .map_err(|e| FormatError::Codec(e.to_string()))?;
    if out.len() as u64 > cap {
        return Err(FormatError::TooLarge(cap));
    }
    Ok(out)
}

/// Runs `f` over a streaming decompressor of a compressed records section. Decoders keep
/// bounded state (zstd's window is capped; snappy blocks are checked against the cap before
/// allocation). zstd reuses one decoder context per thread: a fresh context allocates its
/// window buffers on every batch, which cost a fifth of produce throughput on zstd topics.
pub(crate) fn with_reader<T>(
    codec_id: u8,
    data: &[u8],
    f: impl FnOnce(&mut dyn Read) -> T,
) -> Result<T, FormatError> {
    let codec_error = |e: io::Error| FormatError::Codec(e.to_string());
    match codec_id {
        0 => Ok(f(&mut { data })),
        1 => Ok(f(&mut flate2::read::MultiGzDecoder::new(data))),
        2 => Ok(f(&mut SnappyReader::new(data))),
        3 => Ok(f(&mut lz4::Decoder::new(data).map_err(codec_error)?)),
        4 => ZSTD_CONTEXT.with(|cell| match cell.try_borrow_mut() {
            Ok(mut slot) => {
                let ctx = match slot.as_mut() {
                    Some(ctx) => ctx,
                    None => slot.insert(zstd_context()?),
                };
                let out = f(&mut zstd::stream::read::Decoder::with_context(data, ctx));
                Ok(out)
            }
            // Re-entered on this thread (a decompressor inside a decompressor): use a fresh one.
            Err(_) => {
                let mut ctx = zstd_context()?;
                let out = f(&mut zstd::stream::read::Decoder::with_context(
                    data, &mut ctx,
                ));
                Ok(out)
            }
        }),
        other => Err(FormatError::Codec(format!(
            "unknown compression codec {other}"
        ))),
    }
}

thread_local! {
    /// This thread's zstd decoder context, created on first use.
    static ZSTD_CONTEXT: RefCell<Option<zstd::zstd_safe::DCtx<'static>>> = const { RefCell::new(None) };
}

/// A zstd decoder context whose window is capped: a frame may declare up to 2 GiB, producers
/// use at most a few MiB.
fn zstd_context() -> Result<zstd::zstd_safe::DCtx<'static>, FormatError> {
    let mut ctx = zstd::zstd_safe::DCtx::create();
    ctx.set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(
        ZSTD_WINDOW_LOG_MAX,
    ))
    .map_err(|code| {
        FormatError::Codec(format!("zstd: {}", zstd::zstd_safe::get_error_name(code)))
    })?;
    Ok(ctx)
}

/// Largest zstd window accepted (16 MiB), bounding the decoder's memory.
const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// Kafka's snappy: xerial framing (a magic header, then length-prefixed raw blocks) as the Java
/// client writes it, or one raw block as librdkafka writes it.
struct SnappyReader<'a> {
    rest: &'a [u8],
    block: Vec<u8>,
    at: usize,
    framed: bool,
    started: bool,
}

const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_LEN: usize = 16;
/// Largest decompressed snappy block accepted; xerial blocks are 32 KiB, raw librdkafka
/// blocks hold a whole batch (bounded by its producer's batch size).
const SNAPPY_BLOCK_MAX: usize = 256 << 20;
/// Most a snappy block can expand: its densest element, a copy with a 2-byte offset, takes 3
/// bytes and writes at most 64, so a block never decompresses to more than 64/3 of its size.
const SNAPPY_MAX_EXPANSION: usize = 22;

impl<'a> SnappyReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        let framed = data.len() >= XERIAL_HEADER_LEN && data.starts_with(XERIAL_MAGIC);
        SnappyReader {
            rest: if framed {
                &data[XERIAL_HEADER_LEN..]
            } else {
                data
            },
            block: Vec::new(),
            at: 0,
            framed,
            started: false,
        }
    }

    /// Decompresses the next block; `false` when there is none.
    fn next_block(&mut self) -> std::io::Result<bool> {
        let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
        let block = if self.framed {
            if self.rest.is_empty() {
                return Ok(false);
            }
            if self.rest.len() < 4 {
                return Err(bad("truncated xerial snappy block length".into()));
            }
            let len = u32::from_be_bytes(self.rest[..4].try_into().expect("4 bytes")) as usize;
            if len > self.rest.len() - 4 {
                return Err(bad(format!(
                    "xerial snappy block of {len} bytes is truncated"
                )));
            }
            let (block, rest) = self.rest[4..].split_at(len);
            self.rest = rest;
            block
        } else {
            if self.started {
                return Ok(false);
            }
            std::mem::take(&mut self.rest)
        };
        self.started = true;
        let len = snap::raw::decompress_len(block).map_err(|e| bad(e.to_string()))?;
        // The length is the sender's claim and sizes the buffer: hold it to what the block can
        // expand to, or a few bytes claiming 256 MiB allocate (and zero) 256 MiB per batch.
        if len > SNAPPY_BLOCK_MAX || len > block.len().saturating_mul(SNAPPY_MAX_EXPANSION) {
            return Err(bad(format!(
                "snappy block of {} bytes claims {len} bytes",
                block.len()
            )));
        }
        self.block.resize(len, 0);
        let n = snap::raw::Decoder::new()
            .decompress(block, &mut self.block)
            .map_err(|e| bad(e.to_string()))?;
        self.block.truncate(n);
        self.at = 0;
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.block.len() - self.at);
        buf[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
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
pub(crate) fn recompress(
    h: &BatchHeader,
    raw: &[u8],
    codec_id: u8,
    cap: u64,
) -> Result<Vec<u8>, String> {
    let plain = records_section(h, raw, cap).map_err(|e| e.to_string())?;
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
    use crate::log::batch::tests::make_batch;
    use crate::log::validator::batch_headers;
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::records::RecordBatchDecoder;

    /// A raw snappy block is preceded by its decompressed length, which sizes the buffer: a
    /// claim the block cannot hold is refused before anything is allocated (found by the
    /// `records` fuzz target: a 200-byte batch claiming 122 MiB made the broker allocate it).
    #[test]
    fn snappy_length_claims_beyond_the_block_are_refused() {
        let mut bomb = Vec::new();
        // decompress_len's varint: 255 MiB, then a few bytes of "data".
        let mut claim = (255u32 << 20) as u64;
        while claim >= 0x80 {
            bomb.push((claim as u8 & 0x7f) | 0x80);
            claim >>= 7;
        }
        bomb.push(claim as u8);
        bomb.extend_from_slice(&[0x06; 40]);
        let mut out = Vec::new();
        let err = with_reader(2, &bomb, |r| r.read_to_end(&mut out))
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("claims 267386880 bytes"), "{err}");
        assert!(out.capacity() < 1 << 20);
        // Through validation, as a produced batch: CORRUPT_MESSAGE, not a 255 MiB buffer.
        let plain = make_batch(3, None);
        let mut batch = plain[..HEADER_LEN].to_vec();
        batch.extend_from_slice(&bomb);
        let batch_length = (batch.len() - 12) as i32;
        batch[8..12].copy_from_slice(&batch_length.to_be_bytes());
        batch[22] |= 2;
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        let policy = crate::log::validator::Policy {
            max_message_bytes: 1 << 20,
            compacted: false,
            timestamps: None,
            max_decompressed_bytes: 64 << 20,
            allow_zstd: true,
        };
        let err = crate::log::validator::validate(batch.into(), &policy).unwrap_err();
        assert_eq!(err.error(), ResponseError::CorruptMessage);
        assert!(err.to_string().contains("claims 267386880 bytes"), "{err}");
    }

    /// The expansion bound holds for the most compressible input there is.
    #[test]
    fn snappy_blocks_at_the_densest_still_decode() {
        for plain in [
            vec![0u8; 1 << 20],
            vec![b'a'; 100_000],
            b"abcd".repeat(50_000),
        ] {
            let block = snap::raw::Encoder::new().compress_vec(&plain).unwrap();
            assert!(plain.len() <= block.len() * SNAPPY_MAX_EXPANSION);
            let mut out = Vec::new();
            with_reader(2, &block, |r| r.read_to_end(&mut out))
                .unwrap()
                .unwrap();
            assert_eq!(out, plain);
        }
    }

    #[test]
    fn recompression_keeps_records() {
        let plain = make_batch(20, None);
        let h = batch_headers(&plain, 1 << 20).unwrap()[0];
        for id in [1u8, 2, 3, 4, 0] {
            let other = recompress(&h, &plain, id, 1 << 20).unwrap();
            let h2 = batch_headers(&other, 1 << 20).unwrap()[0];
            assert_eq!(h2.compression(), id);
            let back = recompress(&h2, &other, 0, 1 << 20).unwrap();
            assert_eq!(back, plain, "codec {id}");
            let set = RecordBatchDecoder::decode(&mut bytes::Bytes::from(other)).unwrap();
            assert_eq!(set.records.len(), 20);
        }
    }
}
