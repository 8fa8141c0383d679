//! Running a topology against Kafka: `KafkaStreams`.

mod checkpoint;
mod collector;
mod metadata;
mod purge;
mod rebalance;
mod restore;
mod setup;
mod shutdown;
mod standby;
mod task_dirs;
mod tasks;
mod thread;

pub use restore::StateRestoreListener;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::ClientConfig;

use crate::config::StreamsConfig;
use crate::error::StreamsError;
use crate::metrics::Metrics;
use crate::state::RocksEnv;
use crate::topology::Topology;

/// Lifecycle state of a [`KafkaStreams`] instance (Kafka's `KafkaStreams.State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Built, not started.
    Created,
    /// Tasks are being (re)assigned or restored.
    Rebalancing,
    /// Processing.
    Running,
    /// `close()` was called.
    PendingShutdown,
    /// Stopped cleanly.
    NotRunning,
    /// A stream thread failed.
    Error,
}

type Listener = Box<dyn Fn(State, State) + Send + Sync>;
type ErrorHandler = Box<dyn Fn(&StreamsError) -> StreamThreadExceptionResponse + Send + Sync>;

/// What to do when a stream thread fails (Kafka's
/// `StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamThreadExceptionResponse {
    /// Start the thread again with new clients; its tasks reopen from their
    /// local state and changelogs, input from the last commit.
    ReplaceThread,
    /// Stop every thread of this instance; the state becomes ERROR (the default).
    ShutdownClient,
    /// Stop this instance and ask every other instance of the application to
    /// stop too (through the `<application.id>-shutdown` signal topic).
    ShutdownApplication,
}

/// State shared by the instance and its threads.
pub(crate) struct Shared {
    pub config: StreamsConfig,
    pub metrics: Arc<Metrics>,
    pub rocks: RocksEnv,
    pub threads: usize,
    state: Mutex<State>,
    running: Mutex<BTreeSet<String>>,
    listener: Mutex<Option<Listener>>,
    error_handler: Mutex<Option<Arc<ErrorHandler>>>,
    restore_listener: Mutex<Option<Arc<dyn StateRestoreListener>>>,
    error: Mutex<Option<String>>,
    stop: Arc<AtomicBool>,
    /// Set by a thread that answered ShutdownApplication: the instance signals the others.
    shutdown_requested: AtomicBool,
    /// Task directories held by this instance's threads.
    pub task_dirs: tasks::TaskDirs,
    /// This instance's id in its threads' client ids (standby placement).
    pub instance_id: String,
}

impl Shared {
    fn transition(&self, to: State) {
        let from = {
            let mut s = self.state.lock();
            let from = *s;
            let allowed = match (from, to) {
                (a, b) if a == b => false,
                (State::Error, _) | (State::NotRunning, _) => false,
                (State::PendingShutdown, State::NotRunning | State::Error) => true,
                (State::PendingShutdown, _) => false,
                _ => true,
            };
            if !allowed {
                return;
            }
            *s = to;
            from
        };
        tracing::info!("streams state {from:?} -> {to:?}");
        if let Some(l) = self.listener.lock().as_ref() {
            l(from, to);
        }
    }

    /// A thread gave its partitions back or is being replaced.
    pub(crate) fn thread_rebalancing(&self, name: &str) {
        self.running.lock().remove(name);
        self.transition(State::Rebalancing);
    }

    /// The uncaught-error handler's answer for a failed thread.
    pub(crate) fn uncaught(&self, e: &StreamsError) -> StreamThreadExceptionResponse {
        let handler = self.error_handler.lock().clone();
        match handler {
            Some(h) => h(e),
            None => StreamThreadExceptionResponse::ShutdownClient,
        }
    }

    pub(crate) fn restore_listener(&self) -> Option<Arc<dyn StateRestoreListener>> {
        self.restore_listener.lock().clone()
    }

    /// Asks every instance of the application to stop, then stops this one.
    pub(crate) fn shutdown_application(&self, error: String) {
        if !self.shutdown_requested.swap(true, Ordering::Relaxed) {
            let app_id = self.config.application_id().unwrap_or_default();
            let reason = format!("shutdown requested after: {error}");
            if let Err(e) = shutdown::signal(self.config.bootstrap_servers(), app_id, &reason) {
                tracing::error!("could not signal the other instances to shut down: {e}");
            }
        }
        self.fail(error);
    }

    pub(crate) fn thread_running(&self, name: &str) {
        let all = {
            let mut r = self.running.lock();
            r.insert(name.to_string());
            r.len() == self.threads
        };
        if all {
            self.transition(State::Running);
        }
    }

    pub(crate) fn fail(&self, error: String) {
        self.error.lock().get_or_insert(error);
        self.stop.store(true, Ordering::Relaxed);
        self.transition(State::Error);
    }
}

/// A random id for this instance (Kafka uses a process UUID).
fn new_instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:016x}", h.finish())
}

