//! The standalone worker: owns connectors and runs their tasks.

mod offsets_admin;
mod sink;
mod sink_decode;
mod source;
mod status;

pub use status::{ConnectorState, ConnectorStatus, State, TaskStatus};

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{lenient, ConfigError, ConnectorDefinition};
use crate::config_store::{ConfigStore, ConfigStoreError};
use crate::connector::{ConnectError, Connector};
use crate::converter::Converter;
use crate::offsets::{OffsetStore, OffsetStoreError};

/// Worker configuration (the standalone worker properties, as JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// Kafka bootstrap servers.
    #[serde(rename = "bootstrap.servers")]
    pub bootstrap_servers: String,
    /// Compacted topic holding source offsets.
    #[serde(rename = "offset.storage.topic", default = "default_offset_topic")]
    pub offset_storage_topic: String,
    /// Replication factor used when creating the offset topic.
    #[serde(
        rename = "offset.storage.replication.factor",
        default = "one",
        deserialize_with = "lenient::i64"
    )]
    pub offset_storage_replication_factor: i64,
    /// Compacted topic persisting connector configs and target states.
    #[serde(rename = "config.storage.topic", default = "default_config_topic")]
    pub config_storage_topic: String,
    /// REST API port; 0 picks a free port.
    #[serde(
        rename = "rest.port",
        default = "default_rest_port",
        deserialize_with = "lenient::u64"
    )]
    pub rest_port: u64,
    /// Default key converter class.
    #[serde(rename = "key.converter", default = "default_converter")]
    pub key_converter: String,
    /// Default value converter class.
    #[serde(rename = "value.converter", default = "default_converter")]
    pub value_converter: String,
    /// Whether the default JSON key converter uses the schema envelope.
    #[serde(
        rename = "key.converter.schemas.enable",
        default = "yes",
        deserialize_with = "lenient::bool"
    )]
    pub key_schemas_enable: bool,
    /// Whether the default JSON value converter uses the schema envelope.
    #[serde(
        rename = "value.converter.schemas.enable",
        default = "yes",
        deserialize_with = "lenient::bool"
    )]
    pub value_schemas_enable: bool,
    /// How often sink tasks flush and commit consumer offsets.
    #[serde(
        rename = "offset.flush.interval.ms",
        default = "default_flush_ms",
        deserialize_with = "lenient::u64"
    )]
    pub offset_flush_interval_ms: u64,
}

fn default_offset_topic() -> String {
    "connect-offsets".into()
}
fn default_config_topic() -> String {
    "connect-configs".into()
}
fn one() -> i64 {
    1
}
fn default_rest_port() -> u64 {
    8083
}
fn default_converter() -> String {
    "org.apache.kafka.connect.json.JsonConverter".into()
}
fn yes() -> bool {
    true
}
fn default_flush_ms() -> u64 {
    10_000
}

impl WorkerConfig {
    /// Parses a worker config, naming unknown or mistyped keys.
    pub fn from_json(value: &Value) -> Result<Self, WorkerError> {
        let config: WorkerConfig = serde_json::from_value(value.clone())
            .map_err(|e| WorkerError::InvalidWorkerConfig(e.to_string()))?;
        for class in [&config.key_converter, &config.value_converter] {
            Converter::from_class(class, true)
                .map_err(|e| WorkerError::InvalidWorkerConfig(e.to_string()))?;
        }
        u16::try_from(config.rest_port).map_err(|_| {
            WorkerError::InvalidWorkerConfig(format!(
                "rest.port {} is not a port",
                config.rest_port
            ))
        })?;
        Ok(config)
    }

    /// A config with defaults for everything but the bootstrap servers.
    pub fn new(bootstrap_servers: &str) -> Self {
        WorkerConfig {
            bootstrap_servers: bootstrap_servers.to_string(),
            offset_storage_topic: default_offset_topic(),
            offset_storage_replication_factor: one(),
            config_storage_topic: default_config_topic(),
            rest_port: default_rest_port(),
            key_converter: default_converter(),
            value_converter: default_converter(),
            key_schemas_enable: true,
            value_schemas_enable: true,
            offset_flush_interval_ms: default_flush_ms(),
        }
    }

