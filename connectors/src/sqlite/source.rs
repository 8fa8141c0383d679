//! SqliteSource: rows of SQLite tables (or one query) into topics, JDBC-source
//! style (`bulk`, `incrementing`, `timestamp`, `timestamp+incrementing`).
//!
//! Records: value = the row as a JSON object (see the module docs for the
//! type mapping), key = the primary key (its value for a single column, an
//! object for a composite key, none for tables without one and for queries).
//! Source partition `{"table": name}` or `{"query": q}`; offset
//! `{"incrementing": id}`, `{"timestamp": ts, "timestamp.seen": [..]}` or
//! `{"timestamp": ts, "incrementing": id}`. Every poll reads in a fresh read
//! transaction, so only committed rows are seen. SQLite calls run on tokio's
//! blocking pool.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use brook_connect::{
    lenient, ConnectError, Connector, ConnectorConfig, SourceConnector, SourceRecord, SourceTask,
    StoredOffsets, TaskConfig,
};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::querier::{Origin, Querier, Spec};
use super::{connect_error, open, reuses_rowids, split_list, SqliteError};

/// How `SqliteSource` finds new rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SqliteSourceMode {
    /// The whole table every poll interval.
    #[serde(rename = "bulk")]
    Bulk,
    /// Rows whose incrementing column exceeds the last one seen (new rows only).
    #[serde(rename = "incrementing")]
    Incrementing,
    /// Rows whose timestamp column is newer (new and updated rows).
    #[serde(rename = "timestamp")]
    Timestamp,
    /// Timestamp, with the incrementing column ordering rows of equal timestamp.
    #[serde(rename = "timestamp+incrementing")]
    TimestampIncrementing,
}

/// Configuration of the `SqliteSource` connector class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSourceConfig {
    /// Database file: a path, or `jdbc:sqlite:PATH`.
    #[serde(rename = "connection.url")]
    pub connection_url: String,
    /// bulk | incrementing | timestamp | timestamp+incrementing.
    pub mode: SqliteSourceMode,
    /// Strictly increasing INTEGER column (incrementing modes).
    #[serde(rename = "incrementing.column.name", default)]
    pub incrementing_column: Option<String>,
    /// Timestamp column (timestamp modes): epoch ms or an SQLite date string;
    /// several comma-separated columns compare as the first non-NULL one.
    #[serde(rename = "timestamp.column.name", default)]
    pub timestamp_column: Option<String>,
    /// Comma-separated tables to copy (exclusive with `query`).
    #[serde(rename = "table.whitelist", default)]
    pub table_whitelist: Option<String>,
    /// A SELECT to run instead of tables; the topic is then `topic.prefix`.
    #[serde(default)]
    pub query: Option<String>,
    /// Topic = prefix + table name (with `query`: the topic itself).
    #[serde(rename = "topic.prefix", default)]
    pub topic_prefix: String,
    /// How often each table is queried once it has no more rows.
    #[serde(
        rename = "poll.interval.ms",
        default = "default_poll_ms",
        deserialize_with = "lenient::u64"
    )]
    pub poll_interval_ms: u64,
    /// Most rows read from one table per poll.
    #[serde(
        rename = "batch.max.rows",
        default = "default_batch",
        deserialize_with = "lenient::usize"
    )]
    pub batch_max_rows: usize,
    /// Rows are read only once their timestamp is this much older than now.
    #[serde(
        rename = "timestamp.delay.interval.ms",
        default,
        deserialize_with = "lenient::u64"
    )]
    pub timestamp_delay_ms: u64,
}

fn default_poll_ms() -> u64 {
    5000
}
fn default_batch() -> usize {
    100
}

