//! Clients that are not librdkafka: kafkajs (Node.js) and kafka-python, each running a script
//! in tests/clients/ against a broker on port 0. scripts/install-deps.sh installs both; a
//! missing client skips locally and fails when `CI` is set.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// `None` (with a message) when the client is not installed here; a panic on CI.
fn available(what: &str, probe: &mut Command) -> Option<()> {
    let ok = probe.output().map(|o| o.status.success()).unwrap_or(false);
    if ok {
        return Some(());
    }
    if std::env::var_os("CI").is_some() {
        panic!("{what} is not installed; on CI scripts/install-deps.sh must install it");
    }
    eprintln!("SKIPPED: {what} is not installed (scripts/install-deps.sh installs it)");
    None
}

async fn run_script(mut cmd: Command) {
    let out = blocking(move || cmd.output())
        .await
        .expect("running the client script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "client script failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkajs_admin_produce_consume_commit() {
    let dir = clients_dir().join("kafkajs");
    let mut probe = Command::new("node");
    probe.arg("-e").arg("require('kafkajs')").current_dir(&dir);
    if available(
        "kafkajs (node + tests/clients/kafkajs/node_modules)",
        &mut probe,
    )
    .is_none()
    {
        return;
    }
    let b = TestBroker::start().await;
    let mut cmd = Command::new("node");
    cmd.arg("roundtrip.js").arg(b.bootstrap()).current_dir(&dir);
    run_script(cmd).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_admin_produce_consume_commit() {
    let mut probe = Command::new("python3");
    probe.arg("-c").arg("import kafka");
    if available("kafka-python (pip install kafka-python)", &mut probe).is_none() {
        return;
    }
    let b = TestBroker::start().await;
    let mut cmd = Command::new("python3");
    cmd.arg(clients_dir().join("python/roundtrip.py"))
        .arg(b.bootstrap());
    run_script(cmd).await;
}
