//! Hooks for `examples/bench_cleaner.rs`: one partition log on disk, driven without a broker.
//! Not a stable API.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use parking_lot::Mutex;

use super::validator::batch_headers;
use super::Log;
use crate::config::{BrokerConfig, TopicConfig};

/// A partition log opened outside a broker.
pub struct BenchLog {
    log: Mutex<Log>,
}

/// What one compaction pass did.
#[derive(Debug, Clone, Copy)]
pub struct PassStats {
    /// Segments replaced by a compacted copy.
    pub segments_rewritten: usize,
    /// Records dropped.
    pub records_removed: usize,
    /// Keys in the offset map.
    pub keys_indexed: usize,
    /// Whether the map filled before the dirty section ended (another pass is needed).
    pub map_full: bool,
    /// Bytes read (map building plus rewriting).
    pub bytes_read: u64,
    /// Bytes written to `.cleaned` files.
    pub bytes_written: u64,
    /// Bytes the offset map allocated.
    pub map_bytes: u64,
}

fn io_err(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, e.to_string())
}

fn pairs(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl BenchLog {
    /// Opens (or creates) the log in `dir` with topic and broker configs as `key=value` pairs.
    pub fn open(
        dir: &Path,
        topic: &[(&str, &str)],
        broker: &[(&str, &str)],
        now_ms: i64,
    ) -> io::Result<BenchLog> {
        let broker = BrokerConfig::from_overrides(pairs(broker)).map_err(io_err)?;
        let cfg = TopicConfig::resolve(pairs(topic), &broker).map_err(io_err)?;
        let log = Log::open(dir, Arc::new(cfg), true, now_ms)?;
        Ok(BenchLog {
            log: Mutex::new(log),
        })
    }

    /// Appends one uncompressed batch of keyed records with CreateTime `ts`.
    pub fn append(&self, records: &[(Bytes, Bytes)], ts: i64, now_ms: i64) -> io::Result<()> {
        let recs: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (k, v))| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32 - 1,
                timestamp: ts,
                key: Some(k.clone()),
                value: Some(v.clone()),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        let mut buf = BytesMut::new();
        let opts = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &recs, &opts).map_err(io_err)?;
        let mut headers = batch_headers(&buf, usize::MAX).map_err(io_err)?;
        self.log
            .lock()
            .append(&buf, &mut headers, now_ms)
            .map(|_| ())
            .map_err(|e| io_err(e.message()))
    }

    /// Closes the active segment, so everything written so far can be cleaned.
    pub fn roll(&self, now_ms: i64) -> io::Result<()> {
        self.log.lock().roll(now_ms)
    }

    /// Fsyncs and checkpoints, as a clean shutdown does.
    pub fn shutdown(&self) -> io::Result<()> {
        let mut log = self.log.lock();
        log.flush(true)?;
        log.checkpoint_recovery_point()
    }

    /// Bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.log.lock().size_bytes()
    }

    /// The log end offset.
    pub fn next_offset(&self) -> i64 {
        self.log.lock().next_offset()
    }

    /// Runs one compaction pass.
    pub fn compact(&self, now_ms: i64) -> io::Result<PassStats> {
        let s = super::cleaner::compact(&self.log, now_ms)?;
        Ok(PassStats {
            segments_rewritten: s.segments_rewritten,
            records_removed: s.records_removed,
            keys_indexed: s.keys_indexed,
            map_full: s.map_full,
            bytes_read: s.bytes_read,
            bytes_written: s.bytes_written,
            map_bytes: s.map_bytes,
        })
    }
}
