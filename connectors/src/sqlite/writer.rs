//! The blocking half of `SqliteSink`: maps records to rows, creates and
//! evolves tables, and writes each batch in one transaction.
//!
//! Durability: the database is switched to WAL with `synchronous=NORMAL`, so a
//! batch commit costs no fsync; `flush` runs `wal_checkpoint(FULL)`, which
//! syncs the WAL and then the database file, before the worker commits the
//! consumer offsets. (A database that cannot use WAL gets
//! `synchronous=FULL`: every commit is durable and flush has nothing to do.)

use std::collections::HashMap;

use brook_connect::SinkRecord;
use rusqlite::Connection;
use serde_json::{Map, Value};

use super::sink::{InsertMode, PkMode};
use super::{quote, to_sql, SqliteError};

/// Writer settings taken from the sink config.
#[derive(Debug, Clone)]
pub(crate) struct WriterConfig {
    pub table_format: String,
    pub insert_mode: InsertMode,
    pub pk_mode: PkMode,
    pub pk_fields: Vec<String>,
    pub auto_create: bool,
    pub auto_evolve: bool,
    pub delete_enabled: bool,
}

/// Column name used for a primitive record key when `pk.fields` is empty.
const DEFAULT_KEY_COLUMN: &str = "__connect_key";

/// Writes records into one database.
pub(crate) struct Writer {
    conn: Connection,
    config: WriterConfig,
    /// Known columns per table (lower-cased names, as SQLite matches them).
    tables: HashMap<String, Vec<String>>,
    /// Statement text per table + column list + key (skips DDL checks and
    /// SQL building for shapes already written).
    statements: HashMap<String, String>,
    /// Table name per topic (`table.name.format` applied).
    table_names: HashMap<String, String>,
    wal: bool,
}

/// What one record does to its table.
enum Op {
    Upsert(Vec<(String, Value)>, Vec<String>),
    Delete(Vec<(String, Value)>),
    Skip,
}

impl Writer {
    /// Prepares the connection (WAL, synchronous level).
    pub fn new(conn: Connection, config: WriterConfig) -> Result<Self, SqliteError> {
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        let wal = mode.eq_ignore_ascii_case("wal");
        conn.execute_batch(if wal {
            "PRAGMA synchronous=NORMAL"
        } else {
            "PRAGMA synchronous=FULL"
        })?;
        Ok(Writer {
            conn,
            config,
            tables: HashMap::new(),
            statements: HashMap::new(),
            table_names: HashMap::new(),
            wal,
        })
    }

    /// Writes a batch in one transaction: all of it or (on error) none. A
    /// record the database refuses (bad shape, constraint, type) fails as
    /// [`SqliteError::BadRecord`] with its index in the batch.
    pub fn write(&mut self, mut records: Vec<SinkRecord>) -> Result<(), SqliteError> {
        self.conn.execute_batch("BEGIN IMMEDIATE")?;
        let mut result = Ok(());
        for (index, record) in records.iter_mut().enumerate() {
            if let Err(e) = self.write_one(record) {
                result = Err(bad_record(index, record, e));
                break;
            }
        }
        match result {
            Ok(()) => self.conn.execute_batch("COMMIT").map_err(|e| {
                self.rollback();
                SqliteError::Sql(e)
            }),
            Err(e) => {
                self.rollback();
                Err(e)
            }
        }
    }

    fn rollback(&mut self) {
        if let Err(e) = self.conn.execute_batch("ROLLBACK") {
            tracing::debug!(error = %e, "SqliteSink: rollback");
        }
        // DDL may have been rolled back with the batch.
        self.tables.clear();
        self.statements.clear();
    }

    /// Makes every committed batch durable. With the rollback journal
    /// (synchronous=FULL) every commit already is. In WAL mode with
    /// synchronous=NORMAL commits sit in the WAL unsynced; syncing the WAL
    /// file makes all of them durable, as synchronous=FULL would per commit.
    /// Not a `wal_checkpoint(FULL)`: that waits for every reader to let go
    /// of its snapshot, and a reader holding one for longer than the busy
    /// timeout failed the flush (SQLite's own automatic checkpoints keep
    /// the WAL short without waiting on anyone).
    pub fn flush(&mut self) -> Result<(), SqliteError> {
        if !self.wal {
            return Ok(());
        }
        let Some(db) = self.conn.path().filter(|p| !p.is_empty()) else {
            return Ok(());
        };
        let wal = format!("{db}-wal");
        match std::fs::File::open(&wal) {
            Ok(file) => file
                .sync_all()
                .map_err(|e| SqliteError::Busy(format!("syncing {wal}: {e}"))),
            // No WAL (nothing written yet, or checkpointed and removed).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SqliteError::Busy(format!("opening {wal}: {e}"))),
        }
    }

