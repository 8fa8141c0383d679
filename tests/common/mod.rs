//! Shared helpers for Brook's cross-crate integration tests.
//!
//! Every test starts its own broker on port 0 in its own temporary directory, so the tests of
//! one binary run in parallel. The broker runs on a runtime of its own (two worker threads), so
//! a test may block its own threads (blocking rdkafka calls, `BaseConsumer::poll`) without
//! starving the broker. Timeouts here only stop a hung test; no assertion depends on timing.
//!
//! With `BROOK_TEST_BOOTSTRAP` set, [`TestBroker`] is that external cluster instead
//! (`cluster.rs`); tests that need the broker itself (its configs, data directory, restarts)
//! say so and fail there.

#![allow(dead_code)]

mod brook_process;
pub mod cluster;
mod connect;
mod example_bin;
#[allow(unused_imports)]
pub use brook_process::{brook_bin, BrokerProcess};
#[allow(unused_imports)]
pub use connect::wait_for_state;
#[allow(unused_imports)]
pub use example_bin::example_bin;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use brook_broker::{Broker, BrokerHandle};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, Timestamp};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Upper bound for any single wait in a test: only there to turn a hang into a failure.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Logs to stderr, filtered by `RUST_LOG` (default: the broker's errors only; librdkafka's
/// connection errors, expected in tests that stop brokers or cut connections, are left out).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error,rdkafka=off,librdkafka=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Numbers embedded test brokers in this process (see [`TestBroker::thread_name`]).
static NEXT_BROKER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A broker on its own runtime, in a temporary directory, listening on 127.0.0.1:0 — or the
/// external cluster named by `BROOK_TEST_BOOTSTRAP`.
pub struct TestBroker {
    /// Set when this is an external cluster: nothing here is ours to configure or restart.
    external: bool,
    /// Names this broker's runtime threads: unique, so a test can tell its broker's panics
    /// from those of other tests' brokers in the same process.
    threads: String,
    rt: Option<tokio::runtime::Runtime>,
    handle: Option<BrokerHandle>,
    configs: Vec<(String, String)>,
    advertised: Option<String>,
    bootstrap: String,
    addr: std::net::SocketAddr,
    // Last field: removed after the runtime is gone.
    dir: tempfile::TempDir,
}

impl TestBroker {
    /// A broker with the test defaults (no initial rebalance delay).
    pub async fn start() -> TestBroker {
        Self::start_with(&[]).await
    }

    /// A broker with the test defaults plus these broker configs (later ones win).
    pub async fn start_with(configs: &[(&str, &str)]) -> TestBroker {
        Self::start_full(configs, None).await
    }

    /// As [`TestBroker::start_with`], telling clients to connect to `advertised` (`HOST:PORT`).
    pub async fn start_full(configs: &[(&str, &str)], advertised: Option<String>) -> TestBroker {
        init_tracing();
        let dir = tempfile::Builder::new()
            .prefix("brook-test-")
            .tempdir()
            .expect("creating a temp dir");
        if let Some(bootstrap) = cluster::external_bootstrap() {
            assert!(
                configs.is_empty() && advertised.is_none(),
                "this test needs the embedded broker with configs {configs:?}: it cannot run against {}",
                cluster::BOOTSTRAP_ENV
            );
            cluster::wipe(&bootstrap)
                .await
                .expect("cleaning the external cluster");
            let first = bootstrap.split(',').next().unwrap_or_default();
            let addr = tokio::net::lookup_host(first)
                .await
                .ok()
                .and_then(|mut a| a.next())
                .expect("resolving the first bootstrap server");
            return TestBroker {
                external: true,
                threads: String::new(),
                rt: None,
                handle: None,
                configs: Vec::new(),
                advertised: None,
                bootstrap,
                addr,
                dir,
            };
        }
        let mut all = vec![(
            "group.initial.rebalance.delay.ms".to_string(),
            "0".to_string(),
        )];
        all.extend(configs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut b = TestBroker {
            external: false,
            threads: format!(
                "brook-broker-{}",
                NEXT_BROKER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
            rt: None,
            handle: None,
            configs: all,
            advertised,
            bootstrap: String::new(),
            addr: "127.0.0.1:0".parse().unwrap(),
            dir,
        };
        b.boot().await.expect("starting the broker");
        b
    }

    /// The name of this embedded broker's runtime threads (empty for an external cluster).
    pub fn thread_name(&self) -> &str {
        &self.threads
    }

    fn new_runtime(&self) -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(&self.threads)
            .enable_all()
            .build()
            .expect("building the broker runtime")
    }

    async fn boot(&mut self) -> Result<()> {
        if self.rt.is_none() {
            self.rt = Some(self.new_runtime());
        }
        let mut builder = Broker::builder()
            .data_dir(self.dir.path())
            .listen("127.0.0.1:0");
        if let Some(a) = &self.advertised {
            builder = builder.advertised_listener(a.clone());
        }
        for (k, v) in &self.configs {
            builder = builder.config(k.clone(), v.clone());
        }
        let handle = self
            .rt
            .as_ref()
            .unwrap()
            .spawn(builder.start())
            .await
            .context("broker start task panicked")?
            .map_err(|e| anyhow!("broker did not start: {e}"))?;
        self.addr = handle.local_addr();
        self.bootstrap = handle.bootstrap_servers();
        self.handle = Some(handle);
        Ok(())
    }

    /// Fails the test when the broker is an external cluster, which `what` cannot act on.
    fn embedded_only(&self, what: &str) {
        assert!(
            !self.external,
            "{what} needs the embedded broker: this test cannot run against {}",
            cluster::BOOTSTRAP_ENV
        );
    }

    /// Whether this is an external cluster (`BROOK_TEST_BOOTSTRAP`).
    pub fn is_external(&self) -> bool {
        self.external
    }

    /// `bootstrap.servers` for clients.
    pub fn bootstrap(&self) -> String {
        self.bootstrap.clone()
    }

    /// The address the broker listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// The broker's data directory.
    pub fn data_dir(&self) -> &Path {
        self.embedded_only("data_dir");
        self.dir.path()
    }

    /// `data_dir/<topic>-<partition>`.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.embedded_only("partition_dir");
        self.dir.path().join(format!("{topic}-{partition}"))
    }

    /// Clean shutdown; the data directory stays.
    pub async fn shutdown(&mut self) {
        self.embedded_only("shutdown");
        if let Some(h) = self.handle.take() {
            self.rt
                .as_ref()
                .unwrap()
                .spawn(h.shutdown())
                .await
                .expect("broker shutdown task panicked")
                .expect("broker did not shut down cleanly");
        }
    }

    /// Stops the broker without a shutdown: its runtime and every task are dropped, so nothing
    /// is flushed or marked clean (what was written is in the page cache, as after `kill -9`).
    pub fn crash(&mut self) {
        self.embedded_only("crash");
        drop(self.handle.take());
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }

    /// Starts the broker again on the same data directory (after [`TestBroker::shutdown`]),
    /// on a new port.
    pub async fn start_again(&mut self) {
        self.embedded_only("start_again");
        assert!(self.handle.is_none(), "broker is still running");
        self.boot().await.expect("restarting the broker");
    }

    /// Clean shutdown, then a new broker on the same data directory (new port). On an external
    /// cluster of `scripts/kafka-cluster.sh` (its directory in `BROOK_TEST_KAFKA_DIR`), a
    /// rolling restart: each node in turn stops cleanly and starts again on its port.
    pub async fn restart(&mut self) {
        if self.external {
            let dir = cluster::kafka_dir().unwrap_or_else(|| {
                panic!(
                    "restarting an external cluster needs {} (scripts/test-on-kafka.sh sets it)",
                    cluster::KAFKA_DIR_ENV
                )
            });
            // Each node recovers its logs and catches up before the next stops.
            blocking(move || cluster::script(&dir, &["restart", "--timeout", "180"])).await;
            return;
        }
        self.shutdown().await;
        self.start_again().await;
    }

    /// Changes a broker config for the next start.
    pub fn set_config(&mut self, key: &str, value: &str) {
        self.embedded_only("set_config");
        self.configs.push((key.to_string(), value.to_string()));
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        // Dropping a runtime inside an async context panics; stop it in the background.
        drop(self.handle.take());
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs a blocking closure (rdkafka calls, consumer drops) off the async worker.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking task panicked")
}

/// Drops a value (e.g. a consumer, whose drop blocks until it has left its group) off the
/// async worker.
pub async fn drop_blocking<T: Send + 'static>(v: T) {
    blocking(move || drop(v)).await
}

// ---------------------------------------------------------------------------------------------
// Client configs

/// Settings every client gets.
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("client.id", "brook-tests");
    c
}