impl SqliteSourceConfig {
    fn validate(&self) -> Result<(), SqliteError> {
        let config = |key, message: &str| {
            Err(SqliteError::Config {
                key,
                message: message.to_string(),
            })
        };
        super::database_path(&self.connection_url)?;
        match (&self.table_whitelist, &self.query) {
            (Some(t), None) if split_list(t).is_empty() => {
                return config("table.whitelist", "names no table")
            }
            (Some(_), None) => {}
            (None, Some(q)) if q.trim().is_empty() => return config("query", "is empty"),
            (None, Some(_)) if self.topic_prefix.is_empty() => {
                return config(
                    "topic.prefix",
                    "is required with \"query\" (it is the topic)",
                )
            }
            (None, Some(_)) => {}
            _ => {
                return config(
                    "table.whitelist",
                    "give exactly one of \"table.whitelist\" or \"query\"",
                )
            }
        }
        let needs_id = matches!(
            self.mode,
            SqliteSourceMode::Incrementing | SqliteSourceMode::TimestampIncrementing
        );
        let needs_ts = matches!(
            self.mode,
            SqliteSourceMode::Timestamp | SqliteSourceMode::TimestampIncrementing
        );
        let blank = |c: &Option<String>| c.as_deref().is_none_or(|c| c.trim().is_empty());
        if needs_id && blank(&self.incrementing_column) {
            return config("incrementing.column.name", "is required by this mode");
        }
        if needs_ts && blank(&self.timestamp_column) {
            return config("timestamp.column.name", "is required by this mode");
        }
        if self.batch_max_rows == 0 {
            return config("batch.max.rows", "must be at least 1");
        }
        Ok(())
    }

    fn spec(&self) -> Spec {
        let uses = |m: &[SqliteSourceMode]| m.contains(&self.mode);
        Spec {
            mode: self.mode,
            incrementing: self.incrementing_column.clone().filter(|_| {
                uses(&[
                    SqliteSourceMode::Incrementing,
                    SqliteSourceMode::TimestampIncrementing,
                ])
            }),
            timestamp: self.timestamp_column.clone().filter(|_| {
                uses(&[
                    SqliteSourceMode::Timestamp,
                    SqliteSourceMode::TimestampIncrementing,
                ])
            }),
            batch: self.batch_max_rows,
            delay_ms: self.timestamp_delay_ms,
        }
    }
}

#[typetag::serde(name = "SqliteSource")]
impl ConnectorConfig for SqliteSourceConfig {
    fn build(&self) -> Result<Connector, ConnectError> {
        self.validate()
            .map_err(|e| ConnectError::Fatal(format!("SqliteSource: {e}")))?;
        Ok(Connector::Source(Box::new(SqliteSource {
            config: self.clone(),
        })))
    }
}

/// Task-config key holding the tables a task reads.
const TABLES_KEY: &str = "task.tables";

/// The SqliteSource connector.
struct SqliteSource {
    config: SqliteSourceConfig,
}

impl SourceConnector for SqliteSource {
    fn task_configs(&self, max_tasks: usize) -> Result<Vec<TaskConfig>, ConnectError> {
        let base = serde_json::to_value(&self.config)
            .map_err(|e| ConnectError::Fatal(e.to_string()))?
            .as_object()
            .cloned()
            .unwrap_or_default();
        let Some(tables) = &self.config.table_whitelist else {
            return Ok(vec![base]);
        };
        // Tables are dealt round-robin; a query always runs in one task.
        let tables = split_list(tables);
        let count = max_tasks.clamp(1, tables.len().max(1));
        let mut shares = vec![Vec::new(); count];
        for (i, t) in tables.into_iter().enumerate() {
            shares[i % count].push(Value::String(t));
        }
        Ok(shares
            .into_iter()
            .map(|share| {
                let mut cfg = base.clone();
                cfg.insert(TABLES_KEY.into(), Value::Array(share));
                cfg
            })
            .collect())
    }

    fn create_task(&self) -> Box<dyn SourceTask> {
        Box::new(SqliteSourceTask { state: None })
    }
}