    fn converters(&self) -> (Converter, Converter) {
        let key =
            Converter::from_class(&self.key_converter, self.key_schemas_enable).unwrap_or_default();
        let value = Converter::from_class(&self.value_converter, self.value_schemas_enable)
            .unwrap_or_default();
        (key, value)
    }
}

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

/// What the user asked a task to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Run,
    Pause,
    Stop,
}

/// Shared between a running task and the worker.
pub(crate) type SharedStatus = Arc<Mutex<(State, Option<String>)>>;

/// Blocks while the task is paused, keeping its status in step; `false` means stop
/// (asked for, or the worker dropped the control channel).
/// Runs a task on a thread of its own, as Kafka Connect does: a busy task
/// (a file read as fast as the producer takes it) or a blocking call (a
/// synchronous offset commit) neither starves nor waits for the tasks of
/// the runtime that embeds the worker — which may be the broker the call
/// waits for. The returned handle completes when the task does.
fn on_own_thread(
    name: String,
    task: impl std::future::Future<Output = ()> + Send + 'static,
    status: &SharedStatus,
) -> JoinHandle<()> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::warn!(task = %name, error = %e, "no runtime for a task thread; running the task on the worker's runtime");
            return tokio::spawn(task);
        }
    };
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name(format!("task-{name}"))
        .spawn(move || {
            runtime.block_on(task);
            let _ = done.send(());
        });
    if let Err(e) = spawned {
        mark_failed(
            status,
            &name,
            &format!("cannot start a thread for the task: {e}"),
        );
    }
    tokio::spawn(async move {
        let _ = finished.await;
    })
}

pub(crate) async fn wait_until_running(
    control: &mut watch::Receiver<Target>,
    status: &SharedStatus,
) -> bool {
    loop {
        let target = *control.borrow_and_update();
        match target {
            Target::Stop => return false,
            Target::Run => {
                status.lock().0 = State::Running;
                return true;
            }
            Target::Pause => {
                status.lock().0 = State::Paused;
                if control.changed().await.is_err() {
                    return false;
                }
            }
        }
    }
}

struct TaskHandle {
    status: SharedStatus,
    control: watch::Sender<Target>,
    join: JoinHandle<()>,
    config: Map<String, Value>,
}

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
    /// Source records, DLQ records (offsets and configs share it too).
    producer: crate::producer::Producer,
    connectors: Mutex<BTreeMap<String, RunningConnector>>,
}

/// A standalone Connect worker.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

