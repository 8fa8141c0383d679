//! SQLite connectors end to end through an embedded broker: a table into a
//! topic while rows are inserted and across a worker restart (no row lost,
//! none duplicated), and a topic into a table with upserts and tombstone
//! deletes.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use brook_connect::serde_json::{self, json, Value};
use brook_connect::{State, Worker, WorkerConfig};
use common::*;
use rusqlite::Connection;

fn worker_config(bootstrap: &str) -> WorkerConfig {
    WorkerConfig::from_json(&json!({
        "bootstrap.servers": bootstrap,
        "offset.flush.interval.ms": "200",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
    }))
    .unwrap()
}

fn insert_items(db: &Path, ids: std::ops::Range<i64>) {
    let mut conn = Connection::open(db).unwrap();
    let tx = conn.transaction().unwrap();
    for id in ids {
        // Ten rows share each timestamp, so ties cross batch boundaries.
        tx.execute(
            "INSERT INTO items (id, ts, name) VALUES (?1, ?2, ?3)",
            rusqlite::params![id, 1_000 + id / 10, format!("item {id}")],
        )
        .unwrap();
    }
    tx.commit().unwrap();
}

async fn start_source(bootstrap: &str, db: &Path, prefix: &str) -> Worker {
    assert!(brook_connectors::PLUGINS
        .iter()
        .any(|p| p.class == "SqliteSource"));
    let worker = Worker::start(worker_config(bootstrap)).await.unwrap();
    // After a restart it is restored from the config topic; the same config
    // leaves it running.
    worker
        .put_config(
            "items-source",
            &json!({"connector.class": "SqliteSource",
            "connection.url": format!("jdbc:sqlite:{}", db.display()),
            "mode": "timestamp+incrementing", "timestamp.column.name": "ts",
            "incrementing.column.name": "id", "table.whitelist": "items",
            "topic.prefix": prefix, "poll.interval.ms": "100", "batch.max.rows": "7"}),
        )
        .await
        .unwrap();
    worker
}

