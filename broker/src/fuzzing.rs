//! Entry points for the fuzz targets (`fuzz/`) and the test that replays their corpus
//! (`tests/fuzz_corpus.rs`). Not part of the broker's API.
//!
//! Each function runs on one input the code the broker runs on it, then checks what must hold
//! whatever the input. Neither panics: a refused input is a [`Verdict::Refused`], and `Err` is a
//! broken invariant (a bug), which the fuzz targets turn into a crash.

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;

use crate::log::batch::{complete_batches, BatchHeader};
use crate::log::validator::{validate, Policy, TimestampBounds};
use crate::log::{codec, record};
use crate::server::bounds;
use crate::server::request::{self, Head};

/// What the broker made of an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted: the request would be handled, or the record set stored (by at least one
    /// policy, for [`records`]).
    Accepted,
    /// Refused, with the reason the broker gives.
    Refused(String),
}

/// One request frame, the bytes after its 4-byte size, read as a connection reads it: API key
/// and version, header, the bounded pre-pass (`server::bounds`), then the codec.
///
/// Invariant: a body the pre-pass accepts and the codec decodes takes the bytes the pre-pass
/// walked, so the pre-pass checked the layout the codec read.
pub fn request(frame: &[u8]) -> Result<Verdict, String> {
    let mut frame = Bytes::copy_from_slice(frame);
    let (api_key, version) = match request::head(&mut frame) {
        Ok(Head::Request {
            api_key, version, ..
        }) => (api_key, version),
        Ok(Head::UnsupportedApiVersions { .. }) => return Ok(Verdict::Accepted),
        Err(reason) => return Ok(Verdict::Refused(reason)),
    };
    let walked = bounds::walk(api_key, version, &frame).ok();
    let before = frame.len();
    match request::body(api_key, version, &mut frame) {
        Ok(_) => {
            let decoded = before - frame.len();
            match walked {
                Some(walked) if walked != decoded && !decodes_tagged_fields(api_key) => Err(format!(
                    "{api_key:?} v{version}: the pre-pass walked {walked} bytes, the codec decoded {decoded}"
                )),
                Some(_) => Ok(Verdict::Accepted),
                None => Err(format!(
                    "{api_key:?} v{version}: decoded a body the pre-pass refused"
                )),
            }
        }
        Err(reason) => Ok(Verdict::Refused(reason)),
    }
}

/// APIs with known tagged fields in the supported versions, which the codec decodes by their
/// own layout rather than skipping by the size the frame gives, as the pre-pass does: on a
/// malformed tagged field the two take different lengths (the fuzzer finds Fetch v12 frames
/// whose `cluster_id` string runs past its tagged field: walked 166 bytes, decoded 175). That is
/// a string read against the bytes present, in the last section of the body: no count escapes
/// the pre-pass, so it is exempt rather than refused.
fn decodes_tagged_fields(api_key: ApiKey) -> bool {
    api_key == ApiKey::Fetch
}

/// The decompression cap of the fuzzed policies: small, so bombs hit it quickly.
const CAP: u64 = 1 << 20;

/// The policies a record set is validated under: plain, compacted with CreateTime bounds,
/// before Produce v7 (no zstd) with the widest bounds, and a tiny decompression cap.
fn policies() -> [Policy; 4] {
    let plain = Policy {
        max_message_bytes: 1 << 20,
        compacted: false,
        timestamps: None,
        max_decompressed_bytes: CAP,
        allow_zstd: true,
    };
    [
        plain.clone(),
        Policy {
            compacted: true,
            timestamps: Some(TimestampBounds {
                now_ms: 1_700_000_000_000,
                before_max_ms: 3_600_000,
                after_max_ms: 3_600_000,
            }),
            ..plain.clone()
        },
        Policy {
            timestamps: Some(TimestampBounds {
                now_ms: 1_700_000_000_000,
                before_max_ms: i64::MAX,
                after_max_ms: i64::MAX,
            }),
            allow_zstd: false,
            ..plain.clone()
        },
        Policy {
            max_decompressed_bytes: 1 << 10,
            ..plain
        },
    ]
}

/// A produced record set, validated as Produce validates it under each of [`policies`], both
/// as sent and with every batch's CRC recomputed (so that mutations get past the CRC to the
/// records). Stored-batch readers (`record::batch_records`, recompression) run over every
/// complete batch too.
///
/// Invariants, for each accepted set: its stored bytes are accepted again, every batch's
/// records read back (`batch_records`) with the count the header claims, and the batch
/// decompressed by recompression validates as an uncompressed batch.
pub fn records(data: &[u8]) -> Result<Verdict, String> {
    let mut fixed = data.to_vec();
    for (at, h) in complete_batches(data).collect::<Vec<_>>() {
        let batch = &mut fixed[at..at + h.size()];
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    let mut verdict = None;
    for input in [data, &fixed[..]] {
        for batch in complete_batches(input) {
            let raw = &input[batch.0..batch.0 + batch.1.size()];
            let _ = record::batch_records(&batch.1, raw, CAP);
        }
        for policy in policies() {
            match validate(Bytes::copy_from_slice(input), &policy) {
                Ok((stored, headers)) => {
                    check_accepted(&stored, &headers, &policy)?;
                    verdict = Some(Verdict::Accepted);
                }
                Err(e) => {
                    verdict.get_or_insert(Verdict::Refused(e.to_string()));
                }
            }
        }
    }
    Ok(verdict.unwrap_or_else(|| Verdict::Refused("no policy ran".into())))
}

fn check_accepted(stored: &Bytes, headers: &[BatchHeader], policy: &Policy) -> Result<(), String> {
    if let Err(e) = validate(stored.clone(), policy) {
        return Err(format!("stored bytes of an accepted set are refused: {e}"));
    }
    let mut pos = 0;
    for h in headers {
        let raw = &stored[pos..pos + h.size()];
        pos += h.size();
        match record::batch_records(h, raw, policy.max_decompressed_bytes) {
            Ok((_, recs)) if recs.len() == h.records_count as usize => {}
            Ok((_, recs)) => {
                return Err(format!(
                    "accepted batch reads back {} records, its header claims {}",
                    recs.len(),
                    h.records_count
                ))
            }
            Err(e) => return Err(format!("accepted batch does not read back: {e}")),
        }
        if h.compression() != 0 {
            let plain = codec::recompress(h, raw, 0, policy.max_decompressed_bytes)
                .map_err(|e| format!("accepted batch does not decompress: {e}"))?;
            let plain_policy = Policy {
                max_message_bytes: usize::MAX,
                ..policy.clone()
            };
            if let Err(e) = validate(Bytes::from(plain), &plain_policy) {
                return Err(format!("accepted batch is refused once decompressed: {e}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod seeds;
