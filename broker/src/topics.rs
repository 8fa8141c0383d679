//! Topics and their partitions: creation, deletion, configs, and their persistence on disk.
//!
//! Layout under the data directory: one directory per partition, `<topic>-<n>/` (as Kafka),
//! and `.meta/topics/<topic>.json` holding the topic id, partition count and config overrides.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::{BrokerConfig, TopicConfig};
use crate::error::{Error, IoContext, Result};
use crate::log::Log;
use crate::util::{now_ms, write_atomically};
use crate::wakeups::Waiters;

/// One partition: its log behind a lock held only for appends and short lookups.
pub(crate) struct Partition {
    pub topic: String,
    pub index: i32,
    pub log: Mutex<Log>,
    /// Fetches long-polling this partition, woken by every append to it.
    pub waiters: Waiters,
}

impl Partition {
    fn new(topic: &str, index: i32, log: Log) -> Self {
        Partition {
            topic: topic.to_string(),
            index,
            log: Mutex::new(log),
            waiters: Waiters::default(),
        }
    }
}

/// A topic: id, config and partitions.
pub(crate) struct Topic {
    pub name: String,
    pub id: Uuid,
    pub internal: bool,
    pub config: RwLock<Arc<TopicConfig>>,
    pub partitions: RwLock<Vec<Arc<Partition>>>,
}

impl Topic {
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.read().get(i).cloned())
    }

    pub fn partition_count(&self) -> usize {
        self.partitions.read().len()
    }

    pub fn config(&self) -> Arc<TopicConfig> {
        Arc::clone(&self.config.read())
    }
}

#[derive(Serialize, Deserialize)]
struct TopicMeta {
    name: String,
    id: Uuid,
    partitions: i32,
    configs: BTreeMap<String, String>,
}

/// Whether a topic belongs to the broker itself (Kafka's `Topic.isInternal`): clients may read
/// it but cannot produce to it, delete it, add partitions or delete records.
pub(crate) fn is_internal(name: &str) -> bool {
    name == crate::coordinator::OFFSETS_TOPIC || name == TRANSACTION_STATE_TOPIC
}

/// Kafka's transaction log: internal in Kafka, so internal here too.
const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";

/// Why a topic operation failed; each maps to a Kafka error code.
#[derive(Debug)]
pub(crate) enum TopicError {
    Exists(String),
    NotFound(String),
    InvalidName(String),
    InvalidPartitions(String),
    InvalidReplicationFactor(String),
    InvalidConfig(String),
    InvalidRequest(String),
    Storage(String),
}

impl TopicError {
    /// The Kafka error this maps to on the wire.
    pub fn error(&self) -> ResponseError {
        match self {
            TopicError::Exists(_) => ResponseError::TopicAlreadyExists,
            TopicError::NotFound(_) => ResponseError::UnknownTopicOrPartition,
            TopicError::InvalidName(_) => ResponseError::InvalidTopicException,
            TopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
            TopicError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor,
            TopicError::InvalidConfig(_) => ResponseError::InvalidConfig,
            TopicError::InvalidRequest(_) => ResponseError::InvalidRequest,
            TopicError::Storage(_) => ResponseError::KafkaStorageError,
        }
    }

    /// The Kafka error code.
    pub fn code(&self) -> i16 {
        self.error().code()
    }

    pub fn message(&self) -> String {
        match self {
            TopicError::Exists(t) => format!("Topic '{t}' already exists."),
            TopicError::NotFound(t) => format!("Topic '{t}' does not exist."),
            TopicError::InvalidName(m)
            | TopicError::InvalidPartitions(m)
            | TopicError::InvalidReplicationFactor(m)
            | TopicError::InvalidConfig(m)
            | TopicError::InvalidRequest(m)
            | TopicError::Storage(m) => m.clone(),
        }
    }
}