/// A producer config: acks=all, short linger, idempotence as given.
pub fn producer_config(bootstrap: &str, idempotent: bool) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .set(
            "enable.idempotence",
            if idempotent { "true" } else { "false" },
        );
    c
}

/// A consumer config in `group`: earliest, no auto commit, 6 s sessions, 500 ms heartbeats.
pub fn consumer_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("fetch.wait.max.ms", "100");
    c
}

pub fn producer(bootstrap: &str, idempotent: bool) -> FutureProducer {
    producer_config(bootstrap, idempotent)
        .create()
        .expect("creating a producer")
}

pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    client_config(bootstrap)
        .create()
        .expect("creating an admin client")
}

pub fn admin_options() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(Duration::from_secs(30)))
}

/// A unique group / client name.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", rand::random::<u32>())
}

// ---------------------------------------------------------------------------------------------
// Topics and metadata

/// Creates a topic through the admin API and fails the test on any error.
pub async fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin = admin(bootstrap);
    // -1: the cluster's default.replication.factor (1 on Brook's broker).
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(-1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let res = admin
        .create_topics([&topic], &admin_options())
        .await
        .expect("CreateTopics request failed");
    for r in res {
        if let Err((n, code)) = r {
            panic!("could not create topic {n}: {code:?}");
        }
    }
    // Wait until metadata shows every partition with a leader.
    let (b, n) = (bootstrap.to_string(), name.to_string());
    wait_until(&format!("topic {name} in metadata"), TIMEOUT, || {
        let (b, n) = (b.clone(), n.clone());
        async move {
            let parts = blocking(move || partition_count(&b, &n)).await?;
            Ok(parts == Some(partitions as usize))
        }
    })
    .await
    .unwrap();
}

