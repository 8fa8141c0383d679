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
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde::{Deserialize, Serialize};

use super::group::GroupSnapshot;
use crate::topics::{Partition, TopicError, TopicManager};
use crate::util::now_ms;

/// Name of the internal offsets topic.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

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
            let (mut offset, end) = {
                let log = p.log.lock();
                (log.log_start_offset(), log.next_offset())
            };
            while offset < end {
                let plan = p.log.lock().read_plan(offset);
                let mut data = match plan.read(offset, 1 << 20) {
                    Ok(d) if !d.is_empty() => d,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read {OFFSETS_TOPIC}");
                        break;
                    }
                };
                while !data.is_empty() {
                    let Ok(set) = RecordBatchDecoder::decode(&mut data) else {
                        break;
                    };
                    for r in set.records {
                        offset = r.offset + 1;
                        if let Some(k) = &r.key {
                            store.apply(k, r.value.as_deref());
                        }
                    }
                }
            }
        }
        let n: usize = store.groups.values().map(|g| g.len()).sum();
        tracing::info!(
            groups = store.groups.len(),
            offsets = n,
            "loaded committed offsets"
        );
        store
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

    /// Durably records a group's membership snapshot (`None`: the group is empty or gone).
    pub fn write_group(
        &mut self,
        topics: &TopicManager,
        group: &str,
        snapshot: Option<&GroupSnapshot>,
        num_partitions: usize,
        segment_bytes: i64,
    ) -> Result<(), String> {
        let key = serde_json::to_vec(&GroupKey {
            group: group.to_string(),
            kind: GROUP_KIND.to_string(),
        })
        .map_err(|e| e.to_string())?;
        let value = snapshot
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|e| e.to_string())?;
        write_records(
            topics,
            group,
            vec![(key, value)],
            num_partitions,
            segment_bytes,
        )?;
        self.snapshots.remove(group);
        Ok(())
    }

    /// Durably records commits (`None` deletes), then applies them in memory.
    pub fn commit(
        &mut self,
        topics: &TopicManager,
        group: &str,
        entries: Vec<(String, i32, Option<Committed>)>,
        num_partitions: usize,
        segment_bytes: i64,
    ) -> Result<(), String> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut records = Vec::with_capacity(entries.len());
        for (topic, partition, c) in &entries {
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
        write_records(
            topics,
            group,
            records.clone(),
            num_partitions,
            segment_bytes,
        )?;
        for (k, v) in &records {
            self.apply(k, v.as_deref());
        }
        Ok(())
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

/// Appends key/value records (a `None` value is a tombstone) to the group's partition of
/// `__consumer_offsets`, creating the topic on first use.
fn write_records(
    topics: &TopicManager,
    group: &str,
    entries: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    num_partitions: usize,
    segment_bytes: i64,
) -> Result<(), String> {
    let partition = offsets_partition(topics, group, num_partitions, segment_bytes)?;
    let now = now_ms();
    let records: Vec<Record> = entries
        .into_iter()
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
            key: Some(Bytes::from(key)),
            value: value.map(Bytes::from),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &opts).map_err(|e| e.to_string())?;
    let data = buf.freeze();
    partition
        .append_internal(data, now)
        .map_err(|e| e.message())?;
    Ok(())
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
