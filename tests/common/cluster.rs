//! Running the cross-crate tests against an external Kafka cluster instead of the embedded
//! broker: `BROOK_TEST_BOOTSTRAP=host:port,...` (see `scripts/kafka-cluster.sh`).
//!
//! Every test expects a broker of its own, so on an external cluster each [`TestBroker`] start
//! first deletes the topics and groups earlier tests left behind: the tests must then run one
//! at a time (`--test-threads 1`), which `scripts/test-on-kafka.sh` does. Topics are created
//! with replication factor -1, the cluster's `default.replication.factor`.
//!
//! [`TestBroker`]: super::TestBroker

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use rdkafka::consumer::Consumer;

use super::{admin, admin_options, blocking, list_topics, query_consumer};

/// The environment variable naming an external cluster's bootstrap servers.
pub const BOOTSTRAP_ENV: &str = "BROOK_TEST_BOOTSTRAP";

/// The external cluster's bootstrap servers, when the tests are pointed at one.
pub fn external_bootstrap() -> Option<String> {
    std::env::var(BOOTSTRAP_ENV)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The environment variable naming the directory of the external cluster when
/// `scripts/kafka-cluster.sh` runs it (set by `scripts/test-on-kafka.sh`): then tests may
/// kill, start and restart its nodes.
pub const KAFKA_DIR_ENV: &str = "BROOK_TEST_KAFKA_DIR";

/// The directory of the external cluster's `scripts/kafka-cluster.sh`, when known.
pub fn kafka_dir() -> Option<PathBuf> {
    std::env::var_os(KAFKA_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// Runs `scripts/kafka-cluster.sh ARGS --dir DIR` (blocking) and panics when it fails.
pub fn script(dir: &Path, args: &[&str]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka-cluster.sh");
    let status = Command::new("bash")
        .arg(script)
        .args(args)
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .status()
        .expect("running scripts/kafka-cluster.sh");
    assert!(status.success(), "kafka-cluster.sh {args:?} failed");
}

/// Whether the tests run against an external cluster.
pub fn is_external() -> bool {
    external_bootstrap().is_some()
}

/// Deletes every non-internal topic and every consumer group of the cluster, and waits until
/// the metadata no longer lists the topics: what a fresh embedded broker would look like.
pub async fn wipe(bootstrap: &str) -> Result<()> {
    let b = bootstrap.to_string();
    let topics: Vec<String> = blocking(move || list_topics(&b))
        .await?
        .into_iter()
        .filter(|t| !t.starts_with("__"))
        .collect();
    let admin = admin(bootstrap);
    if !topics.is_empty() {
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        for r in admin.delete_topics(&names, &admin_options()).await? {
            if let Err((t, e)) = r {
                bail!("deleting topic {t} left by an earlier test: {e:?}");
            }
        }
    }
    let b = bootstrap.to_string();
    let groups: Vec<String> = blocking(move || -> Result<Vec<String>> {
        let c = query_consumer(&b);
        // Right after a (re)start a Kafka node answers CoordinatorLoadInProgress while it
        // loads __consumer_offsets: retry, as clients do.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match c.fetch_group_list(None, Duration::from_secs(20)) {
                Ok(list) => {
                    return Ok(list.groups().iter().map(|g| g.name().to_string()).collect())
                }
                Err(e) if Instant::now() < deadline => {
                    eprintln!("listing groups to clean the cluster: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => return Err(e.into()),
            }
        }
    })
    .await?;
    if !groups.is_empty() {
        // A group whose member was killed stays non-empty until its session expires; deleting
        // its topics already removed its offsets, so the failure is not an error.
        let names: Vec<&str> = groups.iter().map(String::as_str).collect();
        let _ = admin.delete_groups(&names, &admin_options()).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let b = bootstrap.to_string();
        let left: Vec<String> = blocking(move || list_topics(&b))
            .await?
            .into_iter()
            .filter(|t| topics.contains(t))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("topics still listed 60 s after their deletion: {left:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
