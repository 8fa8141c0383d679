//! The partition log: segments on disk, appends, reads, retention, recovery.
//!
//! The log start offset (low watermark) is the first offset readers may see. Retention moves
//! it to the first remaining segment; DeleteRecords moves it anywhere up to the high watermark,
//! persisting it in the partition directory and deleting the segments entirely below it. The
//! segment holding it may still contain earlier records: Fetch refuses offsets below the start
//! (`OFFSET_OUT_OF_RANGE`) and timestamp lookups skip them.

pub(crate) mod batch;
#[doc(hidden)]
pub mod bench;
mod checkpoint;
pub(crate) mod cleaner;
pub(crate) mod codec;
mod index;
pub(crate) mod leader_epoch;
mod producer_snapshot;
mod producer_state;
mod read;
pub(crate) mod record;
mod recovery;
mod segment;
#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod validator;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;

use crate::config::{TimestampType, TopicConfig};
use crate::util::sync_dir;
use batch::{assign_offset, offset_prefix, set_log_append_time, BatchHeader};
use leader_epoch::LeaderEpochCache;
use producer_state::ProducerStateMap;
pub(crate) use producer_state::SequenceCheck;
pub(crate) use read::{ReadPlan, SegmentView, TimestampLookup};
use recovery::Stop;
use segment::{header_at, Recovery, Segment};
use validator::BatchError;

/// A closed segment as the cleaner sees it.
#[derive(Clone)]
pub(crate) struct SegmentRef {
    pub base: i64,
    pub file: Arc<File>,
    pub size: u64,
    /// Offset after its last batch (its base when empty).
    pub next_offset: i64,
}

/// What a compaction pass may touch: the closed segments, and where the active one starts.
pub(crate) struct CleaningView {
    pub closed: Vec<SegmentRef>,
    /// The active segment's base offset: the dirty section ends here at the latest.
    pub active_base: i64,
    pub dir: PathBuf,
    pub config: Arc<TopicConfig>,
    pub cleaned_upto: i64,
}

/// Result of a successful append.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AppendInfo {
    pub base_offset: i64,
    /// The broker timestamp for LogAppendTime topics, else -1.
    pub log_append_time: i64,
}

/// Why an append was refused.
#[derive(Debug)]
pub(crate) enum AppendError {
    Batch(BatchError),
    /// A sequence or epoch error with its Kafka error.
    Sequence(ResponseError, String),
    /// A client tried to write to a topic only the broker writes (`__consumer_offsets`).
    InternalTopic(String),
    Io(io::Error),
}

impl AppendError {
    /// The Kafka error code for this failure.
    pub fn code(&self) -> i16 {
        match self {
            AppendError::Batch(b) => b.code(),
            AppendError::Sequence(e, _) => e.code(),
            AppendError::InternalTopic(_) => ResponseError::InvalidTopicException.code(),
            AppendError::Io(_) => ResponseError::KafkaStorageError.code(),
        }
    }

    /// Records refused one by one, for Produce v8+ `record_errors`.
    pub fn record_errors(&self) -> &[validator::RecordError] {
        match self {
            AppendError::Batch(b) => b.record_errors(),
            _ => &[],
        }
    }

    pub fn message(&self) -> String {
        match self {
            AppendError::Batch(b) => b.to_string(),
            AppendError::Sequence(_, m) => m.clone(),
            AppendError::InternalTopic(t) => format!("Cannot append to internal topic {t}"),
            AppendError::Io(e) => format!("storage error: {e}"),
        }
    }
}

/// Why DeleteRecords was refused for a partition.
#[derive(Debug)]
pub(crate) enum DeleteRecordsError {
    /// The topic's `cleanup.policy` lacks `delete` (compacted-only topics keep their history).
    Policy,
    /// The requested offset is negative or beyond the high watermark.
    OutOfRange { offset: i64, high_watermark: i64 },
    /// Persisting the new log start offset failed.
    Io(io::Error),
}

impl DeleteRecordsError {
    /// The Kafka error this maps to on the wire.
    pub fn error(&self) -> ResponseError {
        match self {
            DeleteRecordsError::Policy => ResponseError::PolicyViolation,
            DeleteRecordsError::OutOfRange { .. } => ResponseError::OffsetOutOfRange,
            DeleteRecordsError::Io(_) => ResponseError::KafkaStorageError,
        }
    }
}