/// Waits until `topic` holds at least `n` records, then returns them all.
async fn wait_for_records(bootstrap: &str, topic: &str, n: usize) -> Vec<Rec> {
    let start = Instant::now();
    loop {
        let recs = read_all_async(bootstrap, topic).await.unwrap();
        if recs.len() >= n || start.elapsed() > TIMEOUT {
            return recs;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_to_topic_survives_restart_without_loss_or_duplicates() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let prefix = unique("sqlite-");
    let topic = format!("{prefix}items");
    create_topic(&bs, &topic, 1, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("source.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE items (id INTEGER PRIMARY KEY, ts INTEGER, name TEXT)")
        .unwrap();
    insert_items(&db, 1..51);

    let worker = start_source(&bs, &db, &prefix).await;
    assert_eq!(wait_for_records(&bs, &topic, 50).await.len(), 50);
    // Rows inserted while the connector runs.
    insert_items(&db, 51..101);
    assert_eq!(wait_for_records(&bs, &topic, 100).await.len(), 100);
    let status = worker.status("items-source").unwrap();
    assert_eq!(status.tasks[0].state, State::Running, "{status:?}");
    // Offsets are stored once the records are acknowledged (at the latest
    // when the task goes idle).
    let want = json!({"partition": {"table": "items"}, "offset": {"timestamp": 1010, "incrementing": 100}});
    let start = Instant::now();
    loop {
        let offsets = worker.offsets("items-source").await.unwrap();
        if offsets["offsets"][0] == want {
            break;
        }
        assert!(start.elapsed() < TIMEOUT, "offsets never stored: {offsets}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.shutdown().await;

    // Rows inserted while the worker is down, then more after it is back.
    insert_items(&db, 101..131);
    let worker = start_source(&bs, &db, &prefix).await;
    insert_items(&db, 131..151);
    wait_for_records(&bs, &topic, 150).await;
    // Give a duplicate (if any) time to show up.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let recs = read_all_async(&bs, &topic).await.unwrap();
    let ids: Vec<i64> = recs
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
            assert_eq!(r.key_str(), v["id"].to_string());
            v["id"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(ids, (1..151).collect::<Vec<_>>());
    let first: Value = serde_json::from_slice(recs[0].value.as_deref().unwrap()).unwrap();
    assert_eq!(first, json!({"id": 1, "ts": 1000, "name": "item 1"}));
    worker.shutdown().await;
}

fn table_rows(db: &Path) -> Vec<(i64, String)> {
    let Ok(conn) = Connection::open(db) else {
        return Vec::new();
    };
    let Ok(mut stmt) = conn.prepare("SELECT id, name FROM people ORDER BY id") else {
        return Vec::new();
    };
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .unwrap_or_default()
}

/// Waits until sink `name` has committed offset `n` of its one partition.
async fn wait_for_committed(worker: &Worker, name: &str, n: i64) {
    let start = Instant::now();
    loop {
        let o = worker.offsets(name).await.unwrap();
        if o["offsets"][0]["offset"]["kafka_offset"] == n {
            return;
        }
        assert!(start.elapsed() < TIMEOUT, "offsets never committed: {o}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_to_table_upserts_and_deletes_on_tombstones() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let topic = unique("people");
    create_topic(&bs, &topic, 1, &[]).await;
    let producer = producer(&bs, false);
    let tombstone = |key: &str| Out {
        key: Some(key.as_bytes().to_vec()),
        ..Out::default()
    };
    produce_ok(
        &producer,
        &topic,
        &[
            Out::kv("1", r#"{"name": "ann"}"#),
            Out::kv("2", r#"{"name": "bob"}"#),
            Out::kv("1", r#"{"name": "ann 2"}"#),
            tombstone("2"),
            Out::kv("3", r#"{"name": "cid", "vip": true}"#),
        ],
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("sink.db");
    let worker = Worker::start(worker_config(&bs)).await.unwrap();
    worker
        .add_connector(
            &json!({"name": "people-sink", "connector.class": "SqliteSink",
            "connection.url": db.to_str().unwrap(), "topics": topic,
            "table.name.format": "people", "insert.mode": "upsert",
            "pk.mode": "record_key", "pk.fields": "id", "auto.create": "true",
            "auto.evolve": "true", "delete.enabled": "true"}),
        )
        .await
        .unwrap();
    let want = vec![(1, "ann 2".to_string()), (3, "cid".to_string())];
    let start = Instant::now();
    while table_rows(&db) != want && start.elapsed() < TIMEOUT {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(table_rows(&db), want);
    // The later record added a column.
    let vip: i64 = Connection::open(&db)
        .unwrap()
        .query_row("SELECT vip FROM people WHERE id = 3", [], |r| r.get(0))
        .unwrap();
    assert_eq!(vip, 1);
    // Offsets are committed once flushed: all five records.
    wait_for_committed(&worker, "people-sink", 5).await;
    assert_eq!(
        worker.status("people-sink").unwrap().tasks[0].state,
        State::Running
    );
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_the_table_refuses_go_to_the_dead_letter_queue() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let (topic, dlq) = (unique("orders"), unique("orders-dlq"));
    create_topic(&bs, &topic, 1, &[]).await;
    create_topic(&bs, &dlq, 1, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orders.db");
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TABLE orders (id INTEGER PRIMARY KEY, qty INTEGER NOT NULL CHECK (qty > 0))",
        )
        .unwrap();
    produce_ok(
        &producer(&bs, false),
        &topic,
        &[
            Out::kv("1", r#"{"qty": 5}"#),
            Out::kv("2", r#"{"qty": -1}"#),
            Out::kv("3", r#"{"qty": 7}"#),
            Out::kv("4", r#"[1, 2]"#),
        ],
    )
    .await;
    let sink = |name: &str, tolerance: &str| {
        json!({"name": name, "connector.class": "SqliteSink",
        "connection.url": db.to_str().unwrap(), "topics": topic,
        "table.name.format": "orders", "insert.mode": "upsert",
        "pk.mode": "record_key", "pk.fields": "id",
        "errors.tolerance": tolerance, "errors.deadletterqueue.topic.name": dlq,
        "errors.deadletterqueue.context.headers.enable": "true"})
    };
    let worker = Worker::start(worker_config(&bs)).await.unwrap();

    // Without tolerance the task fails, naming the record; nothing is written.
    worker.add_connector(&sink("strict", "none")).await.unwrap();
    let start = Instant::now();
    let trace = loop {
        let status = worker.status("strict").unwrap();
        if status.tasks[0].state == State::Failed {
            break status.tasks[0].trace.clone().unwrap_or_default();
        }
        assert!(start.elapsed() < TIMEOUT, "task never failed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(trace.contains(&format!("{topic}-0@1")), "{trace}");
    assert!(trace.contains("CHECK constraint failed"), "{trace}");
    worker.delete("strict").await.unwrap();
    let count = |db: &Path| -> i64 {
        Connection::open(db)
            .unwrap()
            .query_row("SELECT count(*) FROM orders", [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(count(&db), 0);

    // With errors.tolerance=all the refused rows go to the DLQ, the rest in.
    worker
        .add_connector(&sink("tolerant", "all"))
        .await
        .unwrap();
    let start = Instant::now();
    let dead = loop {
        let recs = read_all_async(&bs, &dlq).await.unwrap();
        if recs.len() >= 2 {
            break recs;
        }
        assert!(start.elapsed() < TIMEOUT, "DLQ holds {recs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let header = |rec: &Rec, name: &str| {
        rec.headers
            .iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.clone())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    };
    assert_eq!(
        dead.iter().map(|r| r.key_str()).collect::<Vec<_>>(),
        ["2", "4"]
    );
    assert_eq!(dead[0].value_str(), r#"{"qty": -1}"#);
    assert_eq!(header(&dead[0], "__connect.errors.stage"), "TASK_PUT");
    assert_eq!(header(&dead[0], "__connect.errors.offset"), "1");
    assert!(header(&dead[1], "__connect.errors.exception.message").contains("JSON object"));
    let start = Instant::now();
    while count(&db) < 2 {
        assert!(start.elapsed() < TIMEOUT, "good rows not written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows: Vec<(i64, i64)> = {
        let conn = Connection::open(&db).unwrap();
        let mut stmt = conn
            .prepare("SELECT id, qty FROM orders ORDER BY id")
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        rows
    };
    assert_eq!(rows, [(1, 5), (3, 7)]);
    assert_eq!(
        worker.status("tolerant").unwrap().tasks[0].state,
        State::Running
    );
    worker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sink_waits_out_locks_held_longer_than_the_busy_timeout() {
    let broker = TestBroker::start().await;
    let bs = broker.bootstrap();
    let topic = unique("locked");
    create_topic(&bs, &topic, 1, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("locked.db");
    let producer = producer(&bs, false);
    let people = |range: std::ops::Range<i64>| -> Vec<Out> {
        range
            .map(|i| Out::kv(i.to_string(), format!(r#"{{"name": "p{i}"}}"#)))
            .collect()
    };
    produce_ok(&producer, &topic, &people(1..4)).await;
    let worker = Worker::start(worker_config(&bs)).await.unwrap();
    worker
        .add_connector(
            &json!({"name": "locked-sink", "connector.class": "SqliteSink",
            "connection.url": db.to_str().unwrap(), "topics": topic,
            "table.name.format": "people", "insert.mode": "upsert",
            "pk.mode": "record_key", "pk.fields": "id", "auto.create": "true"}),
        )
        .await
        .unwrap();
    let rows = |n: usize| {
        let db = db.clone();
        async move {
            let start = Instant::now();
            while table_rows(&db).len() < n {
                assert!(start.elapsed() < TIMEOUT, "rows never written");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    rows(3).await;

    // Another process holds the write lock, and a reader its snapshot, for
    // 7 s — longer than the sink's 5 s busy timeout — while records arrive.
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let holder = {
        let db = db.clone();
        tokio::task::spawn_blocking(move || {
            let reader = Connection::open(&db).unwrap();
            reader.execute_batch("BEGIN").unwrap();
            let _: i64 = reader
                .query_row("SELECT count(*) FROM people", [], |r| r.get(0))
                .unwrap();
            let writer = Connection::open(&db).unwrap();
            writer.execute_batch("BEGIN IMMEDIATE").unwrap();
            locked_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_secs(7));
            writer.execute_batch("ROLLBACK").unwrap();
            reader.execute_batch("COMMIT").unwrap();
        })
    };
    blocking(move || locked_rx.recv().unwrap()).await;
    produce_ok(&producer, &topic, &people(4..7)).await;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        let state = worker.status("locked-sink").unwrap().tasks[0].clone();
        assert_eq!(state.state, State::Running, "{:?}", state.trace);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    holder.await.unwrap();
    rows(6).await;
    wait_for_committed(&worker, "locked-sink", 6).await;
    assert_eq!(
        worker.status("locked-sink").unwrap().tasks[0].state,
        State::Running
    );
    worker.shutdown().await;
}
