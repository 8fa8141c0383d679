//! kcat (librdkafka's command-line client) against the broker: produce, consume, keys,
//! metadata. Skipped when kcat is not installed, except on CI (`CI` set), where
//! scripts/install-deps.sh must have installed it.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The kcat executable, or `None` (after saying why) when the test should be skipped.
fn kcat() -> Option<String> {
    for name in ["kcat", "kafkacat"] {
        let found = std::process::Command::new(name)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if found {
            return Some(name.to_string());
        }
    }
    if std::env::var_os("CI").is_some() {
        panic!("kcat is not installed; on CI scripts/install-deps.sh must install it");
    }
    eprintln!(
        "SKIPPED: kcat is not installed (apt-get install kcat); set CI=1 to make this a failure"
    );
    None
}

/// Runs kcat with `args`, feeding `stdin`; returns stdout, failing on a non-zero exit.
async fn run_kcat(kcat: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut cmd = Command::new(kcat);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().expect("spawning kcat");
    if let Some(input) = stdin {
        let mut si = child.stdin.take().unwrap();
        si.write_all(input.as_bytes()).await.unwrap();
        drop(si);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("kcat {args:?} did not finish"))
        .expect("waiting for kcat");
    assert!(
        out.status.success(),
        "kcat {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("kcat output is not UTF-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_produce_and_consume() {
    let Some(kcat) = kcat() else { return };
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    create_topic(&bs, "lines", 1, &[]).await;
    let lines: Vec<String> = (0..50).map(|i| format!("line number {i}")).collect();
    let input = lines.join("\n") + "\n";
    run_kcat(&kcat, &["-b", &bs, "-t", "lines", "-P"], Some(&input)).await;

    let out = run_kcat(
        &kcat,
        &[
            "-b",
            &bs,
            "-C",
            "-t",
            "lines",
            "-o",
            "beginning",
            "-e",
            "-q",
        ],
        None,
    )
    .await;
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got, lines.iter().map(|s| s.as_str()).collect::<Vec<_>>());

    // The same records through rdkafka.
    let recs = read_all_async(&bs, "lines").await.unwrap();
    let values: Vec<String> = recs.iter().map(|r| r.value_str()).collect();
    assert_eq!(values, lines);
    assert!(recs.iter().all(|r| r.key.is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_keys() {
    let Some(kcat) = kcat() else { return };
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    create_topic(&bs, "keyed", 1, &[]).await;
    let input: String = (0..30)
        .map(|i| format!("user-{}:event {i}\n", i % 4))
        .collect();
    run_kcat(
        &kcat,
        &["-b", &bs, "-t", "keyed", "-P", "-K:"],
        Some(&input),
    )
    .await;

    let out = run_kcat(
        &kcat,
        &[
            "-b",
            &bs,
            "-C",
            "-t",
            "keyed",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%k=%s@%o\n",
        ],
        None,
    )
    .await;
    let expected: Vec<String> = (0..30)
        .map(|i| format!("user-{}=event {i}@{i}", i % 4))
        .collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), expected);

    // Produced with rdkafka, consumed with kcat: keys and values intact.
    let p = producer(&bs, true);
    produce_ok(&p, "keyed", &[Out::kv("from-rdkafka", "hello kcat").to(0)]).await;
    drop_blocking(p).await;
    let out = run_kcat(
        &kcat,
        &[
            "-b", &bs, "-C", "-t", "keyed", "-o", "30", "-e", "-q", "-f", "%k=%s\n",
        ],
        None,
    )
    .await;
    assert_eq!(out, "from-rdkafka=hello kcat\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_metadata() {
    let Some(kcat) = kcat() else { return };
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    create_topic(&bs, "listed", 3, &[]).await;
    let out = run_kcat(&kcat, &["-b", &bs, "-L"], None).await;
    assert!(out.contains("1 brokers:"), "{out}");
    assert!(out.contains(&format!("broker 0 at {bs}")), "{out}");
    assert!(out.contains("topic \"listed\" with 3 partitions:"), "{out}");
    for p in 0..3 {
        assert!(
            out.contains(&format!("partition {p}, leader 0, replicas: 0, isrs: 0")),
            "{out}"
        );
    }

    // JSON metadata for one topic.
    let out = run_kcat(&kcat, &["-b", &bs, "-L", "-t", "listed", "-J"], None).await;
    assert!(out.contains("\"topic\":\"listed\""), "{out}");
}
