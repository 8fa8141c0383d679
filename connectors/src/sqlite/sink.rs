//! SqliteSink: records of topics into SQLite tables (insert or upsert,
//! tombstones as deletes), JDBC-sink style.
//!
//! Values must be JSON objects (whatever the converter: with the JSON
//! converter's schema envelope the payload is used; a string holding a JSON
//! object is parsed). Each `put` batch is one transaction; `flush` makes the
//! committed batches durable (see `writer.rs`). Always one task: SQLite has a
//! single writer.

use async_trait::async_trait;
use brook_connect::{
    lenient, ConnectError, Connector, ConnectorConfig, SinkConnector, SinkRecord, SinkTask,
    TaskConfig, TopicPartition,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::writer::{Writer, WriterConfig};
use super::{connect_error, open, split_list, SqliteError};

/// How rows are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InsertMode {
    /// Plain INSERT; a duplicate key fails the task.
    #[default]
    Insert,
    /// INSERT … ON CONFLICT (pk) DO UPDATE.
    Upsert,
}

/// Where the primary key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PkMode {
    /// No primary key.
    #[default]
    None,
    /// The record key (a primitive: one column; an object: its fields).
    RecordKey,
    /// Fields of the record value named by `pk.fields`.
    RecordValue,
}

/// Configuration of the `SqliteSink` connector class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSinkConfig {
    /// Database file: a path, or `jdbc:sqlite:PATH` (created if missing).
    #[serde(rename = "connection.url")]
    pub connection_url: String,
    /// Comma-separated topics to consume.
    pub topics: String,
    /// Table name; `${topic}` is replaced by the record's topic.
    #[serde(rename = "table.name.format", default = "default_table_format")]
    pub table_name_format: String,
    /// insert | upsert.
    #[serde(rename = "insert.mode", default)]
    pub insert_mode: InsertMode,
    /// none | record_key | record_value.
    #[serde(rename = "pk.mode", default)]
    pub pk_mode: PkMode,
    /// Comma-separated primary key columns (see `pk.mode`).
    #[serde(rename = "pk.fields", default)]
    pub pk_fields: String,
    /// Create a missing table from the first record's fields.
    #[serde(rename = "auto.create", default, deserialize_with = "lenient::bool")]
    pub auto_create: bool,
    /// Add columns for fields the table lacks (never drops or alters).
    #[serde(rename = "auto.evolve", default, deserialize_with = "lenient::bool")]
    pub auto_evolve: bool,
    /// A tombstone (null value) deletes the row with the record's key.
    #[serde(rename = "delete.enabled", default, deserialize_with = "lenient::bool")]
    pub delete_enabled: bool,
}

fn default_table_format() -> String {
    "${topic}".into()
}

impl SqliteSinkConfig {
    fn validate(&self) -> Result<(), SqliteError> {
        let config = |key, message: &str| {
            Err(SqliteError::Config {
                key,
                message: message.to_string(),
            })
        };
        super::database_path(&self.connection_url)?;
        if split_list(&self.topics).is_empty() {
            return config("topics", "names no topic");
        }
        if self.table_name_format.trim().is_empty() {
            return config("table.name.format", "is empty");
        }
        let fields = split_list(&self.pk_fields);
        match self.pk_mode {
            PkMode::None if !fields.is_empty() => {
                return config(
                    "pk.fields",
                    "is only used with pk.mode=record_key or record_value",
                )
            }
            PkMode::RecordValue if fields.is_empty() => {
                return config("pk.fields", "is required with pk.mode=record_value")
            }
            _ => {}
        }
        if self.insert_mode == InsertMode::Upsert && self.pk_mode == PkMode::None {
            return config(
                "insert.mode",
                "upsert needs a primary key: set pk.mode to record_key or record_value",
            );
        }
        if self.delete_enabled && self.pk_mode != PkMode::RecordKey {
            return config("delete.enabled", "requires pk.mode=record_key");
        }
        Ok(())
    }

    fn writer_config(&self) -> WriterConfig {
        WriterConfig {
            table_format: self.table_name_format.clone(),
            insert_mode: self.insert_mode,
            pk_mode: self.pk_mode,
            pk_fields: split_list(&self.pk_fields),
            auto_create: self.auto_create,
            auto_evolve: self.auto_evolve,
            delete_enabled: self.delete_enabled,
        }
    }
}

#[typetag::serde(name = "SqliteSink")]
impl ConnectorConfig for SqliteSinkConfig {
    fn build(&self) -> Result<Connector, ConnectError> {
        self.validate()
            .map_err(|e| ConnectError::Fatal(format!("SqliteSink: {e}")))?;
        Ok(Connector::Sink(Box::new(SqliteSink {
            config: self.clone(),
        })))
    }
}

/// The SqliteSink connector.
struct SqliteSink {
    config: SqliteSinkConfig,
}

impl SinkConnector for SqliteSink {
    fn topics(&self) -> Vec<String> {
        split_list(&self.config.topics)
    }

