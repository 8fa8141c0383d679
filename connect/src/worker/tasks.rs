//! Task plumbing: each task runs on a thread of its own, steered by a
//! control channel (run / pause / stop) and reporting through a shared status.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{Map, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{sink, sink_decode, source, Inner, State, WorkerError};
use crate::config::ConnectorDefinition;
use crate::connector::{Connector, TaskConfig};
use crate::status_store::StatusStore;

/// What the user asked a task to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Run,
    Pause,
    Stop,
}

/// A task's state and error, shared between the task and the worker (which
/// answers the REST API from it); each change is also written to the status
/// topic.
#[derive(Clone)]
pub(crate) struct SharedStatus {
    current: Arc<Mutex<TaskState>>,
    store: StatusStore,
    connector: Arc<str>,
    id: usize,
}

struct TaskState {
    state: State,
    trace: Option<String>,
    /// Whether `state` was written to the status topic.
    written: bool,
}

impl SharedStatus {
    /// A task's status before its thread starts: shown, but not written (the
    /// task writes RUNNING or PAUSED once it runs, as Kafka Connect's do).
    fn new(store: StatusStore, connector: &str, id: usize, initial: State) -> Self {
        SharedStatus {
            current: Arc::new(Mutex::new(TaskState {
                state: initial,
                trace: None,
                written: false,
            })),
            store,
            connector: connector.into(),
            id,
        }
    }

    /// The state and error shown by the REST API.
    pub fn get(&self) -> (State, Option<String>) {
        let current = self.current.lock();
        (current.state, current.trace.clone())
    }

    /// Moves to `state` (`trace`: why it FAILED); a change is written to the
    /// status topic, a repeat is not (a paused sink task re-asserts PAUSED
    /// every 100 ms).
    pub fn set(&self, state: State, trace: Option<String>) {
        let mut current = self.current.lock();
        if current.written && current.state == state && current.trace == trace {
            return;
        }
        // Queued while the lock is held (queueing never blocks), so the
        // topic gets the changes in the order they were made.
        self.store
            .task(&self.connector, self.id, state, trace.as_deref());
        *current = TaskState {
            state,
            trace,
            written: true,
        };
    }

    /// The task's run ended: UNASSIGNED unless it FAILED, as in Kafka Connect.
    /// A task stopped before it ever ran writes nothing: it may have lost a
    /// race with another connector of the same name, whose task it would
    /// overwrite.
    fn finished(&self) {
        let ran = {
            let current = self.current.lock();
            current.written && current.state != State::Failed
        };
        if ran {
            self.set(State::Unassigned, None);
        }
    }
}

/// Runs a task on a thread of its own, as Kafka Connect does: a busy task
/// (a file read as fast as the producer takes it) or a blocking call (a
/// synchronous offset commit) neither starves nor waits for the tasks of
/// the runtime that embeds the worker — which may be the broker the call
/// waits for. The returned handle completes when the task does.
fn on_own_thread(
    name: String,
    task: impl Future<Output = ()> + Send + 'static,
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

/// Blocks while the task is paused, keeping its status in step; `false` means stop
/// (asked for, or the worker dropped the control channel).
pub(crate) async fn wait_until_running(
    control: &mut watch::Receiver<Target>,
    status: &SharedStatus,
) -> bool {
    loop {
        let target = *control.borrow_and_update();
        match target {
            Target::Stop => return false,
            Target::Run => {
                status.set(State::Running, None);
                return true;
            }
            Target::Pause => {
                status.set(State::Paused, None);
                if control.changed().await.is_err() {
                    return false;
                }
            }
        }
    }
}

pub(super) struct TaskHandle {
    pub status: SharedStatus,
    pub control: watch::Sender<Target>,
    pub join: JoinHandle<()>,
    pub config: Map<String, Value>,
}

pub(super) async fn join_all(tasks: Vec<TaskHandle>) {
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
    status.set(State::Failed, Some(error.to_string()));
}

/// Starts the tasks of a connector on threads of their own, each in the
/// `initial` target state: a task created PAUSED waits before it even
/// starts (as a Kafka Connect task does), so a worker restart never runs a
/// paused connector's task, not even briefly.
pub(super) async fn spawn_tasks(
    inner: &Inner,
    definition: &ConnectorDefinition,
    connector: Connector,
    initial: Target,
) -> Result<Vec<TaskHandle>, WorkerError> {
    let name = definition.settings.name.clone();
    let (key_default, value_default) = inner.config.converters();
    let key_converter = definition.key_converter(&key_default);
    let value_converter = definition.value_converter(&value_default);
    let max = definition.settings.tasks_max;
    let fail = |error| WorkerError::Connector {
        name: name.clone(),
        error,
    };
    let initial_state = match initial {
        Target::Pause => State::Paused,
        _ => State::Running,
    };
    let mut handles: Vec<TaskHandle> = Vec::new();
    // The control channel and status of the next task, and its thread.
    let mut start =
        |config: TaskConfig, run: &dyn Fn(SharedStatus, watch::Receiver<Target>) -> TaskFuture| {
            let (control, control_rx) = watch::channel(initial);
            let id = handles.len();
            let status = SharedStatus::new(inner.statuses.clone(), &name, id, initial_state);
            let (task, ended) = (run(status.clone(), control_rx), status.clone());
            let task = async move {
                task.await;
                ended.finished();
            };
            let join = on_own_thread(format!("{name}-{id}"), task, &status);
            handles.push(TaskHandle {
                status,
                control,
                join,
                config,
            });
        };
    let flush_ms = inner.config.offset_flush_interval_ms;
    let task_configs: Vec<TaskConfig> = match &connector {
        Connector::Source(c) => c.task_configs(max),
        Connector::Sink(c) => c.task_configs(max),
    }
    .map_err(fail)?
    .into_iter()
    .take(max)
    .collect();
    match connector {
        Connector::Source(connector) => {
            let stored = inner.offsets.load(&name).await?;
            for task_config in task_configs {
                let run = |status: SharedStatus, control: watch::Receiver<Target>| -> TaskFuture {
                    let runner = source::SourceRunner {
                        connector: name.clone(),
                        settings: definition.settings.clone(),
                        task: connector.create_task(),
                        key_converter: key_converter.clone(),
                        value_converter: value_converter.clone(),
                        producer: inner.producer.clone(),
                        offsets: inner.offsets.clone(),
                        status,
                        control,
                        flush_interval: Duration::from_millis(flush_ms),
                        unwritten: Vec::new(),
                        last_write: Instant::now(),
                    };
                    Box::pin(runner.run(task_config.clone(), stored.clone()))
                };
                start(task_config.clone(), &run);
            }
        }
        Connector::Sink(connector) => {
            let topics = connector.topics();
            for task_config in task_configs {
                // Its own thread too: the consumer's commits block.
                let run = |status: SharedStatus, control: watch::Receiver<Target>| -> TaskFuture {
                    let runner = sink::SinkRunner {
                        task: connector.create_task(),
                        decoder: sink_decode::Decoder {
                            connector: name.clone(),
                            settings: definition.settings.clone(),
                            key_converter: key_converter.clone(),
                            value_converter: value_converter.clone(),
                            producer: inner.producer.clone(),
                        },
                        topics: topics.clone(),
                        bootstrap: inner.config.bootstrap_servers.clone(),
                        flush_interval_ms: flush_ms,
                        status,
                        control,
                    };
                    Box::pin(runner.run(task_config.clone()))
                };
                start(task_config.clone(), &run);
            }
        }
    }
    Ok(handles)
}

/// A task's whole run, for its thread.
type TaskFuture = std::pin::Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