/// The blocking half of a task: its connection and partitions.
struct TaskState {
    conn: Connection,
    spec: Spec,
    poll_interval: Duration,
    queriers: Vec<(Querier, Instant)>,
}

impl TaskState {
    /// Queries every due partition in one read transaction.
    fn poll_due(&mut self) -> Result<Vec<SourceRecord>, SqliteError> {
        let now = Instant::now();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let tx = self.conn.transaction()?;
        let mut records = Vec::new();
        for (querier, due) in &mut self.queriers {
            if *due > now {
                continue;
            }
            let (mut batch, exhausted) = querier.poll(&tx, &self.spec, now_ms)?;
            *due = if exhausted {
                now + self.poll_interval
            } else {
                now
            };
            records.append(&mut batch);
        }
        tx.commit()?;
        Ok(records)
    }

    fn next_due(&self) -> Option<Instant> {
        self.queriers.iter().map(|(_, due)| *due).min()
    }
}

/// A running SqliteSource task.
struct SqliteSourceTask {
    state: Option<TaskState>,
}

/// Longest a poll sleeps before returning empty (bounds stop latency).
const MAX_IDLE: Duration = Duration::from_millis(500);

#[async_trait]
impl SourceTask for SqliteSourceTask {
    async fn start(
        &mut self,
        mut config: TaskConfig,
        offsets: StoredOffsets,
    ) -> Result<(), ConnectError> {
        let tables: Vec<String> = match config.remove(TABLES_KEY) {
            Some(v) => serde_json::from_value(v)
                .map_err(|e| ConnectError::Fatal(format!("invalid task config: {e}")))?,
            None => Vec::new(),
        };
        let config: SqliteSourceConfig = serde_json::from_value(Value::Object(config))
            .map_err(|e| ConnectError::Fatal(format!("invalid task config: {e}")))?;
        config
            .validate()
            .map_err(|e| ConnectError::Fatal(format!("SqliteSource: {e}")))?;
        let origins: Vec<(Origin, String)> = match &config.query {
            Some(q) => vec![(Origin::Query(q.clone()), config.topic_prefix.clone())],
            None => tables
                .into_iter()
                .map(|t| {
                    let topic = format!("{}{t}", config.topic_prefix);
                    (Origin::Table(t), topic)
                })
                .collect(),
        };
        let url = config.connection_url.clone();
        let incrementing = match config.mode {
            SqliteSourceMode::Incrementing => config.incrementing_column.clone(),
            _ => None,
        };
        let checked: Vec<String> = origins
            .iter()
            .filter_map(|(o, _)| match o {
                Origin::Table(t) => Some(t.clone()),
                Origin::Query(_) => None,
            })
            .collect();
        let conn =
            tokio::task::spawn_blocking(move || {
                let conn = open(&url, false)?;
                if let Some(column) = incrementing {
                    for table in checked {
                        if reuses_rowids(&conn, &table, &column)? {
                            tracing::warn!(table, column,
                            "SqliteSource: incrementing mode on a rowid without AUTOINCREMENT: \
                             SQLite reuses the id of a deleted newest row, and a row inserted \
                             with a reused id is never read (declare the column \
                             INTEGER PRIMARY KEY AUTOINCREMENT)");
                        }
                    }
                }
                Ok::<_, SqliteError>(conn)
            })
            .await
            .map_err(|e| ConnectError::Fatal(e.to_string()))?
            .map_err(|e| connect_error("SqliteSource", e))?;
        let now = Instant::now();
        self.state = Some(TaskState {
            conn,
            spec: config.spec(),
            poll_interval: Duration::from_millis(config.poll_interval_ms),
            queriers: origins
                .into_iter()
                .map(|(origin, topic)| (Querier::new(origin, topic, &offsets), now))
                .collect(),
        });
        Ok(())
    }

