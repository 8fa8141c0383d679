//! Local checkpoints and state restoration from changelog topics.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::error::StreamsError;
use crate::task::Task;

const CHECKPOINT: &str = ".checkpoint";

/// Next changelog offset to read per store, as written at a clean close.
pub(crate) fn read(dir: &Path) -> BTreeMap<String, i64> {
    std::fs::read(dir.join(CHECKPOINT))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Writes the checkpoint atomically (temp file, fsync, rename).
pub(crate) fn write(dir: &Path, offsets: &BTreeMap<String, i64>) -> Result<(), StreamsError> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(".checkpoint.tmp");
    let data =
        serde_json::to_vec(offsets).map_err(|e| StreamsError::IllegalState(e.to_string()))?;
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&data)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(CHECKPOINT))?;
    Ok(())
}

/// Removes the checkpoint while the task runs: after a crash the local state
/// may be ahead of or behind the changelog, so it is rebuilt from scratch.
pub(crate) fn remove(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(CHECKPOINT));
}

/// Replays each logged store's changelog partition from `start` (the
/// checkpoint, or the beginning) to its end. Returns records applied.
pub(crate) fn restore(
    consumer: &BaseConsumer,
    task: &mut Task,
    start: &BTreeMap<String, i64>,
    timeout: Duration,
) -> Result<u64, StreamsError> {
    let partition = task.id.partition;
    let mut tpl = TopicPartitionList::new();
    let mut ends: BTreeMap<String, (String, i64)> = BTreeMap::new();
    for (store, topic) in task.changelogs.clone() {
        let (low, high) = consumer.fetch_watermarks(&topic, partition, timeout)?;
        let from = start.get(&store).copied().unwrap_or(low).max(low);
        if from < high {
            tpl.add_partition_offset(&topic, partition, Offset::Offset(from))?;
            ends.insert(topic.to_string(), (store, high));
        }
    }
    if ends.is_empty() {
        return Ok(0);
    }
    consumer.assign(&tpl)?;
    let mut applied = 0u64;
    let deadline = Instant::now() + timeout.max(Duration::from_secs(300));
    let mut done: BTreeMap<String, bool> = ends.keys().map(|t| (t.clone(), false)).collect();
    while done.values().any(|d| !d) {
        if Instant::now() > deadline {
            return Err(StreamsError::IllegalState(format!(
                "task {} restoration timed out",
                task.id
            )));
        }
        let Some(msg) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let msg = msg?;
        let Some((store, high)) = ends.get(msg.topic()) else {
            continue;
        };
        if let Some(s) = task.store(store) {
            s.lock()
                .restore(msg.key().unwrap_or_default(), msg.payload())?;
            applied += 1;
        }
        if msg.offset() + 1 >= *high {
            done.insert(msg.topic().to_string(), true);
        }
    }
    consumer.unassign()?;
    Ok(applied)
}
