//! One source partition of `SqliteSource` (a table or the query): builds the
//! mode's incremental query, reads a batch and tracks the offset (blocking).
//!
//! Queries per mode (`ts`/`id` = timestamp/incrementing column, `?` = offset):
//! - bulk: `SELECT *` of the whole table each poll interval, no offset.
//! - incrementing: `WHERE id > ? ORDER BY id`.
//! - timestamp+incrementing: `WHERE ts < now-delay AND ((ts = ? AND id > ?) OR ts > ?) ORDER BY ts, id`.
//! - timestamp: `WHERE ts < now-delay AND ts >= ? ORDER BY ts`; the offset also
//!   lists the rows already emitted with the last timestamp (`timestamp.seen`:
//!   primary key, else a hash of the row), and those are skipped — so rows that
//!   share the last timestamp are neither lost nor repeated across a restart.
//!
//! "now-delay": INTEGER/REAL timestamps are taken as epoch milliseconds, TEXT
//! timestamps are compared with `julianday()` (any SQLite date format, UTC).
//! Rows whose timestamp is NULL or unparsable are never read.

use std::collections::VecDeque;
use std::sync::Arc;

use brook_connect::{SourceOffset, SourcePartition, SourceRecord, StoredOffsets};
use rusqlite::Connection;
use serde_json::{json, Map, Value};

use super::source::SqliteSourceMode;
use super::{fnv1a, primary_key, quote, to_json, to_sql, SqliteError};

/// What a partition reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A table, read with `SELECT *`.
    Table(String),
    /// A user query, wrapped as a subquery.
    Query(String),
}

/// Mode-wide settings shared by every partition of a task.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    pub mode: SqliteSourceMode,
    pub incrementing: Option<String>,
    pub timestamp: Option<String>,
    pub batch: usize,
    pub delay_ms: u64,
}

/// Most identities kept in a stored `timestamp.seen`.
pub(crate) const MAX_SEEN_STORED: usize = 1000;

/// Reads one table or query incrementally.
pub(crate) struct Querier {
    origin: Origin,
    partition: Arc<SourcePartition>,
    topic: Arc<str>,
    key_columns: Option<Vec<String>>,
    last_id: Option<i64>,
    last_ts: Option<Value>,
    /// Identities of the rows emitted with `last_ts` (timestamp mode only).
    seen: Vec<Value>,
    /// Rows of the current bulk snapshot not handed out yet.
    bulk: VecDeque<(Option<Value>, Map<String, Value>)>,
}