    /// Writes one record; its value is taken (the record keeps its
    /// position for error messages).
    fn write_one(&mut self, record: &mut SinkRecord) -> Result<(), SqliteError> {
        let table = self.table_name(&record.topic);
        match self.op(record).map_err(SqliteError::Record)? {
            Op::Skip => Ok(()),
            Op::Delete(key) => {
                if !self.ensure_known(&table)? {
                    return Ok(());
                }
                let cond: Vec<String> = key
                    .iter()
                    .map(|(c, _)| format!("{} = ?", quote(c)))
                    .collect();
                let sql = format!("DELETE FROM {} WHERE {}", quote(&table), cond.join(" AND "));
                let mut stmt = self.conn.prepare_cached(&sql)?;
                stmt.execute(rusqlite::params_from_iter(
                    key.iter().map(|(_, v)| Param(v)),
                ))?;
                Ok(())
            }
            Op::Upsert(row, pk) => {
                let mut shape = table.clone();
                for (c, _) in &row {
                    shape.push('\0');
                    shape.push_str(c);
                }
                shape.push('\u{1}');
                for c in &pk {
                    shape.push('\0');
                    shape.push_str(c);
                }
                if let Some(sql) = self.statements.get(&shape) {
                    let mut stmt = self.conn.prepare_cached(sql)?;
                    stmt.execute(rusqlite::params_from_iter(
                        row.iter().map(|(_, v)| Param(v)),
                    ))?;
                    return Ok(());
                }
                self.ensure_table(&table, &row, &pk)?;
                let cols: Vec<String> = row.iter().map(|(c, _)| quote(c)).collect();
                let marks = vec!["?"; cols.len()].join(", ");
                let mut sql = format!(
                    "INSERT INTO {} ({}) VALUES ({marks})",
                    quote(&table),
                    cols.join(", ")
                );
                if self.config.insert_mode == InsertMode::Upsert {
                    let updates: Vec<String> = row
                        .iter()
                        .filter(|(c, _)| !pk.contains(c))
                        .map(|(c, _)| format!("{0} = excluded.{0}", quote(c)))
                        .collect();
                    let target: Vec<String> = pk.iter().map(|c| quote(c)).collect();
                    sql.push_str(&format!(" ON CONFLICT ({}) DO ", target.join(", ")));
                    if updates.is_empty() {
                        sql.push_str("NOTHING");
                    } else {
                        sql.push_str(&format!("UPDATE SET {}", updates.join(", ")));
                    }
                }
                let mut stmt = self.conn.prepare_cached(&sql)?;
                stmt.execute(rusqlite::params_from_iter(
                    row.iter().map(|(_, v)| Param(v)),
                ))?;
                drop(stmt);
                self.statements.insert(shape, sql);
                Ok(())
            }
        }
    }

    fn table_name(&mut self, topic: &str) -> String {
        if let Some(name) = self.table_names.get(topic) {
            return name.clone();
        }
        let name = self.config.table_format.replace("${topic}", topic);
        self.table_names.insert(topic.to_string(), name.clone());
        name
    }