    fn task_configs(&self, _max_tasks: usize) -> Result<Vec<TaskConfig>, ConnectError> {
        let value =
            serde_json::to_value(&self.config).map_err(|e| ConnectError::Fatal(e.to_string()))?;
        Ok(vec![value.as_object().cloned().unwrap_or_default()])
    }

    fn create_task(&self) -> Box<dyn SinkTask> {
        Box::new(SqliteSinkTask { writer: None })
    }
}

/// A running SqliteSink task.
struct SqliteSinkTask {
    writer: Option<Writer>,
}

impl SqliteSinkTask {
    /// Runs `f` on the writer on tokio's blocking pool.
    async fn with_writer<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Writer) -> Result<T, SqliteError> + Send + 'static,
    ) -> Result<T, ConnectError> {
        let mut writer = self
            .writer
            .take()
            .ok_or_else(|| ConnectError::Fatal("SqliteSink task used before start".into()))?;
        let (writer, result) = tokio::task::spawn_blocking(move || {
            let result = f(&mut writer);
            (writer, result)
        })
        .await
        .map_err(|e| ConnectError::Fatal(format!("SqliteSink: writer panicked: {e}")))?;
        self.writer = Some(writer);
        result.map_err(|e| connect_error("SqliteSink", e))
    }
}

#[async_trait]
impl SinkTask for SqliteSinkTask {
    async fn start(&mut self, config: TaskConfig) -> Result<(), ConnectError> {
        let config: SqliteSinkConfig = serde_json::from_value(Value::Object(config))
            .map_err(|e| ConnectError::Fatal(format!("invalid task config: {e}")))?;
        config
            .validate()
            .map_err(|e| connect_error("SqliteSink", e))?;
        let writer = tokio::task::spawn_blocking(move || {
            Writer::new(open(&config.connection_url, true)?, config.writer_config())
        })
        .await
        .map_err(|e| ConnectError::Fatal(e.to_string()))?
        .map_err(|e| connect_error("SqliteSink", e))?;
        self.writer = Some(writer);
        Ok(())
    }

    async fn open(&mut self, _partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        Ok(())
    }

    async fn put(&mut self, records: Vec<SinkRecord>) -> Result<(), ConnectError> {
        if records.is_empty() {
            return Ok(());
        }
        self.with_writer(move |w| w.write(records)).await
    }

    async fn flush(&mut self) -> Result<(), ConnectError> {
        self.with_writer(Writer::flush).await
    }

    async fn close(&mut self, _partitions: &[TopicPartition]) -> Result<(), ConnectError> {
        Ok(())
    }

