//! The standalone worker: owns connectors and runs their tasks.

mod config;
mod offsets_admin;
mod sink;
mod sink_decode;
mod source;
mod status;
mod tasks;

pub use config::WorkerConfig;
pub use status::{ConnectorState, ConnectorStatus, State, TaskStatus};
pub(crate) use tasks::{mark_failed, wait_until_running, SharedStatus, Target};

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::config::{ConfigError, ConnectorDefinition};
use crate::config_store::{ConfigStore, ConfigStoreError};
use crate::connector::{ConnectError, Connector};
use crate::offsets::{OffsetStore, OffsetStoreError};
use crate::status_store::StatusStore;
use tasks::{join_all, TaskHandle};

/// Errors returned by worker operations.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The worker config is invalid.
    #[error("invalid worker config: {0}")]
    InvalidWorkerConfig(String),
    /// A connector config is invalid.
    #[error(transparent)]
    InvalidConfig(#[from] ConfigError),
    /// No connector has this name.
    #[error("Connector {0} not found")]
    NotFound(String),
    /// A connector with this name already runs.
    #[error("Connector {0} already exists")]
    AlreadyExists(String),
    /// The connector refused its configuration.
    #[error("connector {name}: {error}")]
    Connector {
        /// Connector name.
        name: String,
        /// What the connector reported.
        error: ConnectError,
    },
    /// Kafka could not be reached or refused an operation.
    #[error("kafka: {0}")]
    Kafka(String),
    /// The offset store failed.
    #[error(transparent)]
    OffsetStore(#[from] OffsetStoreError),
    /// The config store failed.
    #[error(transparent)]
    ConfigStore(#[from] ConfigStoreError),
    /// Offsets can only be changed while the connector is STOPPED.
    #[error("Connectors must be in the STOPPED state before their offsets can be modified (connector {0})")]
    NotStopped(String),
    /// The request body is malformed.
    #[error("{0}")]
    BadRequest(String),
}

/// How long a shutdown waits for the last status records (the broker may be
/// gone: statuses are not worth a hang).
const STATUS_CLOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

struct RunningConnector {
    /// The config exactly as given.
    raw: Map<String, Value>,
    /// None when the (restored) config no longer parses.
    definition: Option<ConnectorDefinition>,
    state: State,
    /// Why the connector itself FAILED.
    trace: Option<String>,
    kind: &'static str,
    tasks: Vec<TaskHandle>,
}

impl RunningConnector {
    /// A connector that could not be started; it stays listed as FAILED.
    fn failed(raw: Map<String, Value>, error: &WorkerError) -> Self {
        let definition = ConnectorDefinition::from_json(&Value::Object(raw.clone())).ok();
        let kind = match definition.as_ref().map(|d| d.config.build()) {
            Some(Ok(Connector::Source(_))) => "source",
            Some(Ok(Connector::Sink(_))) => "sink",
            _ => "unknown",
        };
        RunningConnector {
            raw,
            definition,
            state: State::Failed,
            trace: Some(error.to_string()),
            kind,
            tasks: Vec::new(),
        }
    }
}

struct Inner {
    config: WorkerConfig,
    worker_id: String,
    offsets: OffsetStore,
    configs: ConfigStore,
    /// Where connector and task state changes are written.
    statuses: StatusStore,
    /// Source records, DLQ records (offsets, configs and statuses share it too).
    producer: crate::producer::Producer,
    connectors: Mutex<BTreeMap<String, RunningConnector>>,
}

/// A standalone Connect worker.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

impl Worker {
    /// Connects to Kafka and prepares the offset, config and status stores.
    pub async fn start(config: WorkerConfig) -> Result<Worker, WorkerError> {
        let [offset_replication, config_replication, status_replication] =
            config.replication_factors()?;
        let status_partitions = config.status_partitions()?;
        let producer =
            crate::producer::producer(&config.bootstrap_servers).map_err(WorkerError::Kafka)?;
        let offsets = OffsetStore::open(
            &config.bootstrap_servers,
            &config.offset_storage_topic,
            offset_replication,
            producer.clone(),
        )
        .await?;
        let configs = ConfigStore::open(
            &config.bootstrap_servers,
            &config.config_storage_topic,
            config_replication,
            producer.clone(),
        )
        .await?;
        let worker_id = format!("standalone:{}", config.rest_port);
        let statuses = StatusStore::open(
            &config.bootstrap_servers,
            &config.status_storage_topic,
            status_partitions,
            status_replication,
            producer.clone(),
            &worker_id,
        )
        .await
        .map_err(WorkerError::Kafka)?;
        let worker = Worker {
            inner: Arc::new(Inner {
                config,
                worker_id,
                offsets,
                configs,
                statuses,
                producer,
                connectors: Mutex::new(BTreeMap::new()),
            }),
        };
        worker.restore().await?;
        Ok(worker)
    }

    /// Recreates the connectors stored in the config topic, in their target
    /// state; one that cannot start is listed as FAILED with its error.
    async fn restore(&self) -> Result<(), WorkerError> {
        for (name, stored) in self.inner.configs.load().await? {
            let mut raw = stored.properties;
            raw.insert("name".into(), Value::String(name.clone()));
            // Started straight in its target state: a STOPPED connector
            // gets no task, a PAUSED one tasks that wait before starting.
            match self
                .start_connector(&Value::Object(raw.clone()), stored.state)
                .await
            {
                Ok(_) => {
                    tracing::info!(connector = %name, state = ?stored.state, "restored from the config topic");
                }
                Err(e) => {
                    tracing::error!(connector = %name, error = %e, "stored connector cannot start");
                    self.insert_failed(&name, raw, &e);
                }
            }
        }
        Ok(())
    }

    /// Lists a connector that could not start as FAILED, with the error.
    fn insert_failed(&self, name: &str, raw: Map<String, Value>, error: &WorkerError) {
        let failed = RunningConnector::failed(raw, error);
        let mut connectors = self.inner.connectors.lock();
        self.inner
            .statuses
            .connector(name, failed.state, failed.trace.as_deref());
        connectors.insert(name.to_string(), failed);
    }

    /// Persists a connector's config and target state.
    async fn persist(&self, name: &str) -> Result<(), WorkerError> {
        let entry = {
            let connectors = self.inner.connectors.lock();
            connectors.get(name).map(|c| {
                let state = match c.state {
                    State::Paused | State::Stopped => c.state,
                    _ => State::Running,
                };
                (c.raw.clone(), state)
            })
        };
        match entry {
            Some((raw, state)) => self.inner.configs.put(name, &raw, state).await?,
            None => self.inner.configs.remove(name).await?,
        }
        Ok(())
    }

    /// The worker's configuration.
    pub fn config(&self) -> &WorkerConfig {
        &self.inner.config
    }

    /// Validates a connector config, starts its tasks and stores the config
    /// in the config topic.
    pub async fn add_connector(&self, config: &Value) -> Result<String, WorkerError> {
        self.add_connector_in(config, State::Running).await
    }

    /// [`Worker::add_connector`] in target state `initial` (RUNNING, PAUSED
    /// or STOPPED, KIP-980's `initial_state`).
    pub async fn add_connector_in(
        &self,
        config: &Value,
        initial: State,
    ) -> Result<String, WorkerError> {
        let name = self.start_connector(config, initial).await?;
        if let Err(e) = self.persist(&name).await {
            // Not stored means it would not survive a restart: undo.
            if self.remove_running(&name).await.is_ok() {
                self.inner.statuses.remove(&name);
            }
            return Err(e);
        }
        Ok(name)
    }

    /// Validates a connector config and starts it in target state `state`
    /// (not persisted): RUNNING, PAUSED (tasks created paused) or STOPPED
    /// (no tasks).
    async fn start_connector(&self, config: &Value, state: State) -> Result<String, WorkerError> {
        let definition = ConnectorDefinition::from_json(config)?;
        let name = definition.settings.name.clone();
        if self.inner.connectors.lock().contains_key(&name) {
            return Err(WorkerError::AlreadyExists(name));
        }
        let connector = definition
            .config
            .build()
            .map_err(|error| WorkerError::Connector {
                name: name.clone(),
                error,
            })?;
        let kind = match &connector {
            Connector::Source(_) => "source",
            Connector::Sink(_) => "sink",
        };
        let (state, tasks) = match state {
            State::Stopped => (State::Stopped, Vec::new()),
            State::Paused => (
                State::Paused,
                tasks::spawn_tasks(&self.inner, &definition, connector, Target::Pause).await?,
            ),
            _ => (
                State::Running,
                tasks::spawn_tasks(&self.inner, &definition, connector, Target::Run).await?,
            ),
        };
        let mut connectors = self.inner.connectors.lock();
        if connectors.contains_key(&name) {
            // Lost a race with a concurrent add of the same name.
            for t in tasks {
                let _ = t.control.send(Target::Stop);
            }
            return Err(WorkerError::AlreadyExists(name));
        }
        // Under the lock, as every connector status write, so the topic
        // gets them in the order the states changed.
        self.inner.statuses.connector(&name, state, None);
        connectors.insert(
            name.clone(),
            RunningConnector {
                raw: definition.raw.clone(),
                definition: Some(definition),
                state,
                trace: None,
                kind,
                tasks,
            },
        );
        Ok(name)
    }

    /// Names of all connectors.
    pub fn connectors(&self) -> Vec<String> {
        self.inner.connectors.lock().keys().cloned().collect()
    }

    /// The configuration a connector was created with.
    pub fn connector_config(&self, name: &str) -> Option<Map<String, Value>> {
        self.inner
            .connectors
            .lock()
            .get(name)
            .map(|c| c.raw.clone())
    }

    /// Committed offsets in Kafka Connect's `GET /connectors/{name}/offsets`
    /// shape: source offsets from the offset topic, sink offsets from the
    /// `connect-<name>` consumer group.
    pub async fn offsets(&self, name: &str) -> Result<Value, WorkerError> {
        let connector = {
            let connectors = self.inner.connectors.lock();
            let c = connectors
                .get(name)
                .ok_or_else(|| WorkerError::NotFound(name.to_string()))?;
            c.definition
                .as_ref()
                .ok_or_else(|| {
                    WorkerError::BadRequest(format!("connector {name} has no valid config"))
                })?
                .config
                .build()
                .map_err(|error| WorkerError::Connector {
                    name: name.to_string(),
                    error,
                })?
        };
        let entries: Vec<Value> = match connector {
            Connector::Source(_) => {
                let stored = self.inner.offsets.load(name).await?;
                stored
                    .iter()
                    .map(|(p, o)| serde_json::json!({"partition": p, "offset": o}))
                    .collect()
            }
            Connector::Sink(sink) => {
                let (bootstrap, group, topics) = (
                    self.inner.config.bootstrap_servers.clone(),
                    format!("connect-{name}"),
                    sink.topics(),
                );
                tokio::task::spawn_blocking(move || {
                    offsets_admin::sink_offsets(&bootstrap, &group, &topics)
                })
                .await
                .map_err(|e| WorkerError::Kafka(e.to_string()))??
            }
        };
        Ok(serde_json::json!({ "offsets": entries }))
    }

    /// Task configurations of a connector, in task order.
    pub fn task_configs(&self, name: &str) -> Option<Vec<Map<String, Value>>> {
        self.inner
            .connectors
            .lock()
            .get(name)
            .map(|c| c.tasks.iter().map(|t| t.config.clone()).collect())
    }

    /// Status of a connector and its tasks.
    pub fn status(&self, name: &str) -> Option<ConnectorStatus> {
        let connectors = self.inner.connectors.lock();
        let c = connectors.get(name)?;
        let worker_id = self.inner.worker_id.clone();
        let tasks: Vec<TaskStatus> = c
            .tasks
            .iter()
            .enumerate()
            .map(|(id, t)| {
                let (state, trace) = t.status.get();
                TaskStatus {
                    id,
                    state,
                    worker_id: worker_id.clone(),
                    trace,
                }
            })
            .collect();
        Some(ConnectorStatus {
            name: name.to_string(),
            connector: ConnectorState {
                state: c.state,
                worker_id,
                trace: c.trace.clone(),
            },
            tasks,
            kind: c.kind.to_string(),
        })
    }

    /// Pauses every task of a connector (they keep their resources).
    pub async fn pause(&self, name: &str) -> Result<(), WorkerError> {
        self.signal(name, Target::Pause, State::Paused)?;
        self.persist(name).await
    }

    /// Resumes a paused connector, or starts a STOPPED one again from its
    /// stored offsets (KIP-875).
    pub async fn resume(&self, name: &str) -> Result<(), WorkerError> {
        let stopped = self
            .inner
            .connectors
            .lock()
            .get(name)
            .map(|c| c.state == State::Stopped)
            .ok_or_else(|| WorkerError::NotFound(name.to_string()))?;
        if stopped {
            return self.restart(name).await;
        }
        self.signal(name, Target::Run, State::Running)?;
        self.persist(name).await
    }

    fn signal(&self, name: &str, target: Target, state: State) -> Result<(), WorkerError> {
        let mut connectors = self.inner.connectors.lock();
        let c = connectors
            .get_mut(name)
            .ok_or_else(|| WorkerError::NotFound(name.to_string()))?;
        if matches!(c.state, State::Stopped | State::Failed) {
            return Ok(());
        }
        if c.state != state {
            c.state = state;
            self.inner.statuses.connector(name, state, None);
        }
        for t in &c.tasks {
            let _ = t.control.send(target);
        }
        Ok(())
    }

    /// Stops a connector's tasks; it stays defined in STOPPED state.
    pub async fn stop(&self, name: &str) -> Result<(), WorkerError> {
        self.stop_tasks(name).await?;
        self.persist(name).await
    }

    async fn stop_tasks(&self, name: &str) -> Result<(), WorkerError> {
        let tasks = {
            let mut connectors = self.inner.connectors.lock();
            let c = connectors
                .get_mut(name)
                .ok_or_else(|| WorkerError::NotFound(name.to_string()))?;
            if c.state != State::Stopped {
                c.state = State::Stopped;
                self.inner.statuses.connector(name, State::Stopped, None);
            }
            std::mem::take(&mut c.tasks)
        };
        join_all(tasks).await;
        Ok(())
    }

    /// Restarts a connector: stops its tasks and starts them again (a
    /// STOPPED or FAILED connector runs again; a PAUSED one comes back
    /// paused, as in Kafka Connect). If it cannot start, it stays listed as
    /// FAILED and the error is returned.
    pub async fn restart(&self, name: &str) -> Result<(), WorkerError> {
        let raw = self
            .connector_config(name)
            .ok_or_else(|| WorkerError::NotFound(name.to_string()))?;
        let state = match self.remove_running(name).await? {
            State::Paused => State::Paused,
            _ => State::Running,
        };
        let result = self
            .start_connector(&Value::Object(raw.clone()), state)
            .await;
        if let Err(e) = &result {
            self.insert_failed(name, raw, e);
        }
        self.persist(name).await?;
        result.map(|_| ())
    }

    /// Replaces a connector's config (creating it if absent); returns true
    /// if created. The same config as the running one changes nothing. A
    /// PAUSED or STOPPED connector keeps its target state (the target state
    /// is not part of the config, as in Kafka Connect).
    pub async fn put_config(&self, name: &str, config: &Value) -> Result<bool, WorkerError> {
        self.put_config_in(name, config, State::Running).await
    }

    /// [`Worker::put_config`], creating an absent connector in `initial`
    /// state (RUNNING, PAUSED or STOPPED; KIP-980's `initial_state`) so
    /// none of its tasks runs before it is resumed.
    pub async fn put_config_in(
        &self,
        name: &str,
        config: &Value,
        initial: State,
    ) -> Result<bool, WorkerError> {
        let mut config = config.clone();
        if let Some(m) = config.as_object_mut() {
            m.insert("name".into(), Value::String(name.to_string()));
        }
        if let (Some(current), Some(new)) = (self.connector_config(name), config.as_object()) {
            let failed = self.status(name).map(|s| s.connector.state) == Some(State::Failed);
            if &current == new && !failed {
                return Ok(false);
            }
        }
        // Validate before touching the running connector.
        ConnectorDefinition::from_json(&config)?;
        let previous = self.remove_running(name).await.ok();
        let existed = previous.is_some();
        let state = match previous {
            Some(s @ (State::Paused | State::Stopped)) => s,
            Some(_) => State::Running,
            None => initial,
        };
        self.start_connector(&config, state).await?;
        self.persist(name).await?;
        Ok(!existed)
    }

    /// Stops and removes a connector, and forgets its stored config and
    /// statuses.
    pub async fn delete(&self, name: &str) -> Result<(), WorkerError> {
        self.remove_running(name).await?;
        self.inner.statuses.remove(name);
        self.persist(name).await
    }

    /// Stops and forgets a running connector; the state it was in.
    async fn remove_running(&self, name: &str) -> Result<State, WorkerError> {
        let removed = self
            .inner
            .connectors
            .lock()
            .remove(name)
            .ok_or_else(|| WorkerError::NotFound(name.to_string()))?;
        Ok(self.stop_connector(name, removed).await)
    }

    /// Stops a removed connector's tasks (each writes its UNASSIGNED), then
    /// writes the connector's own UNASSIGNED, as Kafka Connect does when a
    /// connector shuts down; a STOPPED or FAILED one keeps that state.
    async fn stop_connector(&self, name: &str, removed: RunningConnector) -> State {
        join_all(removed.tasks).await;
        if matches!(removed.state, State::Running | State::Paused) {
            // No lock to take: the connector is no longer listed.
            self.inner.statuses.connector(name, State::Unassigned, None);
        }
        removed.state
    }

    /// Stops every connector, letting tasks flush and commit, and waits a
    /// little for the last status records.
    pub async fn shutdown(&self) {
        let all = std::mem::take(&mut *self.inner.connectors.lock());
        for (name, c) in all {
            self.stop_connector(&name, c).await;
        }
        self.inner.statuses.close(STATUS_CLOSE_TIMEOUT).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_json_has_kafka_connect_shape() {
        let status = ConnectorStatus {
            name: "n".into(),
            connector: ConnectorState {
                state: State::Running,
                worker_id: "w".into(),
                trace: None,
            },
            tasks: vec![TaskStatus {
                id: 0,
                state: State::Failed,
                worker_id: "w".into(),
                trace: Some("boom".into()),
            }],
            kind: "sink".into(),
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            json!({"name": "n", "connector": {"state": "RUNNING", "worker_id": "w"},
                "tasks": [{"id": 0, "state": "FAILED", "worker_id": "w", "trace": "boom"}], "type": "sink"})
        );
    }
}