    /// Decides what a record does; errors are messages about the record.
    fn op(&self, record: &mut SinkRecord) -> Result<Op, String> {
        if record.value.is_null() {
            if !self.config.delete_enabled {
                return Ok(Op::Skip);
            }
            let key = self.key_columns(record)?;
            return Ok(Op::Delete(key));
        }
        let key = match self.config.pk_mode {
            PkMode::RecordKey => Some(self.key_columns(record)?),
            _ => None,
        };
        let mut fields = match into_object(std::mem::take(&mut record.value)) {
            Ok(fields) => fields,
            Err(other) => {
                return Err(format!(
                    "value must be a JSON object, got {}",
                    truncate(&other.to_string())
                ))
            }
        };
        let pk = match self.config.pk_mode {
            PkMode::None => Vec::new(),
            PkMode::RecordKey => {
                let key = key.unwrap_or_default();
                let names = key.iter().map(|(c, _)| c.clone()).collect();
                for (c, v) in key {
                    fields.insert(c, v);
                }
                names
            }
            PkMode::RecordValue => {
                for f in &self.config.pk_fields {
                    if fields.get(f).is_none_or(Value::is_null) {
                        return Err(format!("pk.fields: value has no field {f:?}"));
                    }
                }
                self.config.pk_fields.clone()
            }
        };
        if fields.is_empty() {
            return Err("value has no fields".into());
        }
        Ok(Op::Upsert(fields.into_iter().collect(), pk))
    }

    /// The primary key columns and values taken from the record key.
    fn key_columns(&self, record: &SinkRecord) -> Result<Vec<(String, Value)>, String> {
        let key = record
            .key
            .as_ref()
            .filter(|k| !k.is_null())
            .ok_or("pk.mode=record_key needs a record key, the record has none")?;
        match as_object(key) {
            Some(obj) => {
                let names: Vec<String> = if self.config.pk_fields.is_empty() {
                    obj.keys().cloned().collect()
                } else {
                    self.config.pk_fields.clone()
                };
                names
                    .into_iter()
                    .map(|n| match obj.get(&n) {
                        Some(v) if !v.is_null() => Ok((n, v.clone())),
                        _ => Err(format!("pk.fields: record key has no field {n:?}")),
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .and_then(|k| {
                        if k.is_empty() {
                            Err("record key is an empty object".into())
                        } else {
                            Ok(k)
                        }
                    })
            }
            None => {
                let name = self
                    .config
                    .pk_fields
                    .first()
                    .cloned()
                    .unwrap_or_else(|| DEFAULT_KEY_COLUMN.to_string());
                Ok(vec![(name, key.clone())])
            }
        }
    }

    /// Loads a table's columns into the cache; false when it does not exist.
    fn ensure_known(&mut self, table: &str) -> Result<bool, SqliteError> {
        if self.tables.contains_key(table) {
            return Ok(true);
        }
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA table_info({})", quote(table)))?;
        let cols: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(1))?
            .map(|c| c.map(|c| c.to_lowercase()))
            .collect::<Result<_, _>>()?;
        drop(stmt);
        if cols.is_empty() {
            return Ok(false);
        }
        self.tables.insert(table.to_string(), cols);
        Ok(true)
    }

    /// Creates the table or adds missing columns, as the config allows.
    fn ensure_table(
        &mut self,
        table: &str,
        row: &[(String, Value)],
        pk: &[String],
    ) -> Result<(), SqliteError> {
        if !self.ensure_known(table)? {
            if !self.config.auto_create {
                return Err(SqliteError::Record(format!(
                    "table {table:?} does not exist (set auto.create=true to create it)"
                )));
            }
            let mut defs: Vec<String> = row
                .iter()
                .map(|(c, v)| {
                    format!("{} {}", quote(c), sql_type(v))
                        .trim_end()
                        .to_string()
                })
                .collect();
            if !pk.is_empty() {
                let cols: Vec<String> = pk.iter().map(|c| quote(c)).collect();
                defs.push(format!("PRIMARY KEY ({})", cols.join(", ")));
            }
            self.conn.execute_batch(&format!(
                "CREATE TABLE {} ({})",
                quote(table),
                defs.join(", ")
            ))?;
            self.tables.insert(
                table.to_string(),
                row.iter().map(|(c, _)| c.to_lowercase()).collect(),
            );
            return Ok(());
        }
        let missing: Vec<&(String, Value)> = {
            let known = self
                .tables
                .get(table)
                .map(Vec::as_slice)
                .unwrap_or_default();
            row.iter()
                .filter(|(c, _)| !known.contains(&c.to_lowercase()))
                .collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        if !self.config.auto_evolve {
            return Err(SqliteError::Record(format!(
                "table {table:?} has no column {:?} (set auto.evolve=true to add it)",
                missing[0].0
            )));
        }
        for (c, v) in missing {
            self.conn.execute_batch(
                format!(
                    "ALTER TABLE {} ADD COLUMN {} {}",
                    quote(table),
                    quote(c),
                    sql_type(v)
                )
                .trim_end(),
            )?;
            if let Some(cols) = self.tables.get_mut(table) {
                cols.push(c.to_lowercase());
            }
        }
        Ok(())
    }
}

/// The declared type for a column first seen holding `v` (none for null,
/// so SQLite applies no affinity).
fn sql_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "",
        Value::Bool(_) => "INTEGER",
        Value::Number(n) if n.is_i64() => "INTEGER",
        Value::Number(_) => "REAL",
        Value::String(_) => "TEXT",
        Value::Array(_) | Value::Object(_) => "TEXT",
    }
}