impl std::fmt::Display for DeleteRecordsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeleteRecordsError::Policy => {
                f.write_str("records cannot be deleted due to the configured cleanup.policy")
            }
            DeleteRecordsError::OutOfRange {
                offset,
                high_watermark,
            } => write!(
                f,
                "offset {offset} is not in [0, high watermark {high_watermark}]"
            ),
            DeleteRecordsError::Io(e) => write!(f, "storage error: {e}"),
        }
    }
}

/// One partition's log.
pub(crate) struct Log {
    dir: PathBuf,
    segments: BTreeMap<i64, Segment>,
    /// First offset readers may see: moved by DeleteRecords and retention, never backwards.
    /// Segments may still hold records below it (until a whole segment is below, it stays).
    start_offset: i64,
    config: Arc<TopicConfig>,
    producers: ProducerStateMap,
    last_flush_ms: i64,
    /// Offsets below this were compacted by the last cleaning pass (checkpointed).
    cleaned_upto: i64,
    /// Which leader epoch began where; new batches carry the current one.
    epochs: LeaderEpochCache,
    /// Everything below this offset is fsynced.
    recovery_point: i64,
    /// The recovery point last written to its checkpoint file.
    checkpointed_recovery_point: i64,
    /// Offset of the newest producer snapshot on disk (`i64::MIN` when there is none).
    snapshot_offset: i64,
    /// Batch headers applied to the producer state at open, after the snapshot it started from.
    #[cfg(test)]
    pub(crate) producer_batches_replayed: usize,
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering the tail after an unclean shutdown.
    pub fn open(
        dir: &Path,
        config: Arc<TopicConfig>,
        clean_shutdown: bool,
        now_ms: i64,
    ) -> io::Result<Log> {
        fs::create_dir_all(dir)?;
        let mut bases = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if name.ends_with(".cleaned")
                || name.ends_with(".swap")
                || producer_snapshot::is_temporary(&name)
            {
                // An interrupted compaction (the original segment is still intact) or snapshot
                // write (the previous snapshots are).
                let _ = fs::remove_file(dir.join(name.as_ref()));
            } else if let Some(stem) = name.strip_suffix(".log") {
                if let Ok(base) = stem.parse::<i64>() {
                    bases.push(base);
                }
            }
        }
        bases.sort_unstable();
        // Start from the newest snapshot and apply only the batches at or after its offset. If
        // recovery then ends the log below it, an older one is loaded after the walk.
        let (mut snapshot_at, mut producers) = producer_snapshot::load_latest(dir, i64::MAX)?
            .unwrap_or((i64::MIN, ProducerStateMap::default()));
        let mut replayed = 0;
        let stop = if clean_shutdown {
            Stop::Clean
        } else {
            Stop::Unclean {
                recovery_point: checkpoint::read(dir, checkpoint::RECOVERY_POINT)?.unwrap_or(0),
            }
        };
        let mut segments = recovery::open_segments(
            dir,
            &bases,
            stop,
            snapshot_at,
            config.index_interval_bytes,
            now_ms,
            &mut |h| {
                if h.base_offset >= snapshot_at {
                    producers.update(h);
                    replayed += 1;
                }
            },
        )?;
        let checkpointed = checkpoint::read(dir, checkpoint::LOG_START)?.unwrap_or(-1);
        let next = segments.values().next_back().map(|s| s.next_offset);
        if next.is_some_and(|n| n < checkpointed) {
            // Recovery lost the tail up to past the log start (or a DeleteRecords at the end was
            // followed by a crash): as Kafka, start over empty at the log start offset, so
            // offsets below it are never handed out again.
            tracing::warn!(log = %dir.display(), log_start = checkpointed, "log ends below its start offset; truncating fully");
            for (_, seg) in std::mem::take(&mut segments) {
                seg.delete()?;
            }
        }
        if segments.is_empty() {
            let base = checkpointed.max(0);
            segments.insert(base, Segment::create(dir, base, now_ms)?);
        }
        let first_base = *segments.keys().next().expect("a segment was just ensured");
        let start_offset = first_base.max(checkpointed);
        let log_end = segments.values().next_back().expect("ensured").next_offset;
        producer_snapshot::delete_above(dir, log_end)?;
        if snapshot_at > log_end {
            (snapshot_at, producers) = producer_snapshot::load_latest(dir, log_end)?
                .unwrap_or((i64::MIN, ProducerStateMap::default()));
            replayed = replay_producers(&segments, snapshot_at, &mut producers)?;
        }
        tracing::debug!(log = %dir.display(), snapshot = snapshot_at, replayed, producers = producers.len(), "producer state loaded");
        let snapshot_offset = producer_snapshot::list(dir)?
            .last()
            .copied()
            .unwrap_or(i64::MIN);
        let mut epochs = LeaderEpochCache::open(dir, start_offset)?;
        epochs.truncate_from_end(log_end)?;
        if !clean_shutdown {
            // The stop may have lost an unsynced tail, so offsets from here on may be handed out
            // a second time: a new epoch lets clients detect it (KIP-320).
            let epoch = epochs.bump(log_end)?;
            tracing::info!(log = %dir.display(), epoch, log_end, "new leader epoch after an unclean stop");
        }
        let mut log = Log {
            dir: dir.to_path_buf(),
            segments,
            start_offset,
            config,
            producers,
            last_flush_ms: now_ms,
            // A lost tail may have taken compacted offsets with it; a damaged file only costs
            // a full pass.
            cleaned_upto: checkpoint::read(dir, checkpoint::CLEANER_OFFSET)
                .unwrap_or(None)
                .unwrap_or(0)
                .clamp(0, log_end),
            epochs,
            // Every segment is synced now (recovery syncs what it checks); the checkpoint is
            // written by the next roll, flush schedule or shutdown.
            recovery_point: log_end,
            checkpointed_recovery_point: -1,
            snapshot_offset,
            #[cfg(test)]
            producer_batches_replayed: replayed,
        };
        log.delete_segments_below_start()?;
        Ok(log)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn set_config(&mut self, config: Arc<TopicConfig>) {
        self.config = config;
    }

