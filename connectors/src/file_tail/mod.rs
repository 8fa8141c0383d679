//! FileTailSource: one record per line of one or more files, following
//! appends, rename-rotation and copy-truncate, resuming exactly after restart.

mod tracker;

use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use brook_connect::{
    lenient, ConnectError, Connector, ConnectorConfig, SourceConnector, SourceOffset,
    SourcePartition, SourceRecord, SourceTask, StoredOffsets, TaskConfig,
};
use notify::Watcher;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use tracker::{FilePosition, StartAt, Tracker};

/// Where to start reading a file that has no stored offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    /// Read existing content.
    #[default]
    Beginning,
    /// Skip existing content, read only what is appended.
    End,
}

/// Configuration of the `FileTailSource` connector class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTailSourceConfig {
    /// One file to tail.
    #[serde(default)]
    pub file: Option<String>,
    /// A glob of files to tail, re-scanned every `scan.interval.ms`.
    #[serde(default)]
    pub files: Option<String>,
    /// Destination topic.
    pub topic: String,
    /// beginning | end, for files without a stored offset.
    #[serde(rename = "read.from", default)]
    pub read_from: ReadFrom,
    /// Longer lines are cut to this many bytes (default 900,000: see
    /// [`DEFAULT_MAX_LINE_BYTES`]).
    #[serde(
        rename = "max.line.bytes",
        default = "default_max_line",
        deserialize_with = "lenient::usize"
    )]
    pub max_line_bytes: usize,
    /// Fallback polling interval when no file event arrives.
    #[serde(
        rename = "poll.interval.ms",
        default = "default_poll_ms",
        deserialize_with = "lenient::u64"
    )]
    pub poll_interval_ms: u64,
    /// How often the `files` glob is re-evaluated.
    #[serde(
        rename = "scan.interval.ms",
        default = "default_scan_ms",
        deserialize_with = "lenient::u64"
    )]
    pub scan_interval_ms: u64,
    /// How long a file renamed away from its path (rotation) or deleted
    /// keeps being read after it last grew: logrotate's default `create`
    /// mode renames the file and creates the new one before the
    /// application reopens it, so the application writes to the old file
    /// for a while. The new file is read meanwhile.
    #[serde(
        rename = "rotate.wait.ms",
        default = "default_rotate_wait_ms",
        deserialize_with = "lenient::u64"
    )]
    pub rotate_wait_ms: u64,
    /// Most records returned by one poll.
    #[serde(
        rename = "batch.size",
        default = "default_batch",
        deserialize_with = "lenient::usize"
    )]
    pub batch_size: usize,
}

/// Default `max.line.bytes`. A line becomes one record, and librdkafka
/// refuses a record above its `message.max.bytes` (1,000,000 bytes by
/// default) as Kafka brokers do above `max.message.bytes` (1,048,588): the
/// former 1 MiB let a long line fail its batch's delivery. 100,000 bytes are
/// left for the record framing (about 100 bytes), the JSON converter's
/// schema envelope (about 60) and the escaping JSON adds to quotes,
/// backslashes and control characters.
pub const DEFAULT_MAX_LINE_BYTES: usize = 900_000;

fn default_max_line() -> usize {
    DEFAULT_MAX_LINE_BYTES
}
fn default_rotate_wait_ms() -> u64 {
    5000
}
fn default_poll_ms() -> u64 {
    1000
}
fn default_scan_ms() -> u64 {
    5000
}
fn default_batch() -> usize {
    2000
}

#[typetag::serde(name = "FileTailSource")]
impl ConnectorConfig for FileTailSourceConfig {
    fn build(&self) -> Result<Connector, ConnectError> {
        match (&self.file, &self.files) {
            (Some(_), None) | (None, Some(_)) => {}
            _ => {
                return Err(ConnectError::Fatal(
                    "FileTailSource needs exactly one of \"file\" or \"files\"".into(),
                ))
            }
        }
        if let Some(pattern) = &self.files {
            glob::Pattern::new(pattern).map_err(|e| {
                ConnectError::Fatal(format!("files: invalid glob {pattern:?}: {e}"))
            })?;
        }
        Ok(Connector::Source(Box::new(FileTailSource {
            config: self.clone(),
        })))
    }
}