/// Checks a topic name against Kafka's rules.
pub(crate) fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(TopicError::InvalidName(format!(
            "Topic name '{name}' is illegal"
        )));
    }
    if name.len() > 249 {
        return Err(TopicError::InvalidName(format!(
            "Topic name is longer than 249 characters: '{name}'"
        )));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(TopicError::InvalidName(format!(
            "Topic name '{name}' is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        )));
    }
    Ok(())
}

/// All topics of the broker.
pub(crate) struct TopicManager {
    data_dir: PathBuf,
    broker: Arc<BrokerConfig>,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Serialises create/delete/alter so their on-disk effects do not interleave.
    admin: Mutex<()>,
}

fn meta_dir(data_dir: &Path) -> PathBuf {
    data_dir.join(".meta").join("topics")
}

fn partition_dir(data_dir: &Path, topic: &str, index: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{index}"))
}

impl TopicManager {
    /// Loads every persisted topic and opens its partition logs.
    pub fn open(data_dir: &Path, broker: Arc<BrokerConfig>, clean_shutdown: bool) -> Result<Self> {
        let dir = meta_dir(data_dir);
        fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
        let mgr = TopicManager {
            data_dir: data_dir.to_path_buf(),
            broker,
            topics: RwLock::new(HashMap::new()),
            admin: Mutex::new(()),
        };
        let now = now_ms();
        for entry in fs::read_dir(&dir).ctx(|| format!("reading {}", dir.display()))? {
            let path = entry.ctx(|| format!("reading {}", dir.display()))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = fs::read_to_string(&path).ctx(|| format!("reading {}", path.display()))?;
            let meta: TopicMeta = serde_json::from_str(&text).map_err(|e| Error::Metadata {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            let config = TopicConfig::resolve(meta.configs.clone(), &mgr.broker).map_err(|m| {
                Error::Metadata {
                    path: path.display().to_string(),
                    message: m,
                }
            })?;
            let config = Arc::new(config);
            let mut partitions = Vec::new();
            for i in 0..meta.partitions {
                let pdir = partition_dir(data_dir, &meta.name, i);
                let log = Log::open(&pdir, Arc::clone(&config), clean_shutdown, now)
                    .ctx(|| format!("opening log {}", pdir.display()))?;
                partitions.push(Arc::new(Partition::new(&meta.name, i, log)));
            }
            let topic = Topic {
                internal: is_internal(&meta.name),
                name: meta.name.clone(),
                id: meta.id,
                config: RwLock::new(config),
                partitions: RwLock::new(partitions),
            };
            mgr.topics.write().insert(meta.name, Arc::new(topic));
        }
        Ok(mgr)
    }

    pub fn broker_config(&self) -> &BrokerConfig {
        &self.broker
    }

    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics.read().values().find(|t| t.id == id).cloned()
    }

    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.get(topic)?.partition(index)
    }

    /// Every topic, sorted by name.
    pub fn list(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<_> = self.topics.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    fn persist(&self, topic: &Topic) -> Result<(), TopicError> {
        let meta = TopicMeta {
            name: topic.name.clone(),
            id: topic.id,
            partitions: topic.partition_count() as i32,
            configs: topic.config().overrides.clone(),
        };
        let path = meta_dir(&self.data_dir).join(format!("{}.json", topic.name));
        let text = serde_json::to_vec_pretty(&meta).expect("topic metadata serialises");
        write_atomically(&path, &text).map_err(|e| TopicError::Storage(e.to_string()))
    }

    /// Creates a topic; `partitions`/`replication` of -1 mean the broker default.
    pub fn create(
        &self,
        name: &str,
        partitions: i32,
        replication: i16,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<Arc<Topic>, TopicError> {
        validate_topic_name(name)?;
        let _guard = self.admin.lock();
        if self.topics.read().contains_key(name) {
            return Err(TopicError::Exists(name.to_string()));
        }
        let partitions = if partitions == -1 {
            self.broker.settings().num_partitions
        } else {
            partitions
        };
        if partitions <= 0 {
            return Err(TopicError::InvalidPartitions(
                "Number of partitions must be larger than 0.".into(),
            ));
        }
        if partitions > 100_000 {
            return Err(TopicError::InvalidPartitions(format!(
                "{partitions} partitions is more than this broker allows (100000)"
            )));
        }
        if replication != -1 && replication != 1 {
            return Err(TopicError::InvalidReplicationFactor(format!(
                "Replication factor: {replication} larger than available brokers: 1."
            )));
        }
        let config =
            TopicConfig::resolve(overrides, &self.broker).map_err(TopicError::InvalidConfig)?;
        let config = Arc::new(config);
        let topic = Topic {
            name: name.to_string(),
            id: Uuid::new_v4(),
            internal: is_internal(name),
            config: RwLock::new(Arc::clone(&config)),
            partitions: RwLock::new(Vec::new()),
        };
        if validate_only {
            return Ok(Arc::new(topic));
        }
        self.open_partitions(&topic, partitions)?;
        self.persist(&topic)?;
        let topic = Arc::new(topic);
        self.topics
            .write()
            .insert(name.to_string(), Arc::clone(&topic));
        tracing::info!(topic = name, partitions, "created topic");
        Ok(topic)
    }

    fn open_partitions(&self, topic: &Topic, count: i32) -> Result<(), TopicError> {
        let config = topic.config();
        let now = now_ms();
        let mut parts = topic.partitions.write();
        for i in parts.len() as i32..count {
            let dir = partition_dir(&self.data_dir, &topic.name, i);
            // A leftover directory of a deleted topic with the same name must not leak into this one.
            let _ = fs::remove_dir_all(&dir);
            let log = Log::open(&dir, Arc::clone(&config), true, now)
                .map_err(|e| TopicError::Storage(format!("creating {}: {e}", dir.display())))?;
            parts.push(Arc::new(Partition::new(&topic.name, i, log)));
        }
        Ok(())
    }

    /// Deletes a topic and its data.
    pub fn delete(&self, name: &str) -> Result<Uuid, TopicError> {
        if is_internal(name) {
            return Err(TopicError::InvalidRequest(format!(
                "The internal topic {name} cannot be deleted"
            )));
        }
        if !self.broker.settings().delete_topic_enable {
            return Err(TopicError::InvalidRequest(
                "Topic deletion is disabled (delete.topic.enable=false)".into(),
            ));
        }
        let _guard = self.admin.lock();
        let topic = self
            .topics
            .write()
            .remove(name)
            .ok_or_else(|| TopicError::NotFound(name.to_string()))?;
        let _ = fs::remove_file(meta_dir(&self.data_dir).join(format!("{name}.json")));
        for p in topic.partitions.read().iter() {
            let dir = p.log.lock().dir().to_path_buf();
            if let Err(e) = fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "could not remove partition directory");
            }
        }
        tracing::info!(topic = name, "deleted topic");
        Ok(topic.id)
    }

    /// Grows a topic to `count` partitions.
    pub fn add_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        if is_internal(name) {
            // Group-to-partition placement hashes over the partition count: growing the
            // offsets topic would orphan every group's committed offsets.
            return Err(TopicError::InvalidRequest(format!(
                "The internal topic {name} cannot be given more partitions"
            )));
        }
        let _guard = self.admin.lock();
        let topic = self
            .get(name)
            .ok_or_else(|| TopicError::NotFound(name.to_string()))?;
        let current = topic.partition_count() as i32;
        if count <= current {
            return Err(TopicError::InvalidPartitions(format!(
                "Topic currently has {current} partitions, which is higher than or equal to the requested {count}."
            )));
        }
        if count > 100_000 {
            return Err(TopicError::InvalidPartitions(format!(
                "{count} partitions is more than this broker allows (100000)"
            )));
        }
        if validate_only {
            return Ok(());
        }
        self.open_partitions(&topic, count)?;
        self.persist(&topic)
    }

    /// Replaces a topic's config overrides (after validating them all).
    pub fn set_configs(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _guard = self.admin.lock();
        let topic = self
            .get(name)
            .ok_or_else(|| TopicError::NotFound(name.to_string()))?;
        let config =
            TopicConfig::resolve(overrides, &self.broker).map_err(TopicError::InvalidConfig)?;
        if validate_only {
            return Ok(());
        }
        let config = Arc::new(config);
        *topic.config.write() = Arc::clone(&config);
        for p in topic.partitions.read().iter() {
            p.log.lock().set_config(Arc::clone(&config));
        }
        self.persist(&topic)
    }
}