    async fn poll(&mut self) -> Result<Vec<SourceRecord>, ConnectError> {
        let state = self
            .state
            .as_ref()
            .ok_or_else(|| ConnectError::Fatal("SqliteSource task polled before start".into()))?;
        let Some(due) = state.next_due() else {
            tokio::time::sleep(MAX_IDLE).await;
            return Ok(Vec::new());
        };
        let now = Instant::now();
        if due > now {
            let wait = (due - now).min(MAX_IDLE);
            tokio::time::sleep(wait).await;
            if due > Instant::now() {
                return Ok(Vec::new());
            }
        }
        let Some(mut state) = self.state.take() else {
            return Ok(Vec::new());
        };
        let (state, result) = tokio::task::spawn_blocking(move || {
            let result = state.poll_due();
            (state, result)
        })
        .await
        .map_err(|e| ConnectError::Fatal(format!("SqliteSource poll panicked: {e}")))?;
        self.state = Some(state);
        result.map_err(|e| connect_error("SqliteSource", e))
    }

    async fn stop(&mut self) {
        if let Some(state) = self.state.take() {
            // Closing a connection may wait on the file system.
            let _ = tokio::task::spawn_blocking(move || drop(state)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_connect::ConnectorDefinition;
    use serde_json::json;

    fn db(dir: &tempfile::TempDir) -> (String, Connection) {
        let path = dir.path().join("src.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, ts INTEGER, name TEXT, data BLOB);",
        )
        .unwrap();
        (path.to_str().unwrap().to_string(), conn)
    }

    fn insert(conn: &Connection, id: i64, ts: i64) {
        conn.execute(
            "INSERT INTO t (id, ts, name, data) VALUES (?1, ?2, ?3, x'0102')",
            rusqlite::params![id, ts, format!("n{id}")],
        )
        .unwrap();
    }

    fn source(config: Value) -> Box<dyn SourceConnector> {
        let mut config = config;
        config["name"] = json!("src");
        config["connector.class"] = json!("SqliteSource");
        let d = ConnectorDefinition::from_json(&config).unwrap();
        match d.config.build().unwrap() {
            Connector::Source(s) => s,
            Connector::Sink(_) => panic!("not a source"),
        }
    }

    async fn started(config: &Value, offsets: StoredOffsets) -> Box<dyn SourceTask> {
        let conn = source(config.clone());
        let mut task = conn.create_task();
        task.start(conn.task_configs(1).unwrap().remove(0), offsets)
            .await
            .unwrap();
        task
    }

    /// Polls until `n` records came (or 5 s passed).
    async fn take(task: &mut Box<dyn SourceTask>, n: usize) -> Vec<SourceRecord> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut out = Vec::new();
        while out.len() < n && Instant::now() < deadline {
            out.extend(task.poll().await.unwrap());
        }
        out
    }

    /// Polls for a while and returns whatever came.
    async fn quiet(task: &mut Box<dyn SourceTask>) -> Vec<SourceRecord> {
        let mut out = Vec::new();
        for _ in 0..4 {
            out.extend(task.poll().await.unwrap());
        }
        out
    }

    fn ids(records: &[SourceRecord]) -> Vec<i64> {
        records
            .iter()
            .map(|r| r.value["id"].as_i64().unwrap())
            .collect()
    }

    fn resume_from(records: &[SourceRecord]) -> StoredOffsets {
        let mut offsets = StoredOffsets::default();
        let last = records.last().unwrap();
        offsets.insert(&last.source_partition, last.source_offset.clone().unwrap());
        offsets
    }

    #[tokio::test]
    async fn stored_timestamp_ties_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let (url, mut conn) = db(&dir);
        let n = super::super::querier::MAX_SEEN_STORED as i64 + 200;
        let tx = conn.transaction().unwrap();
        for id in 1..=n {
            insert(&tx, id, 1_000);
        }
        tx.commit().unwrap();
        let cfg = json!({"connection.url": url, "mode": "timestamp",
            "timestamp.column.name": "ts", "table.whitelist": "t", "topic.prefix": "db-",
            "poll.interval.ms": "50", "batch.max.rows": 500});
        let mut task = started(&cfg, StoredOffsets::default()).await;
        let all = take(&mut task, n as usize).await;
        assert_eq!(all.len(), n as usize);
        let seen = all.last().unwrap().source_offset.as_ref().unwrap()["timestamp.seen"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(seen, super::super::querier::MAX_SEEN_STORED);
        // The running task still skips every tie it emitted.
        assert!(quiet(&mut task).await.is_empty());
    }

    #[tokio::test]
    async fn bulk_copies_the_table_every_interval() {
        let dir = tempfile::tempdir().unwrap();
        let (url, conn) = db(&dir);
        for id in 1..=3 {
            insert(&conn, id, 0);
        }
        let cfg = json!({"connection.url": format!("jdbc:sqlite:{url}"), "mode": "bulk",
            "table.whitelist": "t", "topic.prefix": "db-", "poll.interval.ms": "50", "batch.max.rows": 2});
        let mut task = started(&cfg, StoredOffsets::default()).await;
        let first = take(&mut task, 3).await;
        assert_eq!(ids(&first), [1, 2, 3]);
        let r = &first[0];
        assert_eq!(&*r.topic, "db-t");
        assert_eq!(r.key, Some(json!(1)));
        assert_eq!(
            r.value,
            json!({"id": 1, "ts": 0, "name": "n1", "data": "AQI="})
        );
        assert_eq!(
            Value::Object((*r.source_partition).clone()),
            json!({"table": "t"})
        );
        assert_eq!(ids(&take(&mut task, 3).await), [1, 2, 3]);
        task.stop().await;
    }

    #[tokio::test]
    async fn incrementing_reads_new_rows_and_resumes_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (url, conn) = db(&dir);
        for id in 1..=5 {
            insert(&conn, id, 0);
        }
        let cfg = json!({"connection.url": url, "mode": "incrementing",
            "incrementing.column.name": "id", "table.whitelist": "t",
            "poll.interval.ms": 20, "batch.max.rows": "2"});
        let mut task = started(&cfg, StoredOffsets::default()).await;
        let got = take(&mut task, 5).await;
        assert_eq!(ids(&got), [1, 2, 3, 4, 5]);
        assert_eq!(
            Value::Object(got[4].source_offset.clone().unwrap()),
            json!({"incrementing": 5})
        );
        insert(&conn, 6, 0);
        let got = take(&mut task, 1).await;
        assert_eq!(ids(&got), [6]);
        task.stop().await;
        // A restart from the stored offset reads only rows after it.
        insert(&conn, 7, 0);
        let mut task = started(&cfg, resume_from(&got)).await;
        assert_eq!(ids(&quiet(&mut task).await), [7]);
        task.stop().await;
    }

    #[tokio::test]
    async fn only_committed_rows_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let (url, conn) = db(&dir);
        conn.execute_batch("PRAGMA journal_mode=WAL").unwrap();
        insert(&conn, 1, 0);
        let cfg = json!({"connection.url": url, "mode": "incrementing",
            "incrementing.column.name": "id", "table.whitelist": "t", "poll.interval.ms": 20});
        let mut task = started(&cfg, StoredOffsets::default()).await;
        assert_eq!(ids(&take(&mut task, 1).await), [1]);
        conn.execute_batch("BEGIN").unwrap();
        insert(&conn, 2, 0);
        assert!(quiet(&mut task).await.is_empty());
        conn.execute_batch("COMMIT").unwrap();
        assert_eq!(ids(&take(&mut task, 1).await), [2]);
        task.stop().await;
    }