/// A throwaway consumer for metadata, watermark and offset queries (blocking calls).
pub fn query_consumer(bootstrap: &str) -> BaseConsumer {
    client_config(bootstrap)
        .set("group.id", unique("query"))
        .set("enable.auto.commit", "false")
        .set("allow.auto.create.topics", "false")
        .create()
        .expect("creating a query consumer")
}

/// Topic names in the cluster metadata (all topics, which never auto-creates anything).
pub fn list_topics(bootstrap: &str) -> Result<Vec<String>> {
    let c = query_consumer(bootstrap);
    let md = c
        .fetch_metadata(None, Duration::from_secs(20))
        .context("Metadata request")?;
    Ok(md.topics().iter().map(|t| t.name().to_string()).collect())
}

/// The partition count of `topic` in the all-topics metadata, `None` if it is not listed.
pub fn partition_count(bootstrap: &str, topic: &str) -> Result<Option<usize>> {
    let c = query_consumer(bootstrap);
    let md = c
        .fetch_metadata(None, Duration::from_secs(20))
        .context("Metadata request")?;
    Ok(md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .filter(|t| t.error().is_none())
        .map(|t| t.partitions().len()))
}

/// The address of the broker leading `topic`-`partition`: raw requests that only a leader
/// answers (Produce, DeleteRecords) go there, on Brook's one node and on a Kafka cluster alike.
pub async fn leader_addr(bootstrap: &str, topic: &str, partition: i32) -> std::net::SocketAddr {
    let (b, t) = (bootstrap.to_string(), topic.to_string());
    let (host, port) = blocking(move || -> Result<(String, i32)> {
        let c = query_consumer(&b);
        let md = c
            .fetch_metadata(None, Duration::from_secs(20))
            .context("Metadata request")?;
        let leader = md
            .topics()
            .iter()
            .find(|x| x.name() == t)
            .and_then(|x| x.partitions().iter().find(|p| p.id() == partition))
            .map(|p| p.leader())
            .ok_or_else(|| anyhow!("{t}-{partition} is not in the metadata"))?;
        let broker = md
            .brokers()
            .iter()
            .find(|br| br.id() == leader)
            .ok_or_else(|| anyhow!("leader {leader} of {t}-{partition} is not listed"))?;
        Ok((broker.host().to_string(), broker.port()))
    })
    .await
    .expect("looking up the partition leader");
    tokio::net::lookup_host((host.as_str(), port as u16))
        .await
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("resolving the leader {host}:{port}"))
}