/// The FileTailSource connector.
struct FileTailSource {
    config: FileTailSourceConfig,
}

impl SourceConnector for FileTailSource {
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<TaskConfig>, ConnectError> {
        // A single file cannot be split; a glob is split by hashing each
        // path, so a file always lands on the same task across rescans.
        let count = if self.config.file.is_some() {
            1
        } else {
            max_tasks.max(1)
        };
        let base =
            serde_json::to_value(&self.config).map_err(|e| ConnectError::Fatal(e.to_string()))?;
        (0..count)
            .map(|index| {
                let mut cfg = base.as_object().cloned().unwrap_or_default();
                cfg.insert("task.index".into(), json!(index));
                cfg.insert("task.count".into(), json!(count));
                Ok(cfg)
            })
            .collect()
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(FileTailTask::default())
    }
}

/// A running FileTailSource task.
#[derive(Default)]
struct FileTailTask {
    config: Option<FileTailSourceConfig>,
    task_index: u64,
    task_count: u64,
    offsets: StoredOffsets,
    trackers: BTreeMap<PathBuf, Tracker>,
    last_scan: Option<Instant>,
    events: Option<mpsc::Receiver<()>>,
    watcher: Option<notify::RecommendedWatcher>,
}

impl FileTailTask {
    fn config(&self) -> Result<&FileTailSourceConfig, ConnectError> {
        self.config
            .as_ref()
            .ok_or_else(|| ConnectError::Fatal("task polled before start".into()))
    }

    /// Adds trackers for files that appeared (glob) and watches their dirs.
    fn scan(&mut self) -> Result<(), ConnectError> {
        let config = self.config()?.clone();
        let paths: Vec<PathBuf> = match (&config.file, &config.files) {
            (Some(file), _) => vec![PathBuf::from(file)],
            (None, Some(pattern)) => glob::glob(pattern)
                .map_err(|e| ConnectError::Fatal(format!("files: {e}")))?
                .filter_map(Result::ok)
                .filter(|p| p.is_file() && self.owns(p))
                .collect(),
            (None, None) => Vec::new(),
        };
        for path in paths {
            if self.trackers.contains_key(&path) {
                continue;
            }
            // A file another tracker is reading (renamed to a name the
            // glob matches) continues where that tracker got to.
            let resume = self
                .handed_over(&path)
                .or_else(|| self.offsets.get(&partition_of(&path)).and_then(position_of))
                .or_else(|| self.moved_here(&path));
            let start = match config.read_from {
                ReadFrom::Beginning => StartAt::Beginning,
                ReadFrom::End => StartAt::End,
            };
            if let (Some(watcher), Some(dir)) = (self.watcher.as_mut(), path.parent()) {
                // Watch the directory, not the file, to see rotations.
                let dir = if dir.as_os_str().is_empty() {
                    std::path::Path::new(".")
                } else {
                    dir
                };
                if let Err(e) = watcher.watch(dir, notify::RecursiveMode::NonRecursive) {
                    tracing::debug!(dir = %dir.display(), error = %e, "cannot watch; relying on polling");
                }
            }
            let mut tracker = Tracker::new(path.clone(), config.max_line_bytes, start, resume)
                .rotate_wait(Duration::from_millis(config.rotate_wait_ms));
            if let Some(pattern) = config.files.as_deref() {
                if let Ok(pattern) = glob::Pattern::new(pattern) {
                    tracker = tracker.leaving_to_others(pattern);
                }
            }
            self.trackers.insert(path, tracker);
        }
        self.last_scan = Some(Instant::now());
        Ok(())
    }

