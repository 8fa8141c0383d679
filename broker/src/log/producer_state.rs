//! Idempotent-producer state of one partition: the epoch and last five batches per producer id.

use std::collections::{HashMap, VecDeque};

use super::batch::{wrapping_seq, BatchHeader};

/// How many recent batches per producer are remembered for duplicate detection (Kafka: 5).
const CACHED_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMeta>,
}

/// The verdict on an incoming idempotent batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    /// New data in order: append it.
    Append,
    /// A retry of a batch already in the log: acknowledge with its original offsets.
    Duplicate(BatchMeta),
    /// OUT_OF_ORDER_SEQUENCE_NUMBER (45) or INVALID_PRODUCER_EPOCH (47), with a message.
    Reject(i16, String),
}

/// Producer id → state, for one partition.
#[derive(Debug, Default)]
pub(crate) struct ProducerStateMap {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStateMap {
    /// Checks an idempotent batch's epoch and sequence against what this partition has seen.
    pub fn check(&self, h: &BatchHeader) -> SequenceCheck {
        let Some(entry) = self.producers.get(&h.producer_id) else {
            return if h.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Reject(
                    45,
                    format!(
                        "unknown producer {} must start at sequence 0, got {}",
                        h.producer_id, h.base_sequence
                    ),
                )
            };
        };
        if h.producer_epoch < entry.epoch {
            return SequenceCheck::Reject(
                47,
                format!(
                    "producer {} epoch {} is older than current epoch {}",
                    h.producer_id, h.producer_epoch, entry.epoch
                ),
            );
        }
        if h.producer_epoch > entry.epoch {
            return if h.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Reject(
                    45,
                    format!(
                        "new epoch {} of producer {} must start at sequence 0, got {}",
                        h.producer_epoch, h.producer_id, h.base_sequence
                    ),
                )
            };
        }
        let last_seq = h.last_sequence();
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == h.base_sequence && b.last_seq == last_seq)
        {
            return SequenceCheck::Duplicate(*dup);
        }
        let expected = entry
            .batches
            .back()
            .map(|b| wrapping_seq(b.last_seq, 1))
            .unwrap_or(0);
        if h.base_sequence != expected {
            return SequenceCheck::Reject(
                45,
                format!(
                    "out of order sequence for producer {}: expected {}, got {}",
                    h.producer_id, expected, h.base_sequence
                ),
            );
        }
        SequenceCheck::Append
    }

    /// Records a batch that is now in the log (on append and when replaying the log at start-up).
    pub fn update(&mut self, h: &BatchHeader) {
        if !h.has_producer_id() || h.is_control() {
            return;
        }
        let entry = self.producers.entry(h.producer_id).or_default();
        if h.producer_epoch != entry.epoch {
            entry.epoch = h.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == CACHED_BATCHES {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMeta {
            first_seq: h.base_sequence,
            last_seq: h.last_sequence(),
            base_offset: h.base_offset,
            last_offset: h.last_offset(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 100,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: count,
        }
    }

    #[test]
    fn detects_duplicates_gaps_and_old_epochs() {
        let mut s = ProducerStateMap::default();
        assert_eq!(s.check(&header(7, 0, 0, 5, 0)), SequenceCheck::Append);
        s.update(&header(7, 0, 0, 5, 0));
        s.update(&header(7, 0, 5, 5, 5));
        match s.check(&header(7, 0, 0, 5, 99)) {
            SequenceCheck::Duplicate(m) => assert_eq!(m.base_offset, 0),
            other => panic!("expected duplicate, got {other:?}"),
        }
        assert_eq!(s.check(&header(7, 0, 10, 1, 0)), SequenceCheck::Append);
        assert!(matches!(
            s.check(&header(7, 0, 12, 1, 0)),
            SequenceCheck::Reject(45, _)
        ));
        assert!(matches!(
            s.check(&header(8, 0, 3, 1, 0)),
            SequenceCheck::Reject(45, _)
        ));
        s.update(&header(7, 1, 0, 1, 10));
        assert!(matches!(
            s.check(&header(7, 0, 11, 1, 0)),
            SequenceCheck::Reject(47, _)
        ));
        assert_eq!(s.check(&header(7, 1, 1, 1, 0)), SequenceCheck::Append);
    }
}
