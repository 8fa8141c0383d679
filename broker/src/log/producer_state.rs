//! Idempotent-producer state of one partition: the epoch and last five batches per producer id.
//!
//! The state is rebuilt at start-up from the newest producer snapshot (`producer_snapshot.rs`)
//! plus the batch headers after it; this module also encodes and decodes the snapshot body.

use std::collections::{HashMap, VecDeque};

use kafka_protocol::error::ResponseError;

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

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    /// Max timestamp of the producer's last batch (kept for a future producer expiry).
    last_timestamp: i64,
    batches: VecDeque<BatchMeta>,
}

/// The verdict on an incoming idempotent batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    /// New data in order: append it.
    Append,
    /// A retry of a batch already in the log: acknowledge with its original offsets.
    Duplicate(BatchMeta),
    /// OUT_OF_ORDER_SEQUENCE_NUMBER or INVALID_PRODUCER_EPOCH, with a message.
    Reject(ResponseError, String),
}

/// Producer id → state, for one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
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
                    ResponseError::OutOfOrderSequenceNumber,
                    format!(
                        "unknown producer {} must start at sequence 0, got {}",
                        h.producer_id, h.base_sequence
                    ),
                )
            };
        };
        if h.producer_epoch < entry.epoch {
            return SequenceCheck::Reject(
                ResponseError::InvalidProducerEpoch,
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
                    ResponseError::OutOfOrderSequenceNumber,
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
                ResponseError::OutOfOrderSequenceNumber,
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
        entry.last_timestamp = h.max_timestamp;
    }

    /// How many producers are known.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Appends the snapshot body: producer count, then per producer (sorted by id, so equal
    /// maps encode equally) id, epoch, last timestamp and its cached batches.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort_unstable();
        out.extend_from_slice(&(ids.len() as u32).to_be_bytes());
        for id in ids {
            let e = &self.producers[id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&e.epoch.to_be_bytes());
            out.extend_from_slice(&e.last_timestamp.to_be_bytes());
            out.push(e.batches.len() as u8);
            for b in &e.batches {
                out.extend_from_slice(&b.first_seq.to_be_bytes());
                out.extend_from_slice(&b.last_seq.to_be_bytes());
                out.extend_from_slice(&b.base_offset.to_be_bytes());
                out.extend_from_slice(&b.last_offset.to_be_bytes());
            }
        }
    }

    /// Decodes what `encode` wrote; `None` when it is malformed or has bytes left over.
    pub fn decode(mut buf: &[u8]) -> Option<ProducerStateMap> {
        let count = u32::from_be_bytes(take(&mut buf)?);
        // Each producer takes at least 19 bytes: a count beyond that is damage, not a map.
        if count as usize > buf.len() / 19 {
            return None;
        }
        let mut producers = HashMap::with_capacity(count as usize);
        for _ in 0..count {
            let id = i64::from_be_bytes(take(&mut buf)?);
            let epoch = i16::from_be_bytes(take(&mut buf)?);
            let last_timestamp = i64::from_be_bytes(take(&mut buf)?);
            let [n] = take::<1>(&mut buf)?;
            if n as usize > CACHED_BATCHES {
                return None;
            }
            let mut batches = VecDeque::with_capacity(n as usize);
            for _ in 0..n {
                batches.push_back(BatchMeta {
                    first_seq: i32::from_be_bytes(take(&mut buf)?),
                    last_seq: i32::from_be_bytes(take(&mut buf)?),
                    base_offset: i64::from_be_bytes(take(&mut buf)?),
                    last_offset: i64::from_be_bytes(take(&mut buf)?),
                });
            }
            let entry = ProducerEntry {
                epoch,
                last_timestamp,
                batches,
            };
            if producers.insert(id, entry).is_some() {
                return None;
            }
        }
        buf.is_empty().then_some(ProducerStateMap { producers })
    }
}

/// Splits the first `N` bytes off `buf`.
fn take<const N: usize>(buf: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = buf.split_first_chunk::<N>()?;
    *buf = rest;
    Some(*head)
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
            SequenceCheck::Reject(ResponseError::OutOfOrderSequenceNumber, _)
        ));
        assert!(matches!(
            s.check(&header(8, 0, 3, 1, 0)),
            SequenceCheck::Reject(ResponseError::OutOfOrderSequenceNumber, _)
        ));
        s.update(&header(7, 1, 0, 1, 10));
        assert!(matches!(
            s.check(&header(7, 0, 11, 1, 0)),
            SequenceCheck::Reject(ResponseError::InvalidProducerEpoch, _)
        ));
        assert_eq!(s.check(&header(7, 1, 1, 1, 0)), SequenceCheck::Append);
    }

    #[test]
    fn encodes_and_decodes() {
        let mut s = ProducerStateMap::default();
        for i in 0..7 {
            s.update(&header(7, 2, i * 3, 3, 100 + i as i64 * 3));
        }
        s.update(&header(8, 0, 0, 1, 500));
        s.update(&header(9, 1, 0, 2, 501));
        let mut buf = Vec::new();
        s.encode(&mut buf);
        let back = ProducerStateMap::decode(&buf).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.len(), 3);
        assert!(ProducerStateMap::decode(&buf[..buf.len() - 1]).is_none());
        buf.push(0);
        assert!(ProducerStateMap::decode(&buf).is_none());
        let mut empty = Vec::new();
        ProducerStateMap::default().encode(&mut empty);
        assert_eq!(
            ProducerStateMap::decode(&empty),
            Some(ProducerStateMap::default())
        );
    }
}
