//! brook-connect REST API smoke test on port 0, with Kafka Connect's paths,
//! JSON shapes, states and error bodies.

mod common;

use std::time::{Duration, Instant};

use brook_connect::serde_json::{self, json, Value};
use brook_connect::{RestServer, Worker, WorkerConfig};
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Minimal HTTP/1.1 client: returns (status code, JSON body or Null).
async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status: u16 = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// A worker on `bs` with its REST API on a free port.
async fn worker_with_rest(bs: &str) -> (Worker, RestServer) {
    let config =
        WorkerConfig::from_json(&json!({"bootstrap.servers": bs, "rest.port": 0})).unwrap();
    let worker = Worker::start(config).await.unwrap();
    let rest = RestServer::start(worker.clone(), brook_connectors::PLUGINS, "127.0.0.1", 0)
        .await
        .unwrap();
    (worker, rest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_api_smoke() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let (worker, rest) = worker_with_rest(&bs).await;
    let addr = rest.local_addr();
    assert_ne!(addr.port(), 0);

    assert_eq!(
        call(addr, "GET", "/connectors", None).await,
        (200, json!([]))
    );
    let (code, plugins) = call(addr, "GET", "/connector-plugins", None).await;
    assert_eq!(code, 200);
    assert!(plugins
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["class"] == "FileSink" && p["type"] == "sink"));

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    let sink = json!({"connector.class": "FileSink", "file": out.to_str().unwrap(), "topics": "t"});
    let (code, created) = call(
        addr,
        "POST",
        "/connectors",
        Some(json!({"name": "s", "config": sink})),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["name"], "s");
    assert_eq!(created["type"], "sink");
    assert_eq!(created["tasks"], json!([{"connector": "s", "task": 0}]));
    let (code, _) = call(
        addr,
        "POST",
        "/connectors",
        Some(json!({"name": "s", "config": sink})),
    )
    .await;
    assert_eq!(code, 409);

    let (code, config) = call(addr, "GET", "/connectors/s/config", None).await;
    assert_eq!((code, config["topics"].clone()), (200, json!("t")));
    let (code, status) = call(addr, "GET", "/connectors/s/status", None).await;
    assert_eq!(code, 200);
    assert_eq!(status["connector"]["state"], "RUNNING");
    assert_eq!(status["tasks"][0]["id"], 0);
    let (code, tasks) = call(addr, "GET", "/connectors/s/tasks", None).await;
    assert_eq!((code, tasks[0]["id"]["task"].clone()), (200, json!(0)));

    let (code, offsets) = call(addr, "GET", "/connectors/s/offsets", None).await;
    assert_eq!((code, offsets), (200, json!({"offsets": []})));
    assert_eq!(call(addr, "PUT", "/connectors/s/pause", None).await.0, 202);
    let start = Instant::now();
    loop {
        let (_, status) = call(addr, "GET", "/connectors/s/status", None).await;
        if status["tasks"][0]["state"] == "PAUSED" {
            assert_eq!(status["connector"]["state"], "PAUSED");
            break;
        }
        assert!(start.elapsed() < TIMEOUT, "never paused: {status}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(call(addr, "PUT", "/connectors/s/resume", None).await.0, 202);
    assert_eq!(
        call(addr, "POST", "/connectors/s/restart", None).await.0,
        204
    );
    assert_eq!(call(addr, "PUT", "/connectors/s/stop", None).await.0, 202);
    let (_, status) = call(addr, "GET", "/connectors/s/status", None).await;
    assert_eq!(status["connector"]["state"], "STOPPED");

    let (code, err) = call(addr, "GET", "/connectors/nope/status", None).await;
    assert_eq!((code, err["error_code"].clone()), (404, json!(404)));
    assert!(err["message"].as_str().unwrap().contains("nope"));
    let bad =
        json!({"name": "b", "config": {"connector.class": "FileSink", "file": "/x", "topix": "t"}});
    let (code, err) = call(addr, "POST", "/connectors", Some(bad)).await;
    assert_eq!(code, 400);
    assert!(err["message"].as_str().unwrap().contains("topix"), "{err}");

    let (code, v) = call(
        addr,
        "PUT",
        "/connector-plugins/FileSink/config/validate",
        Some(json!({"file": "/x", "topix": "t"})),
    )
    .await;
    assert_eq!((code, v["error_count"].clone()), (200, json!(1)));
    let (_, v) = call(
        addr,
        "PUT",
        "/connector-plugins/FileSink/config/validate",
        Some(json!({"file": "/x", "topics": "t"})),
    )
    .await;
    assert_eq!(v["error_count"], 0);

    assert_eq!(call(addr, "DELETE", "/connectors/s", None).await.0, 204);
    assert_eq!(
        call(addr, "GET", "/connectors", None).await,
        (200, json!([]))
    );
    rest.shutdown();
    worker.shutdown().await;
}

/// A worker with its REST API on a free port.
async fn rest_worker(bootstrap: &str) -> (Worker, RestServer, std::net::SocketAddr) {
    let config = WorkerConfig::from_json(&json!({"bootstrap.servers": bootstrap, "rest.port": 0,
        "offset.flush.interval.ms": 100,
        "key.converter.schemas.enable": false, "value.converter.schemas.enable": false}))
    .unwrap();
    let worker = Worker::start(config).await.unwrap();
    let rest = RestServer::start(worker.clone(), brook_connectors::PLUGINS, "127.0.0.1", 0)
        .await
        .unwrap();
    let addr = rest.local_addr();
    (worker, rest, addr)
}

/// Polls `GET path` until `check` accepts the body.
async fn wait_for(addr: std::net::SocketAddr, path: &str, check: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let (_, body) = call(addr, "GET", path, None).await;
        if check(&body) {
            return body;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "GET {path} never matched: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_offsets_are_altered_and_reset_only_while_stopped() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let (worker, rest, addr) = rest_worker(&bs).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("src.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
             INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c');",
        )
        .unwrap();
    let topic = unique("offsets-src-");
    let config = json!({"connector.class": "SqliteSource", "connection.url": db.to_str().unwrap(),
        "mode": "incrementing", "incrementing.column.name": "id", "table.whitelist": "t",
        "topic.prefix": topic, "poll.interval.ms": 100});
    let (code, _) = call(addr, "PUT", "/connectors/src/config", Some(config)).await;
    assert_eq!(code, 201);
    let path = "/connectors/src/offsets";
    wait_for(addr, path, |b| {
        b["offsets"][0]["offset"]["incrementing"] == 3
    })
    .await;

    let patch = json!({"offsets": [{"partition": {"table": "t"}, "offset": {"incrementing": 1}}]});
    let (code, err) = call(addr, "PATCH", path, Some(patch.clone())).await;
    assert_eq!(code, 400, "{err}");
    assert!(
        err["message"].as_str().unwrap().contains("STOPPED"),
        "{err}"
    );
    assert_eq!(call(addr, "DELETE", path, None).await.0, 400);
    assert_eq!(
        call(
            addr,
            "PATCH",
            "/connectors/nope/offsets",
            Some(patch.clone())
        )
        .await
        .0,
        404
    );
    assert_eq!(
        call(addr, "DELETE", "/connectors/nope/offsets", None)
            .await
            .0,
        404
    );

    assert_eq!(call(addr, "PUT", "/connectors/src/stop", None).await.0, 202);
    let (code, body) = call(addr, "PATCH", path, Some(json!({"offset": 1}))).await;
    assert_eq!(code, 400, "{body}");
    let (code, body) = call(addr, "PATCH", path, Some(patch)).await;
    assert_eq!(code, 200, "{body}");
    assert!(body["message"].as_str().unwrap().contains("altered"));
    let (_, offsets) = call(addr, "GET", path, None).await;
    assert_eq!(
        offsets,
        json!({"offsets": [{"partition": {"table": "t"}, "offset": {"incrementing": 1}}]})
    );
    // Resuming the STOPPED connector (KIP-875) re-reads the rows after the
    // altered offset.
    assert_eq!(
        call(addr, "PUT", "/connectors/src/resume", None).await.0,
        202
    );
    let (_, status) = call(addr, "GET", "/connectors/src/status", None).await;
    assert_eq!(status["connector"]["state"], "RUNNING", "{status}");
    let start = Instant::now();
    let table_topic = format!("{topic}t");
    while read_all_async(&bs, &table_topic).await.unwrap().len() < 5 {
        assert!(start.elapsed() < TIMEOUT, "rows 2 and 3 were not re-read");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for(addr, path, |b| {
        b["offsets"][0]["offset"]["incrementing"] == 3
    })
    .await;

    assert_eq!(call(addr, "PUT", "/connectors/src/stop", None).await.0, 202);
    let (code, body) = call(addr, "DELETE", path, None).await;
    assert_eq!(code, 200, "{body}");
    assert!(body["message"].as_str().unwrap().contains("reset"));
    assert_eq!(
        call(addr, "GET", path, None).await,
        (200, json!({"offsets": []}))
    );
    rest.shutdown();
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_offsets_are_altered_and_reset_only_while_stopped() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let topic = unique("offsets-sink-");
    create_topic(&bs, &topic, 1, &[]).await;
    produce_ok(
        &producer(&bs, false),
        &topic,
        &[
            Out::kv("1", "\"a\""),
            Out::kv("2", "\"b\""),
            Out::kv("3", "\"c\""),
        ],
    )
    .await;
    let (worker, rest, addr) = rest_worker(&bs).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    let config =
        json!({"connector.class": "FileSink", "file": out.to_str().unwrap(), "topics": topic});
    assert_eq!(
        call(addr, "PUT", "/connectors/fs/config", Some(config))
            .await
            .0,
        201
    );
    let path = "/connectors/fs/offsets";
    wait_for(addr, path, |b| {
        b["offsets"][0]["offset"]["kafka_offset"] == 3
    })
    .await;
    let patch = json!({"offsets": [{"partition": {"kafka_topic": topic, "kafka_partition": 0},
        "offset": {"kafka_offset": 1}}]});
    assert_eq!(call(addr, "PATCH", path, Some(patch.clone())).await.0, 400);

    assert_eq!(call(addr, "PUT", "/connectors/fs/stop", None).await.0, 202);
    // "offset": null forgets the partition's committed offset (OffsetDelete).
    let null_offset = json!({"offsets": [{"partition": {"kafka_topic": topic, "kafka_partition": 0},
        "offset": null}]});
    let (code, body) = call(addr, "PATCH", path, Some(null_offset)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        call(addr, "GET", path, None).await,
        (200, json!({"offsets": []}))
    );
    let (code, body) = call(addr, "PATCH", path, Some(patch)).await;
    assert_eq!(code, 200, "{body}");
    let (_, offsets) = call(addr, "GET", path, None).await;
    assert_eq!(
        offsets["offsets"][0]["offset"]["kafka_offset"], 1,
        "{offsets}"
    );
    // Running again re-delivers from offset 1.
    assert_eq!(
        call(addr, "POST", "/connectors/fs/restart", None).await.0,
        204
    );
    let start = Instant::now();
    loop {
        let lines = std::fs::read_to_string(&out).unwrap_or_default();
        if lines == "a\nb\nc\nb\nc\n" {
            break;
        }
        assert!(start.elapsed() < TIMEOUT, "not re-delivered: {lines:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for(addr, path, |b| {
        b["offsets"][0]["offset"]["kafka_offset"] == 3
    })
    .await;
    assert_eq!(call(addr, "PUT", "/connectors/fs/stop", None).await.0, 202);
    let (code, body) = call(addr, "DELETE", path, None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        call(addr, "GET", path, None).await,
        (200, json!({"offsets": []}))
    );
    rest.shutdown();
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connectors_survive_a_worker_restart_and_list_expands() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let file = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let (worker, rest, addr) = rest_worker(&bs).await;
    for (name, f) in [("one", "1.txt"), ("two", "2.txt"), ("three", "3.txt")] {
        let config = json!({"connector.class": "FileSink", "file": file(f), "topics": "t"});
        let (code, body) = call(
            addr,
            "POST",
            "/connectors",
            Some(json!({"name": name, "config": config})),
        )
        .await;
        assert_eq!(code, 201, "{body}");
    }
    assert_eq!(
        call(addr, "PUT", "/connectors/two/pause", None).await.0,
        202
    );
    let changed = json!({"connector.class": "FileSink", "file": file("3b.txt"), "topics": "t"});
    assert_eq!(
        call(addr, "PUT", "/connectors/three/config", Some(changed))
            .await
            .0,
        200
    );
    assert_eq!(call(addr, "DELETE", "/connectors/one", None).await.0, 204);

    // A stored config that no longer works (here: an unknown class) comes
    // back as a FAILED connector instead of stopping the worker.
    produce_ok(
        &producer(&bs, false),
        "connect-configs",
        &[Out::kv(
            "connector-broken",
            json!({"properties": {"connector.class": "NoSuchClass"}, "state": "RUNNING"})
                .to_string(),
        )],
    )
    .await;
    rest.shutdown();
    worker.shutdown().await;

    let (worker, rest, addr) = rest_worker(&bs).await;
    assert_eq!(
        call(addr, "GET", "/connectors", None).await,
        (200, json!(["broken", "three", "two"]))
    );
    let (_, config) = call(addr, "GET", "/connectors/three/config", None).await;
    assert_eq!(config["file"], file("3b.txt"));
    let two = wait_for(addr, "/connectors/two/status", |b| {
        b["tasks"][0]["state"] == "PAUSED"
    })
    .await;
    assert_eq!(two["connector"]["state"], "PAUSED");
    let (code, broken) = call(addr, "GET", "/connectors/broken/status", None).await;
    assert_eq!(code, 200);
    assert_eq!(broken["connector"]["state"], "FAILED");
    assert!(
        broken["connector"]["trace"]
            .as_str()
            .unwrap()
            .contains("NoSuchClass"),
        "{broken}"
    );
    assert_eq!(broken["tasks"], json!([]));

    let (code, all) = call(addr, "GET", "/connectors?expand=status&expand=info", None).await;
    assert_eq!(code, 200);
    assert_eq!(all["two"]["status"]["connector"]["state"], "PAUSED");
    assert_eq!(all["three"]["info"]["config"]["file"], file("3b.txt"));
    assert_eq!(all["three"]["info"]["type"], "sink");
    let (_, only_status) = call(addr, "GET", "/connectors?expand=status", None).await;
    assert!(only_status["three"].get("info").is_none(), "{only_status}");
    assert_eq!(
        call(addr, "GET", "/connectors?expand=nope", None).await.0,
        400
    );

    // Deleting removes it for good, FAILED or not.
    assert_eq!(
        call(addr, "DELETE", "/connectors/broken", None).await.0,
        204
    );
    rest.shutdown();
    worker.shutdown().await;
    let (worker, rest, addr) = rest_worker(&bs).await;
    assert_eq!(
        call(addr, "GET", "/connectors", None).await,
        (200, json!(["three", "two"]))
    );
    rest.shutdown();
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_connectors_takes_an_initial_state_and_checks_names() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let (worker, rest) = worker_with_rest(&bs).await;
    let addr = rest.local_addr();
    let dir = tempfile::tempdir().unwrap();
    let sink = |file: &str| {
        json!({"connector.class": "FileSink",
            "file": dir.path().join(file).to_str().unwrap(), "topics": "t"})
    };
    for (name, state) in [("stopped", "STOPPED"), ("paused", "PAUSED")] {
        let body = json!({"name": name, "config": sink(name), "initial_state": state});
        let (code, created) = call(addr, "POST", "/connectors", Some(body)).await;
        assert_eq!(code, 201, "{created}");
        let (_, status) = call(addr, "GET", &format!("/connectors/{name}/status"), None).await;
        assert_eq!(status["connector"]["state"], state, "{status}");
    }
    let (_, status) = call(addr, "GET", "/connectors/stopped/status", None).await;
    assert_eq!(status["tasks"], json!([]));
    let (_, status) = call(addr, "GET", "/connectors/paused/status", None).await;
    assert_eq!(status["tasks"][0]["state"], "PAUSED");
    let mut named = sink("x");
    named["name"] = json!("other");
    let (code, err) = call(
        addr,
        "POST",
        "/connectors",
        Some(json!({"name": "x", "config": named})),
    )
    .await;
    assert_eq!(code, 400, "{err}");
    assert!(err["message"].as_str().unwrap().contains("other"), "{err}");
    let (code, err) = call(
        addr,
        "POST",
        "/connectors",
        Some(json!({"name": "y", "config": sink("y"), "initial_state": "ASLEEP"})),
    )
    .await;
    assert_eq!(code, 400, "{err}");
    rest.shutdown();
    worker.shutdown().await;
}
