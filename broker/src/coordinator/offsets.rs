//! Committed offsets: kept in memory, persisted in the compacted internal topic `__consumer_offsets`.
//!
//! Each commit appends one record per partition — key `{group, topic, partition}`, value
//! `{offset, leader_epoch, metadata, commit_timestamp}` as JSON, a null value when deleted —
//! to partition `hash(group) % offsets.topic.num.partitions`. Compaction keeps the log to one
//! record per key; at start-up the whole topic is replayed to rebuild the map.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::group::GroupSnapshot;
use crate::log::batch::complete_batches;
use crate::log::record::{batch_records, field};
use crate::topics::{Partition, TopicError, TopicManager};
use crate::util::now_ms;

/// Name of the internal offsets topic.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Largest decompressed batch the loader reads; the coordinator writes small batches, so a
/// bigger one is not its own and is skipped.
const LOAD_SECTION_MAX: u64 = 64 << 20;

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp: i64,
}

/// Key of a group's membership snapshot (Kafka stores group metadata in the same topic).
#[derive(Serialize, Deserialize)]
struct GroupKey {
    group: String,
    kind: String,
}

const GROUP_KIND: &str = "group";

#[derive(Serialize, Deserialize)]
struct Key {
    group: String,
    topic: String,
    partition: i32,
}

/// All groups' committed offsets.
#[derive(Default)]
pub(crate) struct OffsetStore {
    groups: HashMap<String, BTreeMap<(String, i32), Committed>>,
    /// Membership snapshots read at start-up, handed to the coordinator once.
    snapshots: HashMap<String, GroupSnapshot>,
}

fn partition_for(group: &str, partitions: usize) -> i32 {
    (crc32c::crc32c(group.as_bytes()) as usize % partitions.max(1)) as i32
}

impl OffsetStore {
    /// Replays `__consumer_offsets` (if it exists) into memory.
    pub fn load(topics: &TopicManager) -> Self {
        let mut store = OffsetStore::default();
        let Some(topic) = topics.get(OFFSETS_TOPIC) else {
            return store;
        };
        for p in topic.partitions.read().iter() {
            store.replay(p);
        }
        let n: usize = store.groups.values().map(|g| g.len()).sum();
        tracing::info!(
            groups = store.groups.len(),
            offsets = n,
            "loaded committed offsets"
        );
        store
    }

    /// Replays one partition of the offsets topic. Every step moves past a whole batch
    /// (`last_offset + 1`), whatever its records say, so no stored batch — trimmed by
    /// compaction, hostile, or undecodable (skipped with a warning) — can stall start-up.
    fn replay(&mut self, p: &Partition) {
        let (mut offset, end) = {
            let log = p.log.lock();
            (log.log_start_offset(), log.next_offset())
        };
        while offset < end {
            let plan = p.log.lock().read_plan(offset);
            let data = match plan.read(offset, 1 << 20) {
                Ok(d) if !d.is_empty() => d,
                Ok(_) => break,
                Err(e) => {
                    tracing::error!(partition = p.index, offset, error = %e, "cannot read {OFFSETS_TOPIC}; offsets after this point are not loaded");
                    break;
                }
            };
            for (pos, h) in complete_batches(&data) {
                let raw = &data[pos..pos + h.size()];
                if h.is_control() {
                    // Transaction markers carry no offsets.
                } else {
                    match batch_records(&h, raw, LOAD_SECTION_MAX) {
                        Ok((section, records)) => {
                            for r in records {
                                if let Some(key) = field(&section, r.key) {
                                    self.apply(key, field(&section, r.value));
                                }
                            }
                        }
                        Err(e) => tracing::warn!(
                            partition = p.index,
                            base_offset = h.base_offset,
                            last_offset = h.last_offset(),
                            error = %e,
                            "skipping an undecodable batch in {OFFSETS_TOPIC}"
                        ),
                    }
                }
                // `read` returns batches ending at or after `offset`, so this always advances.
                offset = offset.max(h.last_offset() + 1);
            }
        }
    }

