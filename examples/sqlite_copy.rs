//! Copies a SQLite table into a topic and from the topic into another SQLite
//! database, through an embedded broker and a Connect worker running
//! SqliteSource and SqliteSink — the same connectors as the configs in
//! `examples/connect/`. Inserts and updates rows while the pipeline runs and
//! checks that the copy ends up identical. Run with
//! `cargo run --example sqlite_copy [ROWS]` (default 10000 rows).

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use brook_connect::serde_json::json;
use brook_connect::{Worker, WorkerConfig};
use rusqlite::Connection;

/// Everything after the broker start must finish within this time.
const DEADLINE: Duration = Duration::from_secs(120);

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let rows: i64 = match std::env::args().nth(1) {
        Some(n) => n.parse().context("ROWS must be a number")?,
        None => 10_000,
    };
    let dir = tempfile::tempdir().context("could not create a temp dir")?;
    let broker = brook_broker::Broker::builder()
        .data_dir(dir.path().join("broker"))
        .listen("127.0.0.1:0")
        .start()
        .await
        .context("could not start the embedded broker")?;
    let bootstrap = broker.bootstrap_servers();
    let outcome = tokio::time::timeout(DEADLINE, copy(&bootstrap, dir.path(), rows)).await;
    broker
        .shutdown()
        .await
        .context("broker did not shut down cleanly")?;
    match outcome {
        Ok(result) => result,
        Err(_) => bail!("sqlite_copy did not finish within {DEADLINE:?}"),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Inserts orders `ids` in one transaction.
fn insert_orders(db: &Path, ids: std::ops::Range<i64>) -> Result<()> {
    let mut conn = Connection::open(db)?;
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare(
            "INSERT INTO orders (id, updated_at, customer, amount) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let ts = now_ms();
        for id in ids {
            stmt.execute(rusqlite::params![
                id,
                ts,
                format!("customer {}", id % 97),
                id as f64 * 1.25
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Rows and the sum of amounts in `orders`, if the table exists yet.
fn summary(db: &Path) -> (i64, f64) {
    Connection::open(db)
        .and_then(|c| {
            c.query_row(
                "SELECT count(*), coalesce(sum(amount), 0) FROM orders",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .unwrap_or((0, 0.0))
}

async fn copy(bootstrap: &str, dir: &Path, rows: i64) -> Result<()> {
    let (source_db, copy_db) = (dir.join("shop.db"), dir.join("copy.db"));
    Connection::open(&source_db)?.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE orders (id INTEGER PRIMARY KEY, updated_at INTEGER NOT NULL,
                              customer TEXT, amount REAL);
         CREATE INDEX orders_updated ON orders (updated_at, id);",
    )?;
    let half = rows / 2;
    insert_orders(&source_db, 1..half + 1)?;

    // Linking brook-connectors registers SqliteSource and SqliteSink.
    assert!(!brook_connectors::PLUGINS.is_empty());
    let worker = Worker::start(WorkerConfig::from_json(&json!({
        "bootstrap.servers": bootstrap,
        "offset.flush.interval.ms": "500",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "false",
    }))?)
    .await?;
    worker
        .add_connector(
            &json!({"name": "orders-source", "connector.class": "SqliteSource",
            "connection.url": format!("jdbc:sqlite:{}", source_db.display()),
            "mode": "timestamp+incrementing", "timestamp.column.name": "updated_at",
            "incrementing.column.name": "id", "table.whitelist": "orders",
            "topic.prefix": "shop-", "poll.interval.ms": "200", "batch.max.rows": "2000"}),
        )
        .await?;
    worker
        .add_connector(
            &json!({"name": "orders-sink", "connector.class": "SqliteSink",
            "connection.url": format!("jdbc:sqlite:{}", copy_db.display()),
            "topics": "shop-orders", "table.name.format": "orders",
            "insert.mode": "upsert", "pk.mode": "record_key", "pk.fields": "id",
            "auto.create": "true"}),
        )
        .await?;
    let start = Instant::now();

    // More rows while the pipeline runs, and updates to existing ones.
    tokio::time::sleep(Duration::from_millis(500)).await;
    insert_orders(&source_db, half + 1..rows + 1)?;
    tokio::time::sleep(Duration::from_millis(5)).await;
    Connection::open(&source_db)?.execute(
        "UPDATE orders SET amount = amount + 1000, updated_at = ?1 WHERE id % 10 = 0",
        [now_ms()],
    )?;

    let want = summary(&source_db);
    loop {
        let got = summary(&copy_db);
        if got.0 == want.0 && (got.1 - want.1).abs() < 1e-6 {
            println!(
                "sqlite_copy: {} rows (sum of amounts {:.2}) copied shop.db → topic shop-orders → copy.db in {:.2?}",
                got.0,
                got.1,
                start.elapsed()
            );
            break;
        }
        for name in ["orders-source", "orders-sink"] {
            if let Some(status) = worker.status(name) {
                if let Some(t) = status.tasks.iter().find(|t| t.trace.is_some()) {
                    bail!("{name} failed: {}", t.trace.clone().unwrap_or_default());
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    worker.shutdown().await;
    Ok(())
}