/// (low, high) watermarks of one partition.
pub fn watermarks(bootstrap: &str, topic: &str, partition: i32) -> Result<(i64, i64)> {
    let c = query_consumer(bootstrap);
    c.fetch_watermarks(topic, partition, Duration::from_secs(20))
        .with_context(|| format!("ListOffsets for {topic}-{partition}"))
}

pub async fn watermarks_async(bootstrap: &str, topic: &str, partition: i32) -> Result<(i64, i64)> {
    let (b, t) = (bootstrap.to_string(), topic.to_string());
    blocking(move || watermarks(&b, &t, partition)).await
}

/// The `.log` segment files of a partition directory, sorted.
pub fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// Producing

/// A record to produce.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Out {
    pub partition: Option<i32>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Option<i64>,
}

impl Out {
    pub fn kv(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Out {
        Out {
            key: Some(key.as_ref().to_vec()),
            value: Some(value.as_ref().to_vec()),
            ..Out::default()
        }
    }

    pub fn to(mut self, partition: i32) -> Out {
        self.partition = Some(partition);
        self
    }
}

fn owned_headers(h: &[(String, Option<Vec<u8>>)]) -> Option<OwnedHeaders> {
    if h.is_empty() {
        return None;
    }
    let mut oh = OwnedHeaders::new_with_capacity(h.len());
    for (k, v) in h {
        oh = oh.insert(Header {
            key: k.as_str(),
            value: v.as_ref(),
        });
    }
    Some(oh)
}

/// Enqueues every record in order (waiting while the queue is full), then waits for all
/// deliveries. Returns each record's `(partition, offset)` or its delivery error.
pub async fn produce_all(
    producer: &FutureProducer,
    topic: &str,
    records: &[Out],
) -> Vec<Result<(i32, i64), KafkaError>> {
    let mut futures = Vec::with_capacity(records.len());
    for r in records {
        loop {
            let mut fr: FutureRecord<'_, Vec<u8>, Vec<u8>> = FutureRecord::to(topic);
            if let Some(p) = r.partition {
                fr = fr.partition(p);
            }
            if let Some(k) = &r.key {
                fr = fr.key(k);
            }
            if let Some(v) = &r.value {
                fr = fr.payload(v);
            }
            if let Some(ts) = r.timestamp {
                fr = fr.timestamp(ts);
            }
            if let Some(h) = owned_headers(&r.headers) {
                fr = fr.headers(h);
            }
            match producer.send_result(fr) {
                Ok(f) => {
                    futures.push(f);
                    break;
                }
                Err((
                    KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                    _,
                )) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err((e, _)) => panic!("could not enqueue a record: {e}"),
            }
        }
    }
    let mut out = Vec::with_capacity(futures.len());
    for f in futures {
        let r = tokio::time::timeout(Duration::from_secs(120), f)
            .await
            .expect("delivery report did not arrive")
            .expect("delivery future cancelled");
        out.push(r.map(|d| (d.partition, d.offset)).map_err(|(e, _)| e));
    }
    out
}

/// As [`produce_all`], failing the test on any delivery error.
pub async fn produce_ok(
    producer: &FutureProducer,
    topic: &str,
    records: &[Out],
) -> Vec<(i32, i64)> {
    produce_all(producer, topic, records)
        .await
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|e| panic!("record {i} to {topic} not delivered: {e}")))
        .collect()
}

/// Produces one record and waits for its delivery.
pub async fn produce_one(
    producer: &FutureProducer,
    topic: &str,
    rec: Out,
) -> Result<(i32, i64), KafkaError> {
    produce_all(producer, topic, &[rec]).await.pop().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Consuming

/// A consumed record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rec {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub timestamp: Timestamp,
}

impl Rec {
    pub fn from_message<M: Message>(m: &M) -> Rec {
        Rec {
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(|k| k.to_vec()),
            value: m.payload().map(|v| v.to_vec()),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.map(|v| v.to_vec())))
                        .collect()
                })
                .unwrap_or_default(),
            timestamp: m.timestamp(),
        }
    }

    pub fn key_str(&self) -> String {
        String::from_utf8_lossy(self.key.as_deref().unwrap_or(b"<null>")).into_owned()
    }

    pub fn value_str(&self) -> String {
        String::from_utf8_lossy(self.value.as_deref().unwrap_or(b"<null>")).into_owned()
    }
}