    fn apply(&mut self, key: &[u8], value: Option<&[u8]>) {
        if let Ok(k) = serde_json::from_slice::<GroupKey>(key) {
            if k.kind == GROUP_KIND {
                match value.and_then(|v| serde_json::from_slice::<GroupSnapshot>(v).ok()) {
                    Some(snap) => self.snapshots.insert(k.group, snap),
                    None => self.snapshots.remove(&k.group),
                };
            }
            return;
        }
        let Ok(key) = serde_json::from_slice::<Key>(key) else {
            return;
        };
        match value.and_then(|v| serde_json::from_slice::<Committed>(v).ok()) {
            Some(c) => {
                self.groups
                    .entry(key.group)
                    .or_default()
                    .insert((key.topic, key.partition), c);
            }
            None => {
                if let Some(g) = self.groups.get_mut(&key.group) {
                    g.remove(&(key.topic, key.partition));
                    if g.is_empty() {
                        self.groups.remove(&key.group);
                    }
                }
            }
        }
    }

    /// The membership snapshots found at start-up (taken once).
    pub fn take_snapshots(&mut self) -> HashMap<String, GroupSnapshot> {
        std::mem::take(&mut self.snapshots)
    }

    /// Applies a write once it is in the log (see [`persist`]).
    fn applied(&mut self, write: &Write) {
        match &write.kind {
            // Snapshots are only start-up state: once the group writes its own, drop the old one.
            WriteKind::Membership(group) => {
                self.snapshots.remove(group);
            }
            WriteKind::Offsets => {
                for (k, v) in &write.records {
                    self.apply(k, v.as_deref());
                }
            }
        }
    }

    pub fn get(&self, group: &str, topic: &str, partition: i32) -> Option<&Committed> {
        self.groups.get(group)?.get(&(topic.to_string(), partition))
    }