    async fn stop(&mut self) {
        if self.writer.is_some() {
            if let Err(e) = self.flush().await {
                tracing::warn!(error = %e, "SqliteSink: final flush failed");
            }
        }
        if let Some(writer) = self.writer.take() {
            let _ = tokio::task::spawn_blocking(move || drop(writer)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_connect::ConnectorDefinition;
    use rusqlite::Connection;
    use serde_json::json;

    fn definition(extra: Value) -> Result<Box<dyn SinkConnector>, String> {
        let mut cfg = json!({"name": "k", "connector.class": "SqliteSink"});
        for (k, v) in extra.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        let d = ConnectorDefinition::from_json(&cfg).map_err(|e| e.to_string())?;
        match d.config.build().map_err(|e| e.to_string())? {
            Connector::Sink(s) => Ok(s),
            Connector::Source(_) => Err("not a sink".into()),
        }
    }

    async fn started(extra: Value) -> Box<dyn SinkTask> {
        let conn = definition(extra).unwrap();
        let mut task = conn.create_task();
        task.start(conn.task_configs(1).unwrap().remove(0))
            .await
            .unwrap();
        task
    }

    fn rec(offset: i64, key: Option<Value>, value: Value) -> SinkRecord {
        SinkRecord {
            topic: "users".into(),
            partition: 0,
            offset,
            key,
            value,
        }
    }

    fn rows(path: &std::path::Path, sql: &str) -> Vec<Vec<Value>> {
        let conn = Connection::open(path).unwrap();
        let mut stmt = conn.prepare(sql).unwrap();
        let n = stmt.column_count();
        stmt.query_map([], |r| {
            Ok((0..n)
                .map(|i| crate::sqlite::to_json(r.get_ref(i).unwrap()))
                .collect())
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    #[tokio::test]
    async fn upsert_with_record_key_creates_evolves_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("out.db");
        let mut task = started(
            json!({"connection.url": format!("jdbc:sqlite:{}", db.display()),
            "topics": "users", "table.name.format": "t_${topic}", "insert.mode": "upsert",
            "pk.mode": "record_key", "pk.fields": "id", "auto.create": "true",
            "auto.evolve": true, "delete.enabled": true}),
        )
        .await;
        task.put(vec![
            rec(0, Some(json!(1)), json!({"name": "ann", "score": 1.5})),
            rec(1, Some(json!(2)), json!({"name": "bob", "score": 2})),
            // Plain JSON text (StringConverter) is accepted too.
            rec(
                2,
                Some(json!(1)),
                json!("{\"name\": \"ann2\", \"score\": 3}"),
            ),
        ])
        .await
        .unwrap();
        task.flush().await.unwrap();
        assert_eq!(
            rows(&db, "SELECT id, name, score FROM t_users ORDER BY id"),
            [
                [json!(1), json!("ann2"), json!(3.0)],
                [json!(2), json!("bob"), json!(2.0)]
            ]
        );
        // A new field adds a column; a tombstone deletes.
        task.put(vec![
            rec(
                3,
                Some(json!(2)),
                json!({"name": "bob", "tags": ["x"], "ok": true}),
            ),
            rec(4, Some(json!(1)), Value::Null),
        ])
        .await
        .unwrap();
        task.flush().await.unwrap();
        assert_eq!(
            rows(&db, "SELECT id, name, tags, ok FROM t_users"),
            [[json!(2), json!("bob"), json!("[\"x\"]"), json!(1)]]
        );
        task.stop().await;
    }

    #[tokio::test]
    async fn insert_with_record_value_key_and_composite_record_key() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("out.db");
        let url = db.to_str().unwrap();
        let mut task = started(json!({"connection.url": url, "topics": "users",
            "pk.mode": "record_value", "pk.fields": "a,b", "auto.create": true}))
        .await;
        task.put(vec![rec(0, None, json!({"a": 1, "b": "x", "v": null}))])
            .await
            .unwrap();
        // A duplicate key fails in insert mode, and the batch leaves nothing.
        let err = task
            .put(vec![
                rec(1, None, json!({"a": 2, "b": "x"})),
                rec(2, None, json!({"a": 1, "b": "x"})),
            ])
            .await
            .unwrap_err();
        assert!(!err.is_retriable(), "{err}");
        assert_eq!(
            rows(&db, "SELECT a, b FROM users"),
            [[json!(1), json!("x")]]
        );
        task.stop().await;

        let mut task = started(json!({"connection.url": url, "topics": "users",
            "table.name.format": "pairs", "pk.mode": "record_key", "insert.mode": "upsert",
            "auto.create": true}))
        .await;
        let key = json!({"x": 1, "y": 2});
        task.put(vec![
            rec(0, Some(key.clone()), json!({"v": "a"})),
            rec(1, Some(key), json!({"v": "b"})),
        ])
        .await
        .unwrap();
        assert_eq!(
            rows(&db, "SELECT x, y, v FROM pairs"),
            [[json!(1), json!(2), json!("b")]]
        );
        task.stop().await;
    }

    #[tokio::test]
    async fn without_auto_create_or_evolve_the_error_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("out.db");
        Connection::open(&db)
            .unwrap()
            .execute_batch("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
            .unwrap();
        let mut task = started(json!({"connection.url": db.to_str().unwrap(),
            "topics": "users, other"}))
        .await;
        task.put(vec![rec(0, None, json!({"id": 1, "name": "a"}))])
            .await
            .unwrap();
        let err = task
            .put(vec![rec(1, None, json!({"id": 2, "mail": "m"}))])
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("auto.evolve") && err.contains("mail") && err.contains("users-0@1"),
            "{err}"
        );
        let mut other = rec(2, None, json!({"id": 3}));
        other.topic = "other".into();
        let err = task.put(vec![other]).await.unwrap_err().to_string();
        assert!(err.contains("auto.create"), "{err}");
        let err = task
            .put(vec![rec(3, None, json!([1]))])
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("JSON object"), "{err}");
        // A tombstone without delete.enabled is skipped.
        task.put(vec![rec(4, None, Value::Null)]).await.unwrap();
        task.flush().await.unwrap();
        assert_eq!(
            rows(&db, "SELECT id, name FROM users"),
            [[json!(1), json!("a")]]
        );
        task.stop().await;
    }

    #[test]
    fn bad_configs_name_the_key() {
        let base = |extra: Value| {
            let mut cfg = json!({"connection.url": "/x.db", "topics": "a"});
            for (k, v) in extra.as_object().unwrap() {
                cfg[k] = v.clone();
            }
            definition(cfg).err().unwrap_or_default()
        };
        let cases = [
            (json!({"delete.enabled": true}), "delete.enabled"),
            (
                json!({"delete.enabled": true, "pk.mode": "record_value", "pk.fields": "id"}),
                "delete.enabled",
            ),
            (json!({"insert.mode": "upsert"}), "insert.mode"),
            (json!({"insert.mode": "merge"}), "merge"),
            (json!({"pk.mode": "record_value"}), "pk.fields"),
            (json!({"pk.fields": "id"}), "pk.fields"),
            (json!({"topics": " , "}), "topics"),
            (json!({"auto.create": "maybe"}), "maybe"),
            (json!({"table.name": "x"}), "table.name"),
        ];
        for (extra, key) in cases {
            let err = base(extra.clone());
            assert!(err.contains(key), "{extra}: {err:?}");
        }
        assert!(base(json!({"delete.enabled": "true", "pk.mode": "record_key"})).is_empty());
    }
}