impl Querier {
    /// A querier resuming from `offsets` when they hold its partition.
    pub fn new(origin: Origin, topic: String, offsets: &StoredOffsets) -> Self {
        let partition: SourcePartition = match &origin {
            Origin::Table(t) => json!({ "table": t }),
            Origin::Query(q) => json!({ "query": q }),
        }
        .as_object()
        .cloned()
        .unwrap_or_default();
        let stored = offsets.get(&partition);
        let last_id = stored
            .and_then(|o| o.get("incrementing"))
            .and_then(Value::as_i64);
        let last_ts = stored
            .and_then(|o| o.get("timestamp"))
            .filter(|v| !v.is_null())
            .cloned();
        let seen = stored
            .and_then(|o| o.get("timestamp.seen"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        Querier {
            origin,
            partition: Arc::new(partition),
            topic: topic.into(),
            key_columns: None,
            last_id,
            last_ts,
            seen,
            bulk: VecDeque::new(),
        }
    }

    /// Reads the next batch; the flag is true when the source is exhausted
    /// for now (the caller then waits a poll interval).
    pub fn poll(
        &mut self,
        conn: &Connection,
        spec: &Spec,
        now_ms: i64,
    ) -> Result<(Vec<SourceRecord>, bool), SqliteError> {
        if self.key_columns.is_none() {
            self.key_columns = Some(match &self.origin {
                Origin::Table(t) => primary_key(conn, t)?,
                Origin::Query(_) => Vec::new(),
            });
        }
        if spec.mode == SqliteSourceMode::Bulk {
            return self.poll_bulk(conn, spec);
        }
        let (sql, params, limit) = self.incremental_sql(spec, now_ms)?;
        let mut stmt = conn.prepare_cached(&sql)?;
        let names: Vec<String> = stmt.column_names().map(String::from).collect();
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let (mut records, mut fetched) = (Vec::new(), 0usize);
        while let Some(row) = rows.next()? {
            fetched += 1;
            let mut value = Map::with_capacity(names.len());
            for (i, name) in names.iter().enumerate() {
                value.insert(name.clone(), to_json(row.get_ref(i)?));
            }
            let key = self.key_of(&value);
            if let Some(record) = self.advance(spec, key, value)? {
                records.push(record);
            }
        }
        Ok((records, fetched < limit))
    }

    fn poll_bulk(
        &mut self,
        conn: &Connection,
        spec: &Spec,
    ) -> Result<(Vec<SourceRecord>, bool), SqliteError> {
        if self.bulk.is_empty() {
            let mut stmt = conn.prepare_cached(&format!("SELECT * FROM {}", self.from()))?;
            let names: Vec<String> = stmt.column_names().map(String::from).collect();
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let mut value = Map::with_capacity(names.len());
                for (i, name) in names.iter().enumerate() {
                    value.insert(name.clone(), to_json(row.get_ref(i)?));
                }
                self.bulk.push_back((self.key_of(&value), value));
            }
        }
        let n = spec.batch.min(self.bulk.len());
        let rows: Vec<_> = self.bulk.drain(..n).collect();
        let records = rows
            .into_iter()
            .map(|(key, value)| self.record(key, value, Map::new()))
            .collect();
        Ok((records, self.bulk.is_empty()))
    }

    fn from(&self) -> String {
        match &self.origin {
            Origin::Table(t) => quote(t),
            Origin::Query(q) => format!("({q}) AS brook_query"),
        }
    }

    /// The incremental statement, its parameters and its LIMIT.
    fn incremental_sql(
        &self,
        spec: &Spec,
        now_ms: i64,
    ) -> Result<(String, Vec<rusqlite::types::Value>, usize), SqliteError> {
        let column = |c: &Option<String>, key: &'static str| {
            c.as_deref().map(quote).ok_or(SqliteError::Config {
                key,
                message: "required by this mode".into(),
            })
        };
        // Several timestamp columns compare as the first non-NULL one, as in
        // Kafka Connect's JDBC source (e.g. "modified,created").
        let timestamp = || match timestamp_columns(&spec.timestamp).as_slice() {
            [] => column(&None, "timestamp.column.name"),
            [one] => Ok(quote(one)),
            many => Ok(format!(
                "COALESCE({})",
                many.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ")
            )),
        };
        let mut clauses = Vec::new();
        let mut params = Vec::new();
        let mut limit = spec.batch;
        let upper = |ts: &str, params: &mut Vec<rusqlite::types::Value>| {
            let cutoff_ms = now_ms.saturating_sub(i64::try_from(spec.delay_ms).unwrap_or(i64::MAX));
            params.push(rusqlite::types::Value::Integer(cutoff_ms));
            let n = params.len();
            // Julian day of the cutoff, for TEXT timestamps.
            params.push(rusqlite::types::Value::Real(
                cutoff_ms as f64 / 86_400_000.0 + 2_440_587.5,
            ));
            format!(
                "(CASE WHEN typeof({ts}) IN ('integer', 'real') THEN {ts} < ?{n} \
                 ELSE julianday({ts}) < ?{} END)",
                n + 1
            )
        };
        let order = match spec.mode {
            SqliteSourceMode::Bulk => String::new(),
            SqliteSourceMode::Incrementing => {
                let id = column(&spec.incrementing, "incrementing.column.name")?;
                if let Some(last) = self.last_id {
                    params.push(last.into());
                    clauses.push(format!("{id} > ?{}", params.len()));
                }
                id
            }
            SqliteSourceMode::Timestamp => {
                let ts = timestamp()?;
                clauses.push(upper(&ts, &mut params));
                if let Some(last) = &self.last_ts {
                    params.push(to_sql(last));
                    clauses.push(format!("{ts} >= ?{}", params.len()));
                    // The rows already emitted at `last` come back and are skipped.
                    limit += self.seen.len();
                }
                ts
            }
            SqliteSourceMode::TimestampIncrementing => {
                let ts = timestamp()?;
                let id = column(&spec.incrementing, "incrementing.column.name")?;
                clauses.push(upper(&ts, &mut params));
                if let (Some(last), Some(last_id)) = (&self.last_ts, self.last_id) {
                    params.push(to_sql(last));
                    let t = params.len();
                    params.push(last_id.into());
                    clauses.push(format!(
                        "(({ts} = ?{t} AND {id} > ?{}) OR {ts} > ?{t})",
                        t + 1
                    ));
                }
                format!("{ts}, {id}")
            }
        };
        let mut sql = format!("SELECT * FROM {}", self.from());
        if !clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&clauses.join(" AND "));
        }
        sql.push_str(&format!(" ORDER BY {order} LIMIT {limit}"));
        Ok((sql, params, limit))
    }

    fn key_of(&self, value: &Map<String, Value>) -> Option<Value> {
        match self.key_columns.as_deref() {
            None | Some([]) => None,
            Some([one]) => Some(value.get(one).cloned().unwrap_or(Value::Null)),
            Some(many) => Some(Value::Object(
                many.iter()
                    .map(|c| (c.clone(), value.get(c).cloned().unwrap_or(Value::Null)))
                    .collect(),
            )),
        }
    }

    /// Moves the offset past one row; `None` when the row was already emitted.
    fn advance(
        &mut self,
        spec: &Spec,
        key: Option<Value>,
        value: Map<String, Value>,
    ) -> Result<Option<SourceRecord>, SqliteError> {
        let get = |col: &Option<String>| {
            col.as_deref()
                .map(|c| value.get(c).cloned().unwrap_or(Value::Null))
        };
        let id = match get(&spec.incrementing) {
            Some(v) => Some(v.as_i64().ok_or_else(|| {
                SqliteError::Record(format!(
                    "incrementing.column.name: column {:?} holds {v}, not an integer",
                    spec.incrementing.as_deref().unwrap_or_default()
                ))
            })?),
            None => None,
        };
        let ts = spec.timestamp.as_ref().map(|_| {
            timestamp_columns(&spec.timestamp)
                .into_iter()
                .find_map(|c| value.get(c).filter(|v| !v.is_null()))
                .cloned()
                .unwrap_or(Value::Null)
        });
        let mut offset = Map::new();
        match spec.mode {
            SqliteSourceMode::Bulk => {}
            SqliteSourceMode::Incrementing => {
                self.last_id = id;
                offset.insert("incrementing".into(), json!(id));
            }
            SqliteSourceMode::TimestampIncrementing => {
                self.last_id = id;
                self.last_ts = ts.clone();
                offset.insert("timestamp".into(), ts.unwrap_or(Value::Null));
                offset.insert("incrementing".into(), json!(id));
            }
            SqliteSourceMode::Timestamp => {
                let identity = match &key {
                    Some(k) => k.clone(),
                    None => json!(fnv1a(Value::Object(value.clone()).to_string().as_bytes())),
                };
                if ts.is_some() && ts == self.last_ts {
                    if self.seen.contains(&identity) {
                        return Ok(None);
                    }
                    self.seen.push(identity);
                } else {
                    self.last_ts = ts.clone();
                    self.seen = vec![identity];
                }
                offset.insert("timestamp".into(), ts.unwrap_or(Value::Null));
                // Bounded: the offset is stored (and cloned per record), so
                // only the first MAX_SEEN_STORED ties go into it. The running
                // task keeps all of them (it must skip every one when the
                // query returns them again); after a restart, ties beyond the
                // bound are emitted again — duplicates, never losses.
                let stored = self.seen.len().min(MAX_SEEN_STORED);
                if self.seen.len() == MAX_SEEN_STORED + 1 {
                    let tie = self.last_ts.clone().unwrap_or_default();
                    tracing::warn!(partition = ?self.partition, timestamp = %tie,
                        "more than {MAX_SEEN_STORED} rows share one timestamp; after a restart the rest are read again");
                }
                offset.insert(
                    "timestamp.seen".into(),
                    Value::Array(self.seen[..stored].to_vec()),
                );
            }
        }
        Ok(Some(self.record(key, value, offset)))
    }

    fn record(
        &self,
        key: Option<Value>,
        value: Map<String, Value>,
        offset: SourceOffset,
    ) -> SourceRecord {
        SourceRecord {
            source_partition: self.partition.clone(),
            source_offset: Some(offset),
            topic: self.topic.clone(),
            key,
            value: Value::Object(value),
        }
    }
}

/// The columns named by `timestamp.column.name` (comma-separated).
pub(crate) fn timestamp_columns(spec: &Option<String>) -> Vec<&str> {
    spec.as_deref()
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .unwrap_or_default()
}