/// A running streams application: `num.stream.threads` consumers in the
/// group `application.id`, each with its tasks, stores and producer.
pub struct KafkaStreams {
    topology: Arc<Topology>,
    shared: Arc<Shared>,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl KafkaStreams {
    /// Validates the config; nothing connects until [`start`](Self::start).
    pub fn new(topology: Topology, config: StreamsConfig) -> Result<Self, StreamsError> {
        config.validate()?;
        let threads = config.num_threads()?;
        let rocks = RocksEnv::new(config.rocksdb_memory_bytes()?);
        Ok(KafkaStreams {
            topology: Arc::new(topology),
            shared: Arc::new(Shared {
                config,
                metrics: Arc::new(Metrics::default()),
                rocks,
                threads,
                state: Mutex::new(State::Created),
                running: Mutex::new(BTreeSet::new()),
                listener: Mutex::new(None),
                error_handler: Mutex::new(None),
                restore_listener: Mutex::new(None),
                error: Mutex::new(None),
                stop: Arc::new(AtomicBool::new(false)),
                shutdown_requested: AtomicBool::new(false),
                task_dirs: tasks::TaskDirs::default(),
                instance_id: new_instance_id(),
            }),
            handles: Vec::new(),
        })
    }

    /// Called with (old, new) on every state change.
    pub fn set_state_listener(&self, f: impl Fn(State, State) + Send + Sync + 'static) {
        *self.shared.listener.lock() = Some(Box::new(f));
    }

    /// Decides what happens when a stream thread fails (Kafka's
    /// `setUncaughtExceptionHandler`); without one the instance shuts down.
    pub fn set_uncaught_exception_handler(
        &self,
        f: impl Fn(&StreamsError) -> StreamThreadExceptionResponse + Send + Sync + 'static,
    ) {
        *self.shared.error_handler.lock() = Some(Arc::new(Box::new(f)));
    }

    /// Reports restoration progress of every store (Kafka's `setGlobalStateRestoreListener`);
    /// set it before [`start`](Self::start).
    pub fn set_state_restore_listener(&self, l: impl StateRestoreListener + 'static) {
        *self.shared.restore_listener.lock() = Some(Arc::new(l));
    }

    /// Current state.
    pub fn state(&self) -> State {
        *self.shared.state.lock()
    }

    /// The error that stopped the application, if any.
    pub fn error(&self) -> Option<String> {
        self.shared.error.lock().clone()
    }

    /// Counters: dropped records, restored records, skipped records.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// Bytes the shared RocksDB block cache (which also holds write buffers) uses now.
    pub fn rocksdb_memory_usage(&self) -> usize {
        self.shared.rocks.usage()
    }

    /// Creates internal topics, checks co-partitioning and starts the threads.
    pub fn start(&mut self) -> Result<(), StreamsError> {
        if self.state() != State::Created {
            return Err(StreamsError::IllegalState(
                "start() may only be called once".into(),
            ));
        }
        let cfg = &self.shared.config;
        let app_id = cfg.application_id()?.to_string();
        let mut ac = ClientConfig::new();
        ac.set("bootstrap.servers", cfg.bootstrap_servers())
            .set("log_level", "3");
        for (k, v) in cfg.client_overrides("admin.") {
            ac.set(k, v);
        }
        let admin: AdminClient<DefaultClientContext> = ac.create()?;
        setup::prepare(&self.topology, &app_id, &admin, cfg.replication_factor()?)?;
        shutdown::ensure_topic(&admin, &app_id, cfg.replication_factor()?)?;
        std::fs::create_dir_all(cfg.state_dir().join(&app_id))?;
        self.shared.transition(State::Rebalancing);
        for i in 0..self.shared.threads {
            let t = thread::StreamThread {
                // Kafka's names: `<application.id>-<instance>-StreamThread-<n>`.
                name: format!(
                    "{app_id}-{}-StreamThread-{}",
                    self.shared.instance_id,
                    i + 1
                ),
                index: i,
                topology: self.topology.clone(),
                shared: self.shared.clone(),
                stop: self.shared.stop.clone(),
            };
            let h = std::thread::Builder::new()
                .name(t.name.clone())
                .spawn(move || t.run())?;
            self.handles.push(h);
        }
        Ok(())
    }

    /// Waits until every thread has its tasks restored and is processing.
    pub fn wait_until_running(&self, timeout: Duration) -> Result<(), StreamsError> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.state() {
                State::Running => return Ok(()),
                State::Error => {
                    return Err(StreamsError::IllegalState(
                        self.error().unwrap_or_else(|| "failed".into()),
                    ))
                }
                State::NotRunning | State::PendingShutdown => {
                    return Err(StreamsError::IllegalState(
                        "the application is shutting down".into(),
                    ))
                }
                _ if Instant::now() > deadline => {
                    return Err(StreamsError::IllegalState(
                        "timed out waiting for RUNNING".into(),
                    ))
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Commits, writes checkpoints, leaves the group and stops the threads.
    pub fn close(&mut self) -> Result<(), StreamsError> {
        let failed = self.state() == State::Error;
        self.shared.transition(State::PendingShutdown);
        self.shared.stop.store(true, Ordering::Relaxed);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
        if failed || self.shared.error.lock().is_some() {
            self.shared.transition(State::Error);
            return Err(StreamsError::IllegalState(self.error().unwrap_or_default()));
        }
        self.shared.transition(State::NotRunning);
        Ok(())
    }

    /// Deletes this application's local state (Kafka's `cleanUp()`); only before start or after close.
    pub fn clean_up(&self) -> Result<(), StreamsError> {
        if matches!(
            self.state(),
            State::Running | State::Rebalancing | State::PendingShutdown
        ) {
            return Err(StreamsError::IllegalState(
                "clean_up() while running".into(),
            ));
        }
        let dir = self
            .shared
            .config
            .state_dir()
            .join(self.shared.config.application_id()?);
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

impl Drop for KafkaStreams {
    fn drop(&mut self) {
        if !self.handles.is_empty() {
            let _ = self.close();
        }
    }
}
