//! Starting and stopping a broker: the builder, the handle, and the background maintenance.

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Notify};
use tokio::task::JoinHandle;

use crate::config::BrokerConfig;
use crate::coordinator::Coordinator;
use crate::error::{Error, IoContext, Result};
use crate::io_threads::IoThreads;
use crate::log::cleaner;
use crate::producer_ids::ProducerIds;
use crate::server;
use crate::state::BrokerState;
use crate::topics::TopicManager;
use crate::util::{now_ms, write_atomically};

/// Entry point: `Broker::builder()`.
pub struct Broker;

impl Broker {
    /// A builder with the defaults of `brook broker`: `./brook-data`, `127.0.0.1:9092`.
    pub fn builder() -> BrokerBuilder {
        BrokerBuilder {
            data_dir: PathBuf::from("brook-data"),
            listen: "127.0.0.1:9092".into(),
            advertised: None,
            config: BTreeMap::new(),
        }
    }
}

/// Configures and starts a broker.
#[derive(Debug, Clone)]
pub struct BrokerBuilder {
    data_dir: PathBuf,
    listen: String,
    advertised: Option<String>,
    config: BTreeMap<String, String>,
}

impl BrokerBuilder {
    /// Directory holding partitions and metadata (created if missing).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = dir.into();
        self
    }

    /// Address to listen on, `HOST:PORT`; port 0 picks a free port.
    pub fn listen(mut self, addr: impl Into<String>) -> Self {
        self.listen = addr.into();
        self
    }

    /// `HOST:PORT` that clients are told to connect to (default: the bound address).
    pub fn advertised_listener(mut self, addr: impl Into<String>) -> Self {
        self.advertised = Some(addr.into());
        self
    }

    /// Sets a broker config (Kafka name, e.g. `num.partitions`).
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.config.insert(key.into(), value.into());
        self
    }

    /// Opens the data directory (recovering logs), binds the listener and starts serving.
    pub async fn start(self) -> Result<BrokerHandle> {
        let config = Arc::new(BrokerConfig::from_overrides(self.config)?);
        let data_dir = self.data_dir;
        let meta = data_dir.join(".meta");
        fs::create_dir_all(&meta).ctx(|| format!("creating {}", meta.display()))?;
        let marker = meta.join("clean-shutdown");
        let clean_shutdown = marker.exists();
        if clean_shutdown {
            fs::remove_file(&marker).ctx(|| format!("removing {}", marker.display()))?;
        } else if meta.join("cluster-id").exists() {
            tracing::warn!(dir = %data_dir.display(), "previous run did not shut down cleanly; validating log tails");
        }
        let cluster_id = load_cluster_id(&meta)?;
        let listener = TcpListener::bind(&self.listen)
            .await
            .ctx(|| format!("binding {}", self.listen))?;
        let local_addr = listener
            .local_addr()
            .ctx(|| "reading bound address".into())?;
        let (advertised_host, advertised_port) = match &self.advertised {
            Some(a) => parse_host_port(a)?,
            None => (local_addr.ip().to_string(), local_addr.port() as i32),
        };
        let topics = {
            let data_dir = data_dir.clone();
            let config = Arc::clone(&config);
            tokio::task::spawn_blocking(move || {
                TopicManager::open(&data_dir, config, clean_shutdown)
            })
            .await
            .map_err(|e| Error::Config(format!("start-up task failed: {e}")))??
        };
        let groups = Coordinator::open(&topics, &config.settings().group);
        let producer_ids = ProducerIds::open(meta.join("producer-id-block"))
            .ctx(|| "reading producer id block".into())?;
        let state = Arc::new(BrokerState {
            node_id: config.settings().broker_id,
            config: Arc::clone(&config),
            topics,
            groups,
            producer_ids,
            io: IoThreads::new(config.settings().num_io_threads),
            stopping: Notify::new(),
            cluster_id,
            advertised_host,
            advertised_port,
            shutting_down: AtomicBool::new(false),
        });
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let (alive_tx, alive_rx) = mpsc::channel::<()>(1);
        let server = tokio::spawn(server::serve(
            listener,
            Arc::clone(&state),
            shutdown_rx.clone(),
            alive_tx,
        ));
        let maintenance = tokio::spawn(maintenance(Arc::clone(&state), shutdown_rx.clone()));
        let ticker = tokio::spawn(group_ticker(Arc::clone(&state), shutdown_rx));
        tracing::info!(%local_addr, dir = %data_dir.display(), cluster_id = %state.cluster_id, "broker started");
        Ok(BrokerHandle {
            local_addr,
            state,
            data_dir,
            shutdown_tx,
            alive_rx,
            tasks: vec![server, maintenance, ticker],
        })
    }
}

fn parse_host_port(s: &str) -> Result<(String, i32)> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| Error::Config(format!("advertised listener '{s}' is not HOST:PORT")))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| Error::Config(format!("advertised listener '{s}' has a bad port")))?;
    Ok((
        host.trim_matches(|c| c == '[' || c == ']').to_string(),
        port as i32,
    ))
}

