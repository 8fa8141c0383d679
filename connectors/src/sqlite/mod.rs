//! SQLite connectors: `SqliteSource` (table or query → topic, JDBC-source
//! style modes) and `SqliteSink` (topics → tables, insert or upsert).
//!
//! Value mapping (both directions): SQL INTEGER ↔ JSON integer, REAL ↔ JSON
//! number, TEXT ↔ JSON string, NULL ↔ null. A BLOB is read as a base64
//! (standard alphabet, padded) JSON string; the sink writes JSON strings as
//! TEXT, booleans as 0/1 and arrays/objects as their JSON text.

mod querier;
mod sink;
mod source;
mod writer;

use std::path::PathBuf;
use std::time::Duration;

use brook_connect::ConnectError;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

pub use sink::{InsertMode, PkMode, SqliteSinkConfig};
pub use source::{SqliteSourceConfig, SqliteSourceMode};

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of the SQLite connectors (mapped onto [`ConnectError`] at the task boundary).
#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    /// A configuration key has an invalid value.
    #[error("{key}: {message}")]
    Config {
        /// The offending key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The database could not be opened.
    #[error("connection.url: cannot open {path}: {source}")]
    Open {
        /// Database path.
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A statement failed.
    #[error("sqlite: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A record cannot be written (not an object, missing key, ...).
    #[error("{0}")]
    Record(String),
    /// Record `index` of a batch was refused; nothing of the batch was kept.
    #[error("{message}")]
    BadRecord {
        /// Position of the record in the batch.
        index: usize,
        /// What is wrong, naming the record's topic, partition and offset.
        message: String,
    },
    /// The database is busy; the operation may succeed later.
    #[error("{0}")]
    Busy(String),
}

/// Maps an error onto the runtime's kinds: a busy/locked database is
/// retriable, everything else fatal; `class` prefixes the message.
pub(crate) fn connect_error(class: &str, e: SqliteError) -> ConnectError {
    if let SqliteError::BadRecord { index, message } = e {
        return ConnectError::BadRecord {
            index,
            message: format!("{class}: {message}"),
        };
    }
    let busy = matches!(&e, SqliteError::Busy(_))
        || matches!(
            &e,
            SqliteError::Sql(rusqlite::Error::SqliteFailure(f, _))
                if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        );
    if busy {
        ConnectError::Retriable(format!("{class}: {e}"))
    } else {
        ConnectError::Fatal(format!("{class}: {e}"))
    }
}

/// The database path of a `connection.url`: a plain path, `jdbc:sqlite:PATH`
/// or `sqlite:PATH` (`file:` URIs are not interpreted).
pub(crate) fn database_path(url: &str) -> Result<PathBuf, SqliteError> {
    let path = url
        .strip_prefix("jdbc:sqlite:")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
        .trim();
    if path.is_empty() {
        return Err(SqliteError::Config {
            key: "connection.url",
            message: "names no database file".into(),
        });
    }
    Ok(PathBuf::from(path))
}

/// Opens the database at `url`; `create` also creates a missing file.
pub(crate) fn open(url: &str, create: bool) -> Result<Connection, SqliteError> {
    let path = database_path(url)?;
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(&path, flags).map_err(|source| SqliteError::Open {
        path: path.display().to_string(),
        source,
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Quotes an identifier for SQL (`"a""b"`).
pub(crate) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Splits a comma-separated list, dropping empty items.
pub(crate) fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// The primary key columns of `table`, in key order (empty when it has none).
pub(crate) fn primary_key(conn: &Connection, table: &str) -> Result<Vec<String>, SqliteError> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", quote(table)))?;
    let mut cols: Vec<(i64, String)> = stmt
        .query_map([], |row| {
            Ok((row.get::<_, i64>(5)?, row.get::<_, String>(1)?))
        })?
        .collect::<Result<_, _>>()?;
    cols.retain(|(pk, _)| *pk > 0);
    cols.sort();
    Ok(cols.into_iter().map(|(_, name)| name).collect())
}

/// True when `column` of `table` is its rowid (an `INTEGER PRIMARY KEY`
/// alias, or `rowid` itself) in a table without `AUTOINCREMENT`: SQLite then
/// gives a new row the largest rowid plus one, so deleting the newest row
/// and inserting another reuses its id — a row `incrementing` mode, having
/// read past that id, never sees.
pub(crate) fn reuses_rowids(
    conn: &Connection,
    table: &str,
    column: &str,
) -> Result<bool, SqliteError> {
    let sql: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })?;
    let Some(sql) = sql.map(|s| s.to_ascii_uppercase()) else {
        return Ok(false);
    };
    if sql.contains("AUTOINCREMENT") || sql.contains("WITHOUT ROWID") {
        return Ok(false);
    }
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({})", quote(table)))?;
    let cols: Vec<(String, String, i64)> = stmt
        .query_map([], |row| Ok((row.get(1)?, row.get(2)?, row.get(5)?)))?
        .collect::<Result<_, _>>()?;
    let pk: Vec<&(String, String, i64)> = cols.iter().filter(|c| c.2 > 0).collect();
    let alias = matches!(pk.as_slice(), [(name, ty, _)]
        if name.eq_ignore_ascii_case(column) && ty.eq_ignore_ascii_case("INTEGER"));
    let named_rowid = ["rowid", "_rowid_", "oid"]
        .iter()
        .any(|r| r.eq_ignore_ascii_case(column))
        && !cols.iter().any(|c| c.0.eq_ignore_ascii_case(column));
    Ok(alias || named_rowid)
}

/// A column value as JSON (BLOB → base64 string).
pub(crate) fn to_json(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::String(base64_encode(b)),
    }
}

/// A JSON value as an SQL value (bool → 0/1, array/object → JSON text).
pub(crate) fn to_sql(value: &Value) -> SqlValue {
    match value {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard, padded base64.
pub(crate) fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A stable 64-bit FNV-1a hash (identifies rows without a key across restarts).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_base64() {
        assert_eq!(
            database_path("jdbc:sqlite:/a/b.db").unwrap(),
            PathBuf::from("/a/b.db")
        );
        assert_eq!(database_path("/a/b.db").unwrap(), PathBuf::from("/a/b.db"));
        assert!(database_path("jdbc:sqlite:")
            .unwrap_err()
            .to_string()
            .contains("connection.url"));
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn rowids_without_autoincrement_are_recognised() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE plain (id INTEGER PRIMARY KEY, v TEXT);
             CREATE TABLE auto (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT);
             CREATE TABLE bigint (id BIGINT PRIMARY KEY, v TEXT);
             CREATE TABLE nokey (seq INTEGER, v TEXT);",
        )
        .unwrap();
        assert!(reuses_rowids(&conn, "plain", "id").unwrap());
        assert!(reuses_rowids(&conn, "plain", "ROWID").unwrap());
        assert!(!reuses_rowids(&conn, "auto", "id").unwrap());
        // Not a rowid alias: an ordinary column SQLite never reuses on its own.
        assert!(!reuses_rowids(&conn, "bigint", "id").unwrap());
        assert!(!reuses_rowids(&conn, "nokey", "seq").unwrap());
        assert!(reuses_rowids(&conn, "nokey", "rowid").unwrap());
        assert!(!reuses_rowids(&conn, "missing", "id").unwrap());
    }

    #[test]
    fn missing_database_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("nope.db");
        let err = open(url.to_str().unwrap(), false).unwrap_err().to_string();
        assert!(
            err.contains("connection.url") && err.contains("nope.db"),
            "{err}"
        );
    }
}