impl Worker {
    /// Connects to Kafka and prepares the offset store.
    pub async fn start(config: WorkerConfig) -> Result<Worker, WorkerError> {
        let replication =
            i32::try_from(config.offset_storage_replication_factor).map_err(|_| {
                WorkerError::InvalidWorkerConfig(
                    "offset.storage.replication.factor is too large".into(),
                )
            })?;
        let producer =
            crate::producer::producer(&config.bootstrap_servers).map_err(WorkerError::Kafka)?;
        let offsets = OffsetStore::open(
            &config.bootstrap_servers,
            &config.offset_storage_topic,
            replication,
            producer.clone(),
        )
        .await?;
        let configs = ConfigStore::open(
            &config.bootstrap_servers,
            &config.config_storage_topic,
            replication,
            producer.clone(),
        )
        .await?;
        let worker_id = format!("standalone:{}", config.rest_port);
        let worker = Worker {
            inner: Arc::new(Inner {
                config,
                worker_id,
                offsets,
                configs,
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
            match self.start_connector(&Value::Object(raw.clone())).await {
                Ok(_) => {
                    let applied = match stored.state {
                        State::Paused => self.signal(&name, Target::Pause, State::Paused),
                        State::Stopped => self.stop_tasks(&name).await,
                        _ => Ok(()),
                    };
                    if let Err(e) = applied {
                        tracing::warn!(connector = %name, error = %e, "restoring target state");
                    }
                    tracing::info!(connector = %name, "restored from the config topic");
                }
                Err(e) => {
                    tracing::error!(connector = %name, error = %e, "stored connector cannot start");
                    self.inner
                        .connectors
                        .lock()
                        .insert(name, RunningConnector::failed(raw, &e));
                }
            }
        }
        Ok(())
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
        let name = self.start_connector(config).await?;
        if let Err(e) = self.persist(&name).await {
            // Not stored means it would not survive a restart: undo.
            let _ = self.remove_running(&name).await;
            return Err(e);
        }
        Ok(name)
    }

    /// Validates a connector config and starts its tasks (not persisted).
    async fn start_connector(&self, config: &Value) -> Result<String, WorkerError> {
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
        let tasks = self.spawn_tasks(&definition, connector).await?;
        let mut connectors = self.inner.connectors.lock();
        if connectors.contains_key(&name) {
            // Lost a race with a concurrent add of the same name.
            for t in tasks {
                let _ = t.control.send(Target::Stop);
            }
            return Err(WorkerError::AlreadyExists(name));
        }
        connectors.insert(
            name.clone(),
            RunningConnector {
                raw: definition.raw.clone(),
                definition: Some(definition),
                state: State::Running,
                trace: None,
                kind,
                tasks,
            },
        );
        Ok(name)
    }

    async fn spawn_tasks(
        &self,
        definition: &ConnectorDefinition,
        connector: Connector,
    ) -> Result<Vec<TaskHandle>, WorkerError> {
        let name = definition.settings.name.clone();
        let (key_default, value_default) = self.inner.config.converters();
        let key_converter = definition.key_converter(&key_default);
        let value_converter = definition.value_converter(&value_default);
        let max = definition.settings.tasks_max;
        let fail = |error| WorkerError::Connector {
            name: name.clone(),
            error,
        };
        let mut handles = Vec::new();
        match connector {
            Connector::Source(connector) => {
                let stored = self.inner.offsets.load(&name).await?;
                for task_config in connector
                    .task_configs(max)
                    .map_err(fail)?
                    .into_iter()
                    .take(max)
                {
                    let (control, control_rx) = watch::channel(Target::Run);
                    let status: SharedStatus = Arc::new(Mutex::new((State::Running, None)));
                    let runner = source::SourceRunner {
                        connector: name.clone(),
                        settings: definition.settings.clone(),
                        task: connector.create_task(),
                        key_converter: key_converter.clone(),
                        value_converter: value_converter.clone(),
                        producer: self.inner.producer.clone(),
                        offsets: self.inner.offsets.clone(),
                        status: status.clone(),
                        control: control_rx,
                        flush_interval: std::time::Duration::from_millis(
                            self.inner.config.offset_flush_interval_ms,
                        ),
                        unwritten: Vec::new(),
                        last_write: std::time::Instant::now(),
                    };
                    let join = on_own_thread(
                        format!("{name}-{}", handles.len()),
                        runner.run(task_config.clone(), stored.clone()),
                        &status,
                    );
                    handles.push(TaskHandle {
                        status,
                        control,
                        join,
                        config: task_config,
                    });
                }
            }
            Connector::Sink(connector) => {
                let topics = connector.topics();
                for task_config in connector
                    .task_configs(max)
                    .map_err(fail)?
                    .into_iter()
                    .take(max)
                {
                    let (control, control_rx) = watch::channel(Target::Run);
                    let status: SharedStatus = Arc::new(Mutex::new((State::Running, None)));
                    let runner = sink::SinkRunner {
                        task: connector.create_task(),
                        decoder: sink_decode::Decoder {
                            connector: name.clone(),
                            settings: definition.settings.clone(),
                            key_converter: key_converter.clone(),
                            value_converter: value_converter.clone(),
                            producer: self.inner.producer.clone(),
                        },
                        topics: topics.clone(),
                        bootstrap: self.inner.config.bootstrap_servers.clone(),
                        flush_interval_ms: self.inner.config.offset_flush_interval_ms,
                        status: status.clone(),
                        control: control_rx,
                    };
                    // Its own thread too: the consumer's commits block.
                    let join = on_own_thread(
                        format!("{name}-{}", handles.len()),
                        runner.run(task_config.clone()),
                        &status,
                    );
                    handles.push(TaskHandle {
                        status,
                        control,
                        join,
                        config: task_config,
                    });
                }
            }
        }
        Ok(handles)
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
                let (state, trace) = t.status.lock().clone();
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
        c.state = state;
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
            c.state = State::Stopped;
            std::mem::take(&mut c.tasks)
        };
        join_all(tasks).await;
        Ok(())
    }

    /// Restarts a connector: stops its tasks and starts them again (a
    /// STOPPED or FAILED connector runs again). If it cannot start, it stays
    /// listed as FAILED and the error is returned.
    pub async fn restart(&self, name: &str) -> Result<(), WorkerError> {
        let raw = self
            .connector_config(name)
            .ok_or_else(|| WorkerError::NotFound(name.to_string()))?;
        self.remove_running(name).await?;
        let result = self.start_connector(&Value::Object(raw.clone())).await;
        if let Err(e) = &result {
            self.inner
                .connectors
                .lock()
                .insert(name.to_string(), RunningConnector::failed(raw, e));
        }
        self.persist(name).await?;
        result.map(|_| ())
    }

    /// Replaces a connector's config (creating it if absent); returns true
    /// if created. The same config as the running one changes nothing.
    pub async fn put_config(&self, name: &str, config: &Value) -> Result<bool, WorkerError> {
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
        let existed = self.remove_running(name).await.is_ok();
        self.start_connector(&config).await?;
        self.persist(name).await?;
        Ok(!existed)
    }

    /// Stops and removes a connector, and forgets its stored config.
    pub async fn delete(&self, name: &str) -> Result<(), WorkerError> {
        self.remove_running(name).await?;
        self.persist(name).await
    }

    async fn remove_running(&self, name: &str) -> Result<(), WorkerError> {
        let removed = self
            .inner
            .connectors
            .lock()
            .remove(name)
            .ok_or_else(|| WorkerError::NotFound(name.to_string()))?;
        join_all(removed.tasks).await;
        Ok(())
    }

    /// Stops every connector, letting tasks flush and commit.
    pub async fn shutdown(&self) {
        let all: Vec<RunningConnector> = std::mem::take(&mut *self.inner.connectors.lock())
            .into_values()
            .collect();
        for c in all {
            join_all(c.tasks).await;
        }
    }
}

async fn join_all(tasks: Vec<TaskHandle>) {
    for t in &tasks {
        let _ = t.control.send(Target::Stop);
    }
    for t in tasks {
        if let Err(e) = t.join.await {
            tracing::error!(error = %e, "task panicked");
        }
    }
}

/// Marks a task FAILED with its error; the worker keeps running.
pub(crate) fn mark_failed(status: &SharedStatus, connector: &str, error: &str) {
    tracing::error!(connector, error, "task failed");
    *status.lock() = (State::Failed, Some(error.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn worker_config_defaults_and_errors() {
        let c = WorkerConfig::new("localhost:9092");
        assert_eq!(c.offset_storage_topic, "connect-offsets");
        assert_eq!(c.rest_port, 8083);
        assert_eq!(
            c.converters().1,
            Converter::Json {
                schemas_enable: true
            }
        );
        let err = WorkerConfig::from_json(&json!({"bootstrap.servers": "b", "rest.prot": 1}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("rest.prot"), "{err}");
        let err = WorkerConfig::from_json(&json!({"bootstrap.servers": "b", "rest.port": "70000"}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("rest.port"), "{err}");
        let c = WorkerConfig::from_json(
            &json!({"bootstrap.servers": "b", "value.converter.schemas.enable": "false"}),
        )
        .unwrap();
        assert_eq!(
            c.converters().1,
            Converter::Json {
                schemas_enable: false
            }
        );
    }

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