    /// Where another tracker got to in the file now at `path`, taking it
    /// from that tracker (see [`Tracker::hand_over`]).
    fn handed_over(&mut self, path: &std::path::Path) -> Option<FilePosition> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        let position = self
            .trackers
            .values_mut()
            .find_map(|t| t.hand_over(meta.dev(), meta.ino()))?;
        tracing::info!(path = %path.display(), position = position.position,
            "a rotated file the glob matches continues where its old path's reader got to");
        Some(position)
    }

    /// The stored position of a file that was renamed to `path` while the
    /// task was stopped (a rotation the glob also matches), found by device
    /// and inode, so its tracker resumes instead of re-reading it.
    fn moved_here(&self, path: &std::path::Path) -> Option<FilePosition> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        self.offsets
            .iter()
            .filter_map(|(_, offset)| position_of(offset))
            .find(|pos| (pos.dev, pos.ino) == (meta.dev(), meta.ino()))
    }

    fn owns(&self, path: &std::path::Path) -> bool {
        let mut h = DefaultHasher::new();
        path.hash(&mut h);
        h.finish() % self.task_count.max(1) == self.task_index
    }

    fn read_lines(&mut self, limit: usize) -> Result<Vec<SourceRecord>, ConnectError> {
        let topic: Arc<str> = self.config()?.topic.as_str().into();
        let mut records = Vec::new();
        for tracker in self.trackers.values_mut() {
            // batch.size bounds the lines of one poll across all files.
            if records.len() >= limit {
                break;
            }
            let lines = tracker.poll(limit - records.len()).map_err(|e| {
                ConnectError::Retriable(format!("reading {}: {e}", tracker.path().display()))
            })?;
            let partition = Arc::new(partition_of(tracker.path()));
            records.reserve(lines.len());
            // The worker stores the last offset of each partition of an
            // acknowledged poll, so only the last line that is a resume
            // point carries one: while a rotated file is drained, lines of
            // the new file carry none, and a restart resumes in the rotated
            // file (found by inode) before reading the new one again.
            let last_checkpoint = lines.iter().rposition(|l| l.checkpoint);
            for (i, line) in lines.into_iter().enumerate() {
                records.push(SourceRecord {
                    source_partition: partition.clone(),
                    source_offset: (Some(i) == last_checkpoint).then(|| offset_of(&line.after)),
                    topic: topic.clone(),
                    key: None,
                    value: Value::String(line.text),
                });
            }
        }
        Ok(records)
    }
}

#[async_trait]
impl SourceTask for FileTailTask {
    async fn start(
        &mut self,
        config: TaskConfig,
        offsets: StoredOffsets,
    ) -> Result<(), ConnectError> {
        let mut config = config;
        let index = config
            .remove("task.index")
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        let count = config
            .remove("task.count")
            .and_then(|v| v.as_u64())
            .unwrap_or(1);
        let parsed: FileTailSourceConfig = serde_json::from_value(Value::Object(config))
            .map_err(|e| ConnectError::Fatal(format!("invalid task config: {e}")))?;
        let (tx, rx) = mpsc::channel(1);
        // Events only wake the poll loop; a full channel already means "wake".
        let watcher = notify::recommended_watcher(move |_event: notify::Result<notify::Event>| {
            let _ = tx.try_send(());
        });
        match watcher {
            Ok(w) => self.watcher = Some(w),
            Err(e) => tracing::warn!(error = %e, "file events unavailable; polling only"),
        }
        self.events = Some(rx);
        self.config = Some(parsed);
        self.task_index = index;
        self.task_count = count;
        self.offsets = offsets;
        self.scan()
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        let config = self.config()?.clone();
        let deadline = Instant::now() + Duration::from_millis(config.poll_interval_ms);
        loop {
            if config.files.is_some()
                && self
                    .last_scan
                    .is_none_or(|t| t.elapsed() >= Duration::from_millis(config.scan_interval_ms))
            {
                self.scan()?;
            }
            let records = self.read_lines(config.batch_size)?;
            if !records.is_empty() {
                return Ok(records);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(Vec::new());
            }
            let wait = (deadline - now).min(Duration::from_millis(config.poll_interval_ms));
            match self.events.as_mut() {
                Some(rx) => {
                    let _ = tokio::time::timeout(wait, rx.recv()).await;
                }
                None => tokio::time::sleep(wait).await,
            }
        }
    }