    pub fn config(&self) -> &Arc<TopicConfig> {
        &self.config
    }

    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has a segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has a segment")
    }

    /// The offset the next record gets (log end offset; with one replica also the high watermark).
    pub fn next_offset(&self) -> i64 {
        self.active().next_offset
    }

    /// The first offset that can be read (Kafka's log start offset / low watermark).
    pub fn log_start_offset(&self) -> i64 {
        self.start_offset
    }

    /// DeleteRecords: moves the log start offset up to `offset` (-1 = the high watermark),
    /// persists it, and deletes the segments now entirely below it. Returns the new low
    /// watermark. A lower offset than the current start is accepted and changes nothing.
    pub fn delete_records(&mut self, offset: i64) -> Result<i64, DeleteRecordsError> {
        if !self.config.cleanup_policy.delete {
            return Err(DeleteRecordsError::Policy);
        }
        let high_watermark = self.next_offset();
        let target = if offset == -1 { high_watermark } else { offset };
        if target < 0 || target > high_watermark {
            return Err(DeleteRecordsError::OutOfRange {
                offset: target,
                high_watermark,
            });
        }
        if target > self.start_offset {
            // Persist first: a crash after this point reopens with the new start either way.
            checkpoint::write(&self.dir, checkpoint::LOG_START, target)
                .map_err(DeleteRecordsError::Io)?;
            self.start_offset = target;
            tracing::info!(log = %self.dir.display(), log_start = target, "log start offset moved by DeleteRecords");
            self.delete_segments_below_start()
                .map_err(DeleteRecordsError::Io)?;
        }
        Ok(self.start_offset)
    }

    /// Deletes closed segments whose every offset is below the log start offset (the next
    /// segment starts at or below it); the active segment always stays.
    fn delete_segments_below_start(&mut self) -> io::Result<usize> {
        let mut deleted = 0;
        while self.segments.len() > 1 {
            let mut bases = self.segments.keys();
            let (first, second) = (
                *bases.next().expect("len > 1"),
                *bases.next().expect("len > 1"),
            );
            if second > self.start_offset {
                break;
            }
            let seg = self.segments.remove(&first).expect("present");
            tracing::info!(log = %self.dir.display(), base = first, "deleted segment below the log start offset");
            seg.delete()?;
            deleted += 1;
        }
        Ok(deleted)
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(|s| s.size).sum()
    }

    #[cfg(test)]
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Checks idempotence, assigns offsets in place and appends batches already validated
    /// (`validator.rs`) or built by the broker.
    pub fn append(
        &mut self,
        data: &[u8],
        headers: &mut [BatchHeader],
        now_ms: i64,
    ) -> Result<AppendInfo, AppendError> {
        let log_append = self.config.timestamp_type == TimestampType::LogAppendTime;
        for h in headers.iter() {
            if !h.has_producer_id() {
                continue;
            }
            match self.producers.check(h) {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate(meta) if headers.len() == 1 => {
                    return Ok(AppendInfo {
                        base_offset: meta.base_offset,
                        log_append_time: if log_append { now_ms } else { -1 },
                    });
                }
                SequenceCheck::Duplicate(_) => {
                    // The response has one base offset per partition, so a duplicate can be
                    // acknowledged with its original offsets only when it is the whole set.
                    return Err(AppendError::Sequence(
                        ResponseError::OutOfOrderSequenceNumber,
                        "duplicate batch inside a multi-batch record set".into(),
                    ));
                }
                SequenceCheck::Reject(e, msg) => return Err(AppendError::Sequence(e, msg)),
            }
        }
        self.maybe_roll(data.len() as u64, now_ms)
            .map_err(AppendError::Io)?;
        let base_offset = self.next_offset();
        let mut next = base_offset;
        for h in headers.iter_mut() {
            h.base_offset = next;
            if log_append {
                h.max_timestamp = now_ms;
            }
            next = h.last_offset() + 1;
        }
        let interval = self.config.index_interval_bytes;
        let epoch = self.epochs.current();
        if log_append {
            // LogAppendTime changes bytes under the CRC: this path copies and rewrites.
            let mut owned = data.to_vec();
            let mut pos = 0;
            for h in headers.iter() {
                let batch = &mut owned[pos..pos + h.size()];
                assign_offset(batch, h.base_offset, epoch);
                set_log_append_time(batch, now_ms);
                pos += h.size();
            }
            self.active_mut()
                .append(&[&owned], headers, interval)
                .map_err(AppendError::Io)?;
        } else {
            // The hot path: the produced bytes go to the file untouched, behind a rewritten
            // 16-byte prefix per batch (base offset, length, leader epoch: all outside the CRC).
            let prefixes: Vec<[u8; 16]> = headers
                .iter()
                .map(|h| offset_prefix(h.base_offset, h.batch_length, epoch))
                .collect();
            let mut parts: Vec<&[u8]> = Vec::with_capacity(headers.len() * 2);
            let mut pos = 0;
            for (h, prefix) in headers.iter().zip(&prefixes) {
                parts.push(prefix);
                parts.push(&data[pos + 16..pos + h.size()]);
                pos += h.size();
            }
            self.active_mut()
                .append(&parts, headers, interval)
                .map_err(AppendError::Io)?;
        }
        for h in headers.iter() {
            self.producers.update(h);
        }
        if self.active().unflushed >= self.config.flush_messages {
            self.flush(true).map_err(AppendError::Io)?;
        }
        Ok(AppendInfo {
            base_offset,
            log_append_time: if log_append { now_ms } else { -1 },
        })
    }

    fn maybe_roll(&mut self, incoming: u64, now_ms: i64) -> io::Result<()> {
        let cfg = Arc::clone(&self.config);
        let active = self.active();
        if active.is_empty() {
            return Ok(());
        }
        let too_big = active.size + incoming > cfg.segment_bytes;
        let too_old = now_ms.saturating_sub(active.created_ms) >= cfg.segment_ms;
        // Index entries hold offsets relative to the base as u32.
        let offsets_exhausted = active.next_offset - active.base_offset > i32::MAX as i64 / 2;
        if too_big || too_old || offsets_exhausted {
            self.roll(now_ms)?;
        }
        Ok(())
    }

    /// Closes the active segment — fsynced, so the recovery point moves past it — and starts
    /// a new one at the log end.
    pub fn roll(&mut self, now_ms: i64) -> io::Result<()> {
        let next = self.next_offset();
        self.flush(true)?;
        self.checkpoint_recovery_point()?;
        let seg = Segment::create(&self.dir, next, now_ms)?;
        // The new file's directory entry must be durable before fsyncs of its data mean anything.
        sync_dir(&self.dir)?;
        self.segments.insert(next, seg);
        Ok(())
    }

    /// Writes buffered index entries; with `sync`, fsyncs every segment holding unsynced data
    /// and moves the recovery point to the log end.
    pub fn flush(&mut self, sync: bool) -> io::Result<()> {
        for seg in self.segments.values_mut() {
            seg.flush(sync && seg.unflushed > 0)?;
        }
        if sync {
            self.recovery_point = self.next_offset();
        }
        Ok(())
    }

    /// Persists the recovery point if it moved since it was last written. When it is at the
    /// log end (after a roll's or shutdown's fsync) a producer snapshot is written there too:
    /// it may only describe fsynced batches, or an unclean stop could lose what it counts.
    pub fn checkpoint_recovery_point(&mut self) -> io::Result<()> {
        if self.recovery_point != self.checkpointed_recovery_point {
            checkpoint::write(&self.dir, checkpoint::RECOVERY_POINT, self.recovery_point)?;
            self.checkpointed_recovery_point = self.recovery_point;
        }
        let end = self.next_offset();
        if self.recovery_point == end && self.snapshot_offset != end {
            producer_snapshot::write(&self.dir, end, &self.producers)?;
            self.snapshot_offset = end;
        }
        Ok(())
    }

    /// Records (and checkpoints) where the next compaction pass's dirty section starts.
    pub(crate) fn set_cleaned_upto(&mut self, offset: i64) -> io::Result<()> {
        if offset != self.cleaned_upto {
            checkpoint::write(&self.dir, checkpoint::CLEANER_OFFSET, offset)?;
            self.cleaned_upto = offset;
        }
        Ok(())
    }

    /// Makes sure a producer snapshot covers every closed segment before compaction removes
    /// batches from them (a log written before snapshots existed has none).
    pub(crate) fn ensure_producer_snapshot(&mut self) -> io::Result<()> {
        if self.snapshot_offset < self.active().base_offset {
            self.flush(true)?;
            self.checkpoint_recovery_point()?;
        }
        Ok(())
    }

    /// The epoch new batches are stamped with.
    pub fn leader_epoch(&self) -> i32 {
        self.epochs.current()
    }

    /// The epoch of the batch holding `offset`.
    pub fn epoch_for_offset(&self, offset: i64) -> i32 {
        self.epochs.epoch_for_offset(offset)
    }

    /// OffsetForLeaderEpoch: the largest epoch ≤ `epoch` and the offset where it ended.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        self.epochs.end_offset_for(epoch, self.next_offset())
    }

    /// Applies `flush.ms`.
    pub fn flush_if_due(&mut self, now_ms: i64) -> io::Result<()> {
        if self.config.flush_ms < i64::MAX && now_ms - self.last_flush_ms >= self.config.flush_ms {
            self.flush(true)?;
            self.last_flush_ms = now_ms;
        }
        Ok(())
    }

    /// Deletes whole old segments by `retention.ms` and `retention.bytes`, and those below the
    /// log start offset (whatever the policy, as Kafka); returns how many.
    pub fn apply_retention(&mut self, now_ms: i64) -> io::Result<usize> {
        let below_start = self.delete_segments_below_start()?;
        if !self.config.cleanup_policy.delete {
            return Ok(below_start);
        }
        let (retention_ms, retention_bytes) =
            (self.config.retention_ms, self.config.retention_bytes);
        let mut total = self.size_bytes() as i64;
        let mut deleted = 0;
        while self.segments.len() > 1 {
            let oldest = self.segments.values().next().expect("non-empty");
            let expired = retention_ms >= 0
                && (oldest.max_timestamp < 0 || now_ms - oldest.max_timestamp > retention_ms);
            let oversized = retention_bytes >= 0 && total - oldest.size as i64 >= retention_bytes;
            if !(expired || oversized) {
                break;
            }
            let base = oldest.base_offset;
            let seg = self.segments.remove(&base).expect("present");
            total -= seg.size as i64;
            tracing::info!(log = %self.dir.display(), base, "retention deleted segment");
            seg.delete()?;
            deleted += 1;
            let first = *self.segments.keys().next().expect("one segment is kept");
            self.start_offset = self.start_offset.max(first);
        }
        Ok(below_start + deleted)
    }

    /// Segments to read `offset` from: the one holding it and the next (compaction leaves gaps).
    pub fn read_plan(&self, offset: i64) -> ReadPlan {
        // The segment holding `offset` may have lost the rest of its batches (or all of them)
        // to compaction: skip empty segments and keep the next non-empty one as a fallback.
        let from = self
            .segments
            .range(..=offset)
            .next_back()
            .map(|(b, _)| *b)
            .unwrap_or(i64::MIN);
        let views = self
            .segments
            .range(from..)
            .map(|(_, s)| s)
            .filter(|s| !s.is_empty())
            .take(2)
            .map(|s| SegmentView {
                file: Arc::clone(&s.file),
                start: if s.base_offset <= offset {
                    s.position_for_offset(offset)
                } else {
                    0
                },
                limit: s.size,
            })
            .collect();
        ReadPlan { views }
    }

    /// The lookup of the first offset at or above the log start whose record timestamp is
    /// ≥ `ts`: the segments that may hold it, each from where its time index points. Taken under
    /// the partition lock; [`TimestampLookup::find`] reads and decodes the batches without it.
    pub fn timestamp_lookup(&self, ts: i64) -> TimestampLookup {
        let start = self.start_offset;
        let views = self
            .segments
            .values()
            .filter(|seg| seg.max_timestamp >= ts && seg.next_offset > start)
            .map(|seg| SegmentView {
                file: Arc::clone(&seg.file),
                start: seg.position_for_timestamp(ts),
                limit: seg.size,
            })
            .collect();
        TimestampLookup {
            target: ts,
            min_offset: start,
            views,
        }
    }

    /// The lookup of the record with the largest timestamp: the first batch reaching the
    /// largest segment maximum, in the segment holding it. Scanned as [`Log::timestamp_lookup`].
    pub fn max_timestamp_lookup(&self) -> TimestampLookup {
        let seg = self
            .segments
            .values()
            .filter(|s| s.max_timestamp >= 0)
            .max_by_key(|s| s.max_timestamp);
        TimestampLookup {
            target: seg.map_or(i64::MAX, |s| s.max_timestamp),
            min_offset: i64::MIN,
            views: seg
                .map(|s| SegmentView {
                    file: Arc::clone(&s.file),
                    start: 0,
                    limit: s.size,
                })
                .into_iter()
                .collect(),
        }
    }

    /// The closed segments and the active segment's base, for a compaction pass.
    pub(crate) fn cleaning_view(&self) -> CleaningView {
        let active_base = self.active().base_offset;
        let closed = self
            .segments
            .values()
            .filter(|s| s.base_offset != active_base)
            .map(|s| SegmentRef {
                base: s.base_offset,
                file: Arc::clone(&s.file),
                size: s.size,
                next_offset: s.next_offset,
            })
            .collect();
        CleaningView {
            closed,
            active_base,
            dir: self.dir.clone(),
            config: Arc::clone(&self.config),
            cleaned_upto: self.cleaned_upto,
        }
    }

    /// Swaps in a compacted segment file (already written as `<base>.log.cleaned`).
    pub(crate) fn replace_segment(
        &mut self,
        base: i64,
        cleaned: &Path,
        now_ms: i64,
    ) -> io::Result<()> {
        if !self.segments.contains_key(&base) || self.active().base_offset == base {
            let _ = fs::remove_file(cleaned);
            return Ok(());
        }
        let log_path = self.dir.join(segment::file_name(base, "log"));
        fs::rename(cleaned, &log_path)?;
        // The cleaned file was fsynced; the rename must be durable too, or a crash could bring
        // back the uncleaned segment under indexes built for the cleaned one.
        sync_dir(&self.dir)?;
        let _ = fs::remove_file(self.dir.join(segment::file_name(base, "index")));
        let _ = fs::remove_file(self.dir.join(segment::file_name(base, "timeindex")));
        let (seg, _) = Segment::open(
            &self.dir,
            base,
            Recovery::Headers,
            self.config.index_interval_bytes,
            now_ms,
            &mut |_| {},
        )?;
        self.segments.insert(base, seg);
        Ok(())
    }
}

/// Applies the batch headers at or after offset `from` to `producers`; returns how many.
fn replay_producers(
    segments: &BTreeMap<i64, Segment>,
    from: i64,
    producers: &mut ProducerStateMap,
) -> io::Result<usize> {
    let mut replayed = 0;
    for seg in segments.values().filter(|s| s.next_offset > from) {
        let mut pos = if seg.base_offset < from {
            seg.position_for_offset(from)
        } else {
            0
        };
        while let Some(h) = header_at(&seg.file, pos, seg.size)? {
            if h.base_offset >= from {
                producers.update(&h);
                replayed += 1;
            }
            pos += h.size() as u64;
        }
    }
    Ok(replayed)
}

/// The checkpointed log start offset of the partition in `dir`, or -1 when none was written.
#[cfg(test)]
mod tests;