/// An object, or a string holding a JSON object (StringConverter values).
fn as_object(v: &Value) -> Option<Map<String, Value>> {
    into_object(v.clone()).ok()
}

/// As [`as_object`], consuming the value (handed back when it is not one).
fn into_object(v: Value) -> Result<Map<String, Value>, Value> {
    match v {
        Value::Object(m) => Ok(m),
        Value::String(s) => match serde_json::from_str::<Value>(&s) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(Value::String(s)),
        },
        other => Err(other),
    }
}

/// A JSON value bound as an SQL parameter without copying strings.
struct Param<'a>(&'a Value);

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self.0 {
            Value::String(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            other => ToSqlOutput::Owned(to_sql(other)),
        })
    }
}

fn truncate(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Names the record behind a failure, and marks failures that are the
/// record's own fault (the rest of the batch could be written without it).
fn bad_record(index: usize, record: &SinkRecord, e: SqliteError) -> SqliteError {
    let at = format!(
        "record {}-{}@{}",
        record.topic, record.partition, record.offset
    );
    match e {
        SqliteError::Record(m) => SqliteError::BadRecord {
            index,
            message: format!("{at}: {m}"),
        },
        SqliteError::Sql(rusqlite::Error::SqliteFailure(f, m)) if is_data_error(f.code) => {
            SqliteError::BadRecord {
                index,
                message: format!("{at}: {}", m.unwrap_or_else(|| f.to_string())),
            }
        }
        // Errors raised by rusqlite itself while binding the record's values.
        SqliteError::Sql(e) if !matches!(e, rusqlite::Error::SqliteFailure(..)) => {
            SqliteError::BadRecord {
                index,
                message: format!("{at}: {e}"),
            }
        }
        other => other,
    }
}

/// True when SQLite refused a statement because of the record it was
/// built from: a constraint, a type, a size, or a plain SQL error (the
/// statement's columns and DDL come from the record's fields). Everything
/// that says something about the database or the machine instead (busy,
/// locked, read-only, full, I/O, corrupt, ...) is not the record's fault.
fn is_data_error(code: rusqlite::ErrorCode) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        code,
        ConstraintViolation | TypeMismatch | TooBig | ParameterOutOfRange | Unknown
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: i32, message: &str) -> SqliteError {
        SqliteError::Sql(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(code),
            Some(message.into()),
        ))
    }

    #[test]
    fn data_errors_name_the_record_and_the_rest_do_not() {
        let record = SinkRecord {
            topic: "t".into(),
            partition: 1,
            offset: 7,
            key: None,
            value: Value::Null,
        };
        use rusqlite::ffi::{
            SQLITE_BUSY, SQLITE_CONSTRAINT, SQLITE_ERROR, SQLITE_FULL, SQLITE_IOERR,
        };
        for (code, data) in [
            (SQLITE_CONSTRAINT, true),
            (SQLITE_ERROR, true),
            (SQLITE_BUSY, false),
            (SQLITE_FULL, false),
            (SQLITE_IOERR, false),
        ] {
            match bad_record(3, &record, failure(code, "why")) {
                SqliteError::BadRecord { index, message } => {
                    assert!(data, "code {code} is not the record's fault");
                    assert_eq!(index, 3);
                    assert!(
                        message.contains("t-1@7") && message.contains("why"),
                        "{message}"
                    );
                }
                other => assert!(!data, "code {code} should name the record: {other}"),
            }
        }
        let binding = SqliteError::Sql(rusqlite::Error::InvalidParameterCount(1, 2));
        assert!(matches!(
            bad_record(0, &record, binding),
            SqliteError::BadRecord { .. }
        ));
    }
}
