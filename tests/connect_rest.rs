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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_api_smoke() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let config =
        WorkerConfig::from_json(&json!({"bootstrap.servers": bs, "rest.port": 0})).unwrap();
    let worker = Worker::start(config).await.unwrap();
    let rest = RestServer::start(worker.clone(), brook_connectors::PLUGINS, "127.0.0.1", 0)
        .await
        .unwrap();
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