    async fn stop(&mut self) {
        self.watcher = None;
        self.events = None;
        self.trackers.clear();
    }
}

fn partition_of(path: &std::path::Path) -> SourcePartition {
    let mut p = SourcePartition::new();
    p.insert(
        "file".into(),
        Value::String(path.to_string_lossy().into_owned()),
    );
    p
}

fn offset_of(pos: &FilePosition) -> SourceOffset {
    let mut o = SourceOffset::new();
    o.insert("position".into(), json!(pos.position));
    o.insert("device".into(), json!(pos.dev));
    o.insert("inode".into(), json!(pos.ino));
    o.insert("fingerprint".into(), json!(&*pos.fingerprint));
    o
}

fn position_of(offset: &SourceOffset) -> Option<FilePosition> {
    Some(FilePosition {
        position: offset.get("position")?.as_u64()?,
        dev: offset.get("device").and_then(Value::as_u64).unwrap_or(0),
        ino: offset.get("inode").and_then(Value::as_u64).unwrap_or(0),
        fingerprint: offset
            .get("fingerprint")
            .and_then(Value::as_str)
            .unwrap_or("")
            .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_connect::ConnectorDefinition;
    use std::io::Write;

    fn def(extra: Value) -> Result<ConnectorDefinition, brook_connect::ConfigError> {
        let mut v = json!({"name": "tail", "connector.class": "FileTailSource", "topic": "logs"});
        if let (Some(m), Some(extra)) = (v.as_object_mut(), extra.as_object()) {
            m.extend(extra.clone());
        }
        ConnectorDefinition::from_json(&v)
    }

    #[test]
    fn config_errors_name_the_key() {
        let err = def(json!({"file": "/x", "read.from": "middle"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("middle"), "{err}");
        let err = def(json!({"file": "/x", "max.line.byte": "10"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max.line.byte"), "{err}");
        let d = def(json!({"file": "/x", "files": "/y*"})).unwrap();
        assert!(d.config.build().is_err());
    }

    #[tokio::test]
    async fn task_reads_lines_and_resumes_from_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.log");
        std::fs::write(&path, "a\nb\n").unwrap();
        let d = def(json!({"file": path.to_str().unwrap(), "poll.interval.ms": 50})).unwrap();
        let Connector::Source(conn) = d.config.build().unwrap() else {
            panic!("not a source")
        };
        let cfgs = conn.task_configs(4).unwrap();
        assert_eq!(cfgs.len(), 1);
        let mut task = conn.create_task();
        task.start(cfgs[0].clone(), StoredOffsets::default())
            .await
            .unwrap();
        let recs = task.poll().await.unwrap();
        assert_eq!(
            recs.iter().map(|r| r.value.clone()).collect::<Vec<_>>(),
            [json!("a"), json!("b")]
        );
        assert!(task.poll().await.unwrap().is_empty());
        task.stop().await;

        let mut offsets = StoredOffsets::default();
        // Only the last line of a poll carries an offset; resume after "a".
        let after_a = recs[1].source_offset.clone().unwrap();
        let mut after_a_pos = after_a.clone();
        after_a_pos.insert("position".into(), json!(2));
        offsets.insert(&recs[0].source_partition, after_a_pos);
        assert!(recs[0].source_offset.is_none());
        assert_eq!(after_a["position"], 4);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"c\n")
            .unwrap();
        let mut task = conn.create_task();
        task.start(cfgs[0].clone(), offsets).await.unwrap();
        let recs = task.poll().await.unwrap();
        assert_eq!(
            recs.iter().map(|r| r.value.clone()).collect::<Vec<_>>(),
            [json!("b"), json!("c")]
        );
    }

    /// The one task of connector `d`, started without stored offsets.
    async fn started_task(d: ConnectorDefinition) -> Box<dyn SourceTask> {
        let Connector::Source(conn) = d.config.build().unwrap() else {
            panic!("not a source")
        };
        let mut task = conn.create_task();
        task.start(
            conn.task_configs(1).unwrap().remove(0),
            StoredOffsets::default(),
        )
        .await
        .unwrap();
        task
    }

    #[tokio::test]
    async fn glob_picks_up_new_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("1.log"), "one\n").unwrap();
        let pattern = format!("{}/*.log", dir.path().display());
        let d =
            def(json!({"files": pattern, "poll.interval.ms": 50, "scan.interval.ms": 0})).unwrap();
        let mut task = started_task(d).await;
        assert_eq!(task.poll().await.unwrap()[0].value, json!("one"));
        std::fs::write(dir.path().join("2.log"), "two\n").unwrap();
        let recs = task.poll().await.unwrap();
        assert_eq!(recs[0].value, json!("two"));
        assert!(recs[0].source_partition["file"]
            .as_str()
            .unwrap()
            .ends_with("2.log"));
    }

    /// Lines of a poll and the stored offsets they complete.
    fn resume_point(recs: &[SourceRecord], mut offsets: StoredOffsets) -> StoredOffsets {
        for r in recs {
            if let Some(o) = &r.source_offset {
                offsets.insert(&r.source_partition, o.clone());
            }
        }
        offsets
    }

    #[tokio::test]
    async fn glob_matching_rotated_names_reads_each_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let rotated = dir.path().join("app.log.1");
        let append = |path: &std::path::Path, text: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        };
        append(&log, "one\ntwo\n");
        let pattern = format!("{}/app.log*", dir.path().display());
        let d = def(
            json!({"files": pattern, "poll.interval.ms": 50, "scan.interval.ms": 0,
            "rotate.wait.ms": 60_000}),
        )
        .unwrap();
        let mut task = started_task(d).await;
        let mut got: Vec<Value> = task
            .poll()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.value)
            .collect();
        // Rotated (logrotate `create`), then written to under both names.
        std::fs::rename(&log, &rotated).unwrap();
        append(&log, "four\n");
        append(&rotated, "three\n");
        for _ in 0..4 {
            got.extend(task.poll().await.unwrap().into_iter().map(|r| r.value));
        }
        append(&rotated, "three and a half\n");
        for _ in 0..3 {
            got.extend(task.poll().await.unwrap().into_iter().map(|r| r.value));
        }
        got.sort_by_key(|v| v.to_string());
        assert_eq!(
            got,
            [
                json!("four"),
                json!("one"),
                json!("three and a half"),
                json!("three"),
                json!("two")
            ]
        );
    }

    #[tokio::test]
    async fn glob_resumes_a_file_renamed_while_stopped_without_rereading_it() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        std::fs::write(&log, "one\ntwo\n").unwrap();
        let pattern = format!("{}/app.log*", dir.path().display());
        let d =
            def(json!({"files": pattern, "poll.interval.ms": 50, "scan.interval.ms": 0})).unwrap();
        let Connector::Source(conn) = d.config.build().unwrap() else {
            panic!("not a source")
        };
        let cfg = conn.task_configs(1).unwrap().remove(0);
        let mut task = conn.create_task();
        task.start(cfg.clone(), StoredOffsets::default())
            .await
            .unwrap();
        let recs = task.poll().await.unwrap();
        assert_eq!(recs.len(), 2);
        let offsets = resume_point(&recs, StoredOffsets::default());
        task.stop().await;

        // While stopped: one more line, a rename rotation, a new file.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .unwrap()
            .write_all(b"three\n")
            .unwrap();
        std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
        std::fs::write(&log, "four\n").unwrap();

        let mut task = conn.create_task();
        task.start(cfg, offsets).await.unwrap();
        let mut got = Vec::new();
        for _ in 0..4 {
            got.extend(task.poll().await.unwrap().into_iter().map(|r| r.value));
        }
        got.sort_by_key(|v| v.to_string());
        // "three" from the rotated file (resumed by inode), "four" from the
        // new one; nothing read twice.
        assert_eq!(got, [json!("four"), json!("three")]);
    }
}