    /// Every committed offset of a group.
    pub fn all(&self, group: &str) -> Vec<(String, i32, Committed)> {
        self.groups
            .get(group)
            .map(|g| {
                g.iter()
                    .map(|((t, p), c)| (t.clone(), *p, c.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.groups.contains_key(group)
    }

    pub fn group_ids(&self) -> Vec<String> {
        self.groups.keys().cloned().collect()
    }
}

/// Records bound for the group's partition of `__consumer_offsets`, encoded and not yet stored.
pub(crate) struct Write {
    partition: Arc<Partition>,
    batch: Bytes,
    records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    kind: WriteKind,
}

enum WriteKind {
    Offsets,
    Membership(String),
}

/// Where the offsets topic lives and how it is created on first use.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OffsetsTopic {
    pub partitions: usize,
    pub segment_bytes: i64,
}

impl OffsetsTopic {
    /// Commits of `group` (`None` deletes), encoded; `None` when there is nothing to write.
    pub fn offsets(
        &self,
        topics: &TopicManager,
        group: &str,
        entries: &[(String, i32, Option<Committed>)],
    ) -> Result<Option<Write>, String> {
        if entries.is_empty() {
            return Ok(None);
        }
        let mut records = Vec::with_capacity(entries.len());
        for (topic, partition, c) in entries {
            let key = serde_json::to_vec(&Key {
                group: group.to_string(),
                topic: topic.clone(),
                partition: *partition,
            })
            .map_err(|e| e.to_string())?;
            let value = c
                .as_ref()
                .map(serde_json::to_vec)
                .transpose()
                .map_err(|e| e.to_string())?;
            records.push((key, value));
        }
        self.encode(topics, group, records, WriteKind::Offsets)
            .map(Some)
    }

    /// A group's membership snapshot (`None`: the group is empty or gone), encoded.
    pub fn membership(
        &self,
        topics: &TopicManager,
        group: &str,
        snapshot: Option<&GroupSnapshot>,
    ) -> Result<Write, String> {
        let key = serde_json::to_vec(&GroupKey {
            group: group.to_string(),
            kind: GROUP_KIND.to_string(),
        })
        .map_err(|e| e.to_string())?;
        let value = snapshot
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| e.to_string())?;
        self.encode(
            topics,
            group,
            vec![(key, value)],
            WriteKind::Membership(group.to_string()),
        )
    }

    fn encode(
        &self,
        topics: &TopicManager,
        group: &str,
        records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
        kind: WriteKind,
    ) -> Result<Write, String> {
        let partition = offsets_partition(topics, group, self.partitions, self.segment_bytes)?;
        let now = now_ms();
        let encoded: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // offset - sequence must stay constant or the codec splits the batch.
                sequence: i as i32 - 1,
                timestamp: now,
                key: Some(Bytes::copy_from_slice(key)),
                value: value.as_deref().map(Bytes::copy_from_slice),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        let mut buf = BytesMut::new();
        let opts = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &encoded, &opts).map_err(|e| e.to_string())?;
        Ok(Write {
            partition,
            batch: buf.freeze(),
            records,
            kind,
        })
    }
}

/// Stores a write, then applies it to `store` while the partition's log lock is still held:
/// the map changes in the order the log does, and no broker-wide lock is held across the I/O.
pub(crate) fn persist(write: Write, store: &Mutex<OffsetStore>) -> Result<(), String> {
    let batch = write.batch.clone();
    write
        .partition
        .append_internal_then(batch, now_ms(), || store.lock().applied(&write))
        .map(|_| ())
        .map_err(|e| e.message())
}

fn offsets_partition(
    topics: &TopicManager,
    group: &str,
    num_partitions: usize,
    segment_bytes: i64,
) -> Result<Arc<Partition>, String> {
    let topic = match topics.get(OFFSETS_TOPIC) {
        Some(t) => t,
        None => {
            let mut cfg = BTreeMap::new();
            cfg.insert("cleanup.policy".to_string(), "compact".to_string());
            cfg.insert("segment.bytes".to_string(), segment_bytes.to_string());
            match topics.create(OFFSETS_TOPIC, num_partitions as i32, 1, cfg, false) {
                Ok(t) => t,
                Err(TopicError::Exists(_)) => {
                    topics.get(OFFSETS_TOPIC).ok_or("offsets topic vanished")?
                }
                Err(e) => return Err(e.message()),
            }
        }
    };
    let count = topic.partition_count();
    topic
        .partition(partition_for(group, count))
        .ok_or_else(|| "offsets partition missing".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BrokerConfig;
    use crate::log::testing::{batch, TestRecord};
    use std::time::Duration;

    fn commit_record(topic: &str, partition: i32, offset: i64, delta: i64) -> Vec<u8> {
        let key = serde_json::to_vec(&Key {
            group: "g".into(),
            topic: topic.into(),
            partition,
        })
        .unwrap();
        let value = serde_json::to_vec(&Committed {
            offset,
            leader_epoch: -1,
            metadata: None,
            commit_timestamp: 0,
        })
        .unwrap();
        TestRecord {
            offset_delta: delta,
            key: Some(&key),
            value: &value,
            ..Default::default()
        }
        .encode()
    }

    /// Rewrites a batch's last offset delta (as compaction leaves it when it removes the
    /// batch's trailing records) and fixes its CRC.
    fn with_last_offset_delta(mut b: Vec<u8>, delta: i32) -> Vec<u8> {
        b[23..27].copy_from_slice(&delta.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// Batches no coordinator writes — a record with offset delta -1, CRC-valid garbage, a
    /// batch whose trailing records were compacted away — are skipped or read without
    /// stalling, and the commits around them are all loaded.
    #[test]
    fn loader_advances_by_batch_past_hostile_batches() {
        let dir = tempfile::tempdir().unwrap();
        let config = Arc::new(BrokerConfig::from_overrides(BTreeMap::new()).unwrap());
        let topics = TopicManager::open(dir.path(), Arc::clone(&config), true).unwrap();
        let mut cfg = BTreeMap::new();
        cfg.insert("cleanup.policy".to_string(), "compact".to_string());
        let topic = topics.create(OFFSETS_TOPIC, 1, 1, cfg, false).unwrap();
        let p = topic.partition(0).unwrap();
        let batches = [
            batch(&commit_record("t", 0, 5, 0), 0, 1, 0, 0),
            batch(&commit_record("t", 1, 6, -1), 0, 1, 0, 0),
            batch(&[0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03], 0, 3, 0, 0),
            with_last_offset_delta(batch(&commit_record("t", 2, 7, 0), 0, 1, 0, 0), 4),
            batch(&commit_record("t", 3, 9, 0), 0, 1, 0, 0),
        ];
        for b in batches {
            p.append_internal(Bytes::from(b), 0).unwrap();
        }
        drop((p, topic));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(OffsetStore::load(&topics).groups);
        });
        let groups = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the offsets loader did not finish");
        let g = &groups["g"];
        let offsets: Vec<(i32, i64)> = g.iter().map(|((_, p), c)| (*p, c.offset)).collect();
        assert_eq!(offsets, vec![(0, 5), (1, 6), (2, 7), (3, 9)]);
    }
}
