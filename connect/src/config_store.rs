//! Connector configurations kept in a compacted topic
//! (`config.storage.topic`, default `connect-configs`), so connectors created
//! through the REST API survive a worker restart.
//!
//! Key `connector-<name>`; value `{"properties": {config}, "state": "RUNNING"|"PAUSED"|"STOPPED"}`;
//! a tombstone when the connector is deleted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::offsets::{ensure_compacted_topic, read_topic, send_keyed};
use crate::producer::Producer;
use crate::worker::State;

/// The config store could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("config store ({topic}): {message}")]
pub struct ConfigStoreError {
    topic: String,
    message: String,
}

/// One stored connector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredConnector {
    /// The connector config as given by the user.
    pub properties: Map<String, Value>,
    /// The target state the user asked for last.
    pub state: State,
}

/// Reads and writes connector configs in `config.storage.topic`.
#[derive(Clone)]
pub(crate) struct ConfigStore {
    bootstrap: String,
    topic: String,
    producer: Producer,
}

const PREFIX: &str = "connector-";

impl ConfigStore {
    /// Connects to the config topic, creating it (compacted) if missing.
    pub async fn open(
        bootstrap: &str,
        topic: &str,
        replication: i32,
        producer: Producer,
    ) -> Result<Self, ConfigStoreError> {
        let err = |message| ConfigStoreError {
            topic: topic.to_string(),
            message,
        };
        // One partition, as Kafka Connect requires: one order for all configs.
        ensure_compacted_topic(bootstrap, topic, 1, replication)
            .await
            .map_err(err)?;
        Ok(ConfigStore {
            bootstrap: bootstrap.to_string(),
            topic: topic.to_string(),
            producer,
        })
    }

    /// Every stored connector, by name (the last record per key wins).
    pub async fn load(&self) -> Result<BTreeMap<String, StoredConnector>, ConfigStoreError> {
        let (bootstrap, topic) = (self.bootstrap.clone(), self.topic.clone());
        let result = tokio::task::spawn_blocking(move || {
            let mut out = BTreeMap::new();
            read_topic(&bootstrap, &topic, |key, value| {
                let Some(name) = std::str::from_utf8(key)
                    .ok()
                    .and_then(|k| k.strip_prefix(PREFIX))
                else {
                    return;
                };
                match value.map(serde_json::from_slice::<StoredConnector>) {
                    Some(Ok(stored)) => {
                        out.insert(name.to_string(), stored);
                    }
                    None => {
                        out.remove(name);
                    }
                    Some(Err(e)) => {
                        tracing::warn!(connector = name, error = %e, "ignoring unreadable stored config")
                    }
                }
            })
            .map(|()| out)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        result.map_err(|message| ConfigStoreError {
            topic: self.topic.clone(),
            message,
        })
    }

    /// Stores a connector's config and target state.
    pub async fn put(
        &self,
        name: &str,
        properties: &Map<String, Value>,
        state: State,
    ) -> Result<(), ConfigStoreError> {
        let value = serde_json::to_string(&StoredConnector {
            properties: properties.clone(),
            state,
        })
        .map_err(|e| self.error(e.to_string()))?;
        send_keyed(
            &self.producer,
            &self.topic,
            &format!("{PREFIX}{name}"),
            Some(&value),
        )
        .await
        .map_err(|m| self.error(m))
    }

    /// Forgets a connector (a tombstone).
    pub async fn remove(&self, name: &str) -> Result<(), ConfigStoreError> {
        send_keyed(
            &self.producer,
            &self.topic,
            &format!("{PREFIX}{name}"),
            None,
        )
        .await
        .map_err(|m| self.error(m))
    }

    fn error(&self, message: String) -> ConfigStoreError {
        ConfigStoreError {
            topic: self.topic.clone(),
            message,
        }
    }
}
