//! The one way records reach a partition's log: client record sets are validated whole
//! before the partition lock is taken, then recompressed to the topic's codec if it asks for
//! one, then appended; broker-built batches (the offsets store) skip record validation.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use crate::config::TimestampType;
use crate::log::batch::BatchHeader;
use crate::log::codec::recompress;
use crate::log::validator::{batch_headers, validate, BatchError, Policy, TimestampBounds};
use crate::log::{AppendError, AppendInfo};
use crate::topics::{is_internal, Partition};

/// What the client's request allows, beyond the topic's own settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientLimits {
    /// The Produce version (zstd needs v7+).
    pub produce_version: i16,
    /// `message.max.decompressed.bytes`.
    pub max_decompressed_bytes: u64,
}

/// A successful append, with the log start offset after it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Appended {
    pub info: AppendInfo,
    pub log_start_offset: i64,
}

impl Partition {
    /// Checks a client's `current_leader_epoch` (KIP-320; -1 = not known) against the log's:
    /// a newer one is UNKNOWN_LEADER_EPOCH, an older one FENCED_LEADER_EPOCH, which makes the
    /// client refresh metadata and validate its position. Returns the current epoch.
    pub fn check_leader_epoch(&self, current_leader_epoch: i32) -> Result<i32, ResponseError> {
        let epoch = self.log.lock().leader_epoch();
        match current_leader_epoch {
            e if e < 0 || e == epoch => Ok(epoch),
            e if e > epoch => Err(ResponseError::UnknownLeaderEpoch),
            _ => Err(ResponseError::FencedLeaderEpoch),
        }
    }

    /// Appends a client's record set: every batch and record validated, nothing stored unless
    /// all of it is acceptable.
    pub fn append_produced(
        &self,
        records: Bytes,
        limits: ClientLimits,
        now_ms: i64,
    ) -> Result<Appended, AppendError> {
        if is_internal(&self.topic) {
            return Err(AppendError::InternalTopic(self.topic.clone()));
        }
        let config = self.log.lock().config().clone();
        let policy = Policy {
            max_message_bytes: config.max_message_bytes,
            compacted: config.cleanup_policy.compact,
            timestamps: (config.timestamp_type == TimestampType::CreateTime).then_some(
                TimestampBounds {
                    now_ms,
                    before_max_ms: config.timestamp_before_max_ms,
                    after_max_ms: config.timestamp_after_max_ms,
                },
            ),
            max_decompressed_bytes: limits.max_decompressed_bytes,
            allow_zstd: limits.produce_version >= 7,
        };
        let (records, mut headers) = validate(records, &policy).map_err(AppendError::Batch)?;
        if headers.iter().any(BatchHeader::is_transactional) {
            return Err(AppendError::Batch(BatchError::InvalidRecord(
                "transactional batches are not supported by this broker yet".into(),
            )));
        }
        let records = match config.compression {
            Some(target) if headers.iter().any(|h| h.compression() != target) => {
                let recompressed =
                    recompress_all(&records, &headers, target, limits.max_decompressed_bytes)?;
                // Lengths, attributes and CRCs changed: the headers must describe the new bytes.
                headers = batch_headers(&recompressed, usize::MAX).map_err(AppendError::Batch)?;
                recompressed
            }
            _ => records,
        };
        self.append_checked(&records, &mut headers, now_ms, || ())
    }

    /// Appends batches the broker built itself: framing is checked, records are trusted.
    #[cfg(test)]
    pub fn append_internal(&self, records: Bytes, now_ms: i64) -> Result<Appended, AppendError> {
        self.append_internal_then(records, now_ms, || ())
    }

    /// As `append_internal`, running `then` once the records are stored, before the log lock
    /// is released, so state derived from the log changes in log order.
    pub fn append_internal_then(
        &self,
        records: Bytes,
        now_ms: i64,
        then: impl FnOnce(),
    ) -> Result<Appended, AppendError> {
        let mut headers = batch_headers(&records, usize::MAX).map_err(AppendError::Batch)?;
        self.append_checked(&records, &mut headers, now_ms, then)
    }

    fn append_checked(
        &self,
        records: &[u8],
        headers: &mut [BatchHeader],
        now_ms: i64,
        then: impl FnOnce(),
    ) -> Result<Appended, AppendError> {
        let appended = {
            let mut log = self.log.lock();
            let info = log.append(records, headers, now_ms)?;
            then();
            Appended {
                info,
                log_start_offset: log.log_start_offset(),
            }
        };
        self.waiters.wake_all();
        Ok(appended)
    }
}

/// Re-encodes every batch in the topic's `compression.type` (the slow path, off by default).
fn recompress_all(
    records: &Bytes,
    headers: &[BatchHeader],
    target: u8,
    cap: u64,
) -> Result<Bytes, AppendError> {
    let mut out = Vec::with_capacity(records.len());
    let mut pos = 0;
    for h in headers {
        let raw = &records[pos..pos + h.size()];
        if h.compression() == target {
            out.extend_from_slice(raw);
        } else {
            let batch = recompress(h, raw, target, cap).map_err(|e| {
                AppendError::Batch(BatchError::Corrupt(format!("cannot recompress batch: {e}")))
            })?;
            out.extend_from_slice(&batch);
        }
        pos += h.size();
    }
    Ok(Bytes::from(out))
}