    #[tokio::test]
    async fn timestamp_incrementing_keeps_rows_sharing_a_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        let (url, conn) = db(&dir);
        for (id, ts) in [(1, 10), (2, 10), (3, 10), (4, 20)] {
            insert(&conn, id, ts);
        }
        let cfg = json!({"connection.url": url, "mode": "timestamp+incrementing",
            "incrementing.column.name": "id", "timestamp.column.name": "ts",
            "table.whitelist": "t", "poll.interval.ms": 20, "batch.max.rows": 2});
        let mut task = started(&cfg, StoredOffsets::default()).await;
        let got = task.poll().await.unwrap();
        assert_eq!(ids(&got), [1, 2]);
        assert_eq!(
            Value::Object(got[1].source_offset.clone().unwrap()),
            json!({"timestamp": 10, "incrementing": 2})
        );
        task.stop().await;
        // Restart in the middle of the tie: 3 (ts 10) is not lost.
        let mut task = started(&cfg, resume_from(&got)).await;
        assert_eq!(ids(&take(&mut task, 2).await), [3, 4]);
        // An update moves a row to a newer timestamp: read again.
        conn.execute("UPDATE t SET ts = 30 WHERE id = 1", [])
            .unwrap();
        assert_eq!(ids(&take(&mut task, 1).await), [1]);
        assert!(quiet(&mut task).await.is_empty());
        task.stop().await;
    }

    #[tokio::test]
    async fn timestamp_mode_loses_no_tie_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (url, conn) = db(&dir);
        for id in 1..=3 {
            insert(&conn, id, 10);
        }
        let cfg = json!({"connection.url": url, "mode": "timestamp",
            "timestamp.column.name": "ts", "table.whitelist": "t",
            "poll.interval.ms": 20, "batch.max.rows": 2});
        let mut task = started(&cfg, StoredOffsets::default()).await;
        let got = task.poll().await.unwrap();
        assert_eq!(ids(&got), [1, 2]);
        assert_eq!(
            Value::Object(got[1].source_offset.clone().unwrap()),
            json!({"timestamp": 10, "timestamp.seen": [1, 2]})
        );
        task.stop().await;
        let mut task = started(&cfg, resume_from(&got)).await;
        let got = take(&mut task, 1).await;
        assert_eq!(ids(&got), [3]);
        // A row committed late with the same timestamp is still read, once.
        insert(&conn, 4, 10);
        assert_eq!(ids(&take(&mut task, 1).await), [4]);
        insert(&conn, 5, 11);
        assert_eq!(ids(&take(&mut task, 1).await), [5]);
        assert!(quiet(&mut task).await.is_empty());
        task.stop().await;
    }

    #[tokio::test]
    async fn several_timestamp_columns_use_the_first_non_null() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("multi.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE m (id INTEGER PRIMARY KEY, modified INTEGER, created INTEGER);
             INSERT INTO m VALUES (1, NULL, 10);
             INSERT INTO m VALUES (2, 30, 20);
             INSERT INTO m VALUES (3, NULL, 25);",
        )
        .unwrap();
        let cfg = json!({"connection.url": path.to_str().unwrap(),
            "mode": "timestamp+incrementing", "incrementing.column.name": "id",
            "timestamp.column.name": "modified, created", "table.whitelist": "m",
            "poll.interval.ms": 20});
        let mut task = started(&cfg, StoredOffsets::default()).await;
        // Ordered by COALESCE(modified, created): 10, 25, 30.
        let got = take(&mut task, 3).await;
        assert_eq!(ids(&got), [1, 3, 2]);
        assert_eq!(
            Value::Object(got[2].source_offset.clone().unwrap()),
            json!({"timestamp": 30, "incrementing": 2})
        );
        // An update sets `modified` past the offset: the row is read again.
        conn.execute("UPDATE m SET modified = 40 WHERE id = 1", [])
            .unwrap();
        assert_eq!(ids(&take(&mut task, 1).await), [1]);
        assert!(quiet(&mut task).await.is_empty());
        task.stop().await;
    }

    #[tokio::test]
    async fn text_timestamps_and_delay() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("text.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE e (k TEXT, n INTEGER, at TEXT, PRIMARY KEY (k, n));
             INSERT INTO e VALUES ('a', 1, '2020-01-01 00:00:00');
             INSERT INTO e VALUES ('b', 2, strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+1 hour'));",
        )
        .unwrap();
        let cfg = json!({"connection.url": path.to_str().unwrap(), "mode": "timestamp",
            "timestamp.column.name": "at", "table.whitelist": "e", "poll.interval.ms": 20,
            "timestamp.delay.interval.ms": 1000});
        let mut task = started(&cfg, StoredOffsets::default()).await;
        let got = quiet(&mut task).await;
        // The future row waits; a composite key becomes an object.
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].key, Some(json!({"k": "a", "n": 1})));
        task.stop().await;
    }

    #[tokio::test]
    async fn query_mode_uses_the_prefix_as_topic() {
        let dir = tempfile::tempdir().unwrap();
        let (url, conn) = db(&dir);
        for id in 1..=3 {
            insert(&conn, id, 0);
        }
        let q = "SELECT id, name FROM t WHERE id != 2";
        let cfg = json!({"connection.url": url, "mode": "incrementing", "query": q,
            "incrementing.column.name": "id", "topic.prefix": "odd", "poll.interval.ms": 20});
        let s = source(cfg.clone());
        assert_eq!(s.task_configs(4).unwrap().len(), 1);
        let mut task = started(&cfg, StoredOffsets::default()).await;
        let got = take(&mut task, 2).await;
        assert_eq!(ids(&got), [1, 3]);
        assert_eq!(&*got[0].topic, "odd");
        assert_eq!(got[0].key, None);
        assert_eq!(got[0].value, json!({"id": 1, "name": "n1"}));
        assert_eq!(
            Value::Object((*got[0].source_partition).clone()),
            json!({"query": q})
        );
        task.stop().await;
    }

    #[test]
    fn tables_are_split_across_tasks() {
        let s = source(json!({"connection.url": "/x.db", "mode": "bulk",
            "table.whitelist": "a, b,c"}));
        let configs = s.task_configs(2).unwrap();
        assert_eq!(configs.len(), 2);
        assert_eq!(configs[0][TABLES_KEY], json!(["a", "c"]));
        assert_eq!(configs[1][TABLES_KEY], json!(["b"]));
        assert_eq!(s.task_configs(10).unwrap().len(), 3);
    }

    #[test]
    fn bad_configs_name_the_key() {
        let check = |extra: Value, key: &str| {
            let mut cfg = json!({"name": "s", "connector.class": "SqliteSource",
                "connection.url": "/x.db", "mode": "incrementing"});
            for (k, v) in extra.as_object().unwrap() {
                cfg[k] = v.clone();
            }
            let err = match ConnectorDefinition::from_json(&cfg) {
                Err(e) => e.to_string(),
                Ok(d) => d.config.build().unwrap_err().to_string(),
            };
            assert!(err.contains(key), "{key}: {err}");
        };
        check(json!({"table.whitelist": "t"}), "incrementing.column.name");
        check(json!({"incrementing.column.name": "id"}), "table.whitelist");
        check(
            json!({"incrementing.column.name": "id", "table.whitelist": "t", "query": "SELECT 1"}),
            "table.whitelist",
        );
        check(
            json!({"incrementing.column.name": "id", "query": "SELECT 1"}),
            "topic.prefix",
        );
        check(
            json!({"incrementing.column.name": "id", "table.whitelist": "t",
            "batch.max.rows": "lots"}),
            "expected an integer",
        );
        check(
            json!({"incrementing.column.name": "id", "table.whitelist": "t",
            "tables": "t"}),
            "tables",
        );
        check(
            json!({"table.whitelist": "t", "mode": "timestamp"}),
            "timestamp.column.name",
        );
        check(
            json!({"table.whitelist": "t", "mode": "sometimes"}),
            "sometimes",
        );
    }
}