/// Reads every partition of `topic` from the beginning (the log start offset) up to the high
/// watermark observed at the start, without a consumer group. Blocking.
pub fn read_all(bootstrap: &str, topic: &str) -> Result<Vec<Rec>> {
    read_all_with(bootstrap, topic, &[])
}

/// As [`read_all`], with extra consumer settings.
pub fn read_all_with(bootstrap: &str, topic: &str, extra: &[(&str, &str)]) -> Result<Vec<Rec>> {
    let mut cfg = client_config(bootstrap);
    cfg.set("group.id", unique("reader"))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("allow.auto.create.topics", "false")
        .set("fetch.wait.max.ms", "100");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    let c: BaseConsumer = cfg.create().context("creating a reader")?;
    let md = c
        .fetch_metadata(Some(topic), Duration::from_secs(20))
        .context("Metadata request")?;
    let t = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .ok_or_else(|| anyhow!("topic {topic} missing from metadata"))?;
    if let Some(e) = t.error() {
        bail!("topic {topic} metadata error: {e:?}");
    }
    let mut tpl = TopicPartitionList::new();
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for p in t.partitions() {
        let (low, high) = c
            .fetch_watermarks(topic, p.id(), Duration::from_secs(20))
            .with_context(|| format!("watermarks of {topic}-{}", p.id()))?;
        if high > low {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
            ends.insert(p.id(), high);
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    c.assign(&tpl)?;
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let deadline = Instant::now() + TIMEOUT;
    while ends
        .iter()
        .any(|(p, end)| next.get(p).copied().unwrap_or(-1) < *end)
    {
        if Instant::now() > deadline {
            bail!(
                "reading {topic}: timed out with next offsets {next:?}, wanted ends {ends:?} ({} records read)",
                out.len()
            );
        }
        match c.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(e)) => bail!("reading {topic}: consumer error {e}"),
            Some(Ok(m)) => {
                let end = ends.get(&m.partition()).copied().unwrap_or(0);
                next.insert(m.partition(), m.offset() + 1);
                if m.offset() < end {
                    out.push(Rec::from_message(&m));
                }
            }
        }
    }
    Ok(out)
}

pub async fn read_all_async(bootstrap: &str, topic: &str) -> Result<Vec<Rec>> {
    let (b, t) = (bootstrap.to_string(), topic.to_string());
    blocking(move || read_all(&b, &t)).await
}

/// Groups records by partition, keeping their order.
pub fn by_partition(recs: &[Rec]) -> BTreeMap<i32, Vec<Rec>> {
    let mut m: BTreeMap<i32, Vec<Rec>> = BTreeMap::new();
    for r in recs {
        m.entry(r.partition).or_default().push(r.clone());
    }
    m
}

// ---------------------------------------------------------------------------------------------
// Waiting

/// Polls `check` every 100 ms until it yields `Some`, failing after `timeout` with the last
/// error (if any). The timeout only guards against hangs.
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if Instant::now() > deadline {
            return Err(match last_err {
                Some(e) => e.context(format!("gave up waiting for {what} after {timeout:?}")),
                None => anyhow!("gave up waiting for {what} after {timeout:?}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// As [`poll_until`] for a yes/no condition.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    poll_until(what, timeout, || {
        let f = check();
        async move { f.await.map(|ok| ok.then_some(())) }
    })
    .await
}

/// Produces one record to `topic` and reads it back by offset: the broker still serves.
pub async fn assert_round_trip(bootstrap: &str, topic: &str) {
    let p = producer(bootstrap, true);
    let value = format!("health-{}", rand::random::<u64>());
    let (partition, offset) = produce_one(&p, topic, Out::kv("health", &value).to(0))
        .await
        .unwrap_or_else(|e| panic!("health-check produce to {topic} failed: {e}"));
    let recs = read_all_async(bootstrap, topic)
        .await
        .expect("health-check read failed");
    let found = recs
        .iter()
        .find(|r| r.partition == partition && r.offset == offset)
        .unwrap_or_else(|| panic!("health-check record at {partition}/{offset} not read back"));
    assert_eq!(found.value.as_deref(), Some(value.as_bytes()));
    drop_blocking(p).await;
}