fn load_cluster_id(meta: &std::path::Path) -> Result<String> {
    let path = meta.join("cluster-id");
    match fs::read_to_string(&path) {
        Ok(s) => Ok(s.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Kafka cluster ids are 22-character URL-safe base64 of a UUID; a simple form of the same.
            let id: String = uuid::Uuid::new_v4().simple().to_string()[..22].to_string();
            write_atomically(&path, id.as_bytes()).ctx(|| format!("writing {}", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// A running broker.
pub struct BrokerHandle {
    local_addr: SocketAddr,
    state: Arc<BrokerState>,
    data_dir: PathBuf,
    shutdown_tx: watch::Sender<bool>,
    alive_rx: mpsc::Receiver<()>,
    tasks: Vec<JoinHandle<()>>,
}

impl BrokerHandle {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The `bootstrap.servers` value clients should use.
    pub fn bootstrap_servers(&self) -> String {
        format!(
            "{}:{}",
            self.state.advertised_host, self.state.advertised_port
        )
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Stops accepting, closes connections, flushes every log and marks a clean shutdown.
    pub async fn shutdown(mut self) -> Result<()> {
        self.state.shutting_down.store(true, Ordering::Relaxed);
        let _ = self.shutdown_tx.send(true);
        self.state.stopping.notify_waiters();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        // Connections end at their next select; wait for them so no append races the final flush.
        let _ = tokio::time::timeout(Duration::from_secs(10), self.alive_rx.recv()).await;
        let state = Arc::clone(&self.state);
        let data_dir = self.data_dir.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            // The ticker has stopped: write the membership changes it did not get to.
            state.groups.persist_memberships(&state.topics);
            for topic in state.topics.list() {
                for p in topic.partitions.read().iter() {
                    let mut log = p.log.lock();
                    log.flush(true)
                        .and_then(|_| log.checkpoint_recovery_point())
                        .ctx(|| format!("flushing {}-{}", p.topic, p.index))?;
                }
            }
            let marker = data_dir.join(".meta").join("clean-shutdown");
            write_atomically(&marker, b"").ctx(|| format!("writing {}", marker.display()))?;
            Ok(())
        })
        .await
        .map_err(|e| Error::Config(format!("shutdown task failed: {e}")))??;
        tracing::info!(addr = %self.local_addr, "broker stopped");
        Ok(())
    }
}

/// Retention, compaction, `flush.ms` and recovery-point checkpoints, each on its interval.
async fn maintenance(state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    let settings = state.config.settings();
    let retention_every = settings.log_retention_check_interval;
    let flush_every = settings.log_flush_scheduler_interval;
    let cleaner_backoff = settings.log_cleaner_backoff_ms;
    let checkpoint_every = settings.log_flush_offset_checkpoint_interval;
    let mut next_retention = tokio::time::Instant::now() + retention_every;
    let mut next_checkpoint = tokio::time::Instant::now() + checkpoint_every;
    let mut last_clean: std::collections::HashMap<(String, i32), i64> = Default::default();
    loop {
        let wake = next_retention.min(tokio::time::Instant::now() + flush_every);
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = shutdown.changed() => return,
        }
        let run_retention = tokio::time::Instant::now() >= next_retention;
        if run_retention {
            next_retention = tokio::time::Instant::now() + retention_every;
        }
        let run_checkpoint = tokio::time::Instant::now() >= next_checkpoint;
        if run_checkpoint {
            next_checkpoint = tokio::time::Instant::now() + checkpoint_every;
        }
        let st = Arc::clone(&state);
        let mut lc = std::mem::take(&mut last_clean);
        let result = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            for topic in st.topics.list() {
                let partitions: Vec<_> = topic.partitions.read().clone();
                for p in partitions {
                    if let Err(e) = p.log.lock().flush_if_due(now) {
                        tracing::error!(topic = %p.topic, partition = p.index, error = %e, "flush failed");
                    }
                    if run_checkpoint {
                        if let Err(e) = p.log.lock().checkpoint_recovery_point() {
                            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "writing the recovery point failed");
                        }
                    }
                    if !run_retention {
                        continue;
                    }
                    if let Err(e) = p.log.lock().apply_retention(now) {
                        tracing::error!(topic = %p.topic, partition = p.index, error = %e, "retention failed");
                    }
                    let key = (p.topic.clone(), p.index);
                    if topic.config().cleanup_policy.compact
                        && now - lc.get(&key).copied().unwrap_or(i64::MIN / 2) >= cleaner_backoff
                    {
                        match cleaner::compact(&p.log, now) {
                            Ok(s) if s.segments_rewritten > 0 => {
                                lc.insert(key, now);
                                tracing::info!(topic = %p.topic, partition = p.index, removed = s.records_removed, "compacted");
                            }
                            Ok(_) => {}
                            Err(e) => tracing::error!(topic = %p.topic, partition = p.index, error = %e, "compaction failed"),
                        }
                    }
                }
            }
            lc
        })
        .await;
        if let Ok(lc) = result {
            last_clean = lc;
        }
    }
}

/// Drives group timeouts (sessions, rebalance deadlines).
async fn group_ticker(state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = interval.tick() => {
                // Ticks persist membership and expire offsets: disk work, so on the I/O threads.
                let st = Arc::clone(&state);
                state.io.run(move || st.groups.tick(&st.topics)).await;
            }
            _ = shutdown.changed() => return,
        }
    }
}
