//! State stores: key-value, window and session stores over an engine, with a
//! changelog and an optional write cache.

pub(crate) mod cache;
pub(crate) mod engine;
pub(crate) mod kv;
pub(crate) mod segments;
pub(crate) mod session;
pub(crate) mod spec;
pub(crate) mod window;

use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::StreamsError;

pub(crate) use engine::RocksEnv;
pub(crate) use kv::KvStore;
pub(crate) use session::SessionStore;
pub(crate) use spec::{StoreKind, StoreSpec};
pub(crate) use window::WindowStore;

/// One write to send to a store's changelog topic.
#[derive(Debug, Clone)]
pub(crate) struct ChangelogRecord {
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    pub timestamp: i64,
}

/// A store instance owned by one task.
pub(crate) enum Store {
    Kv(KvStore),
    Window(WindowStore),
    Session(SessionStore),
}

/// Stores are shared between the task and the processors that use them.
pub(crate) type StoreRef = Arc<Mutex<Store>>;

impl Store {
    pub fn kv(&mut self) -> &mut KvStore {
        match self {
            Store::Kv(s) => s,
            _ => panic!("brook-streams internal: store is not key-value"),
        }
    }
    pub fn window(&mut self) -> &mut WindowStore {
        match self {
            Store::Window(s) => s,
            _ => panic!("brook-streams internal: store is not a window store"),
        }
    }
    pub fn session(&mut self) -> &mut SessionStore {
        match self {
            Store::Session(s) => s,
            _ => panic!("brook-streams internal: store is not a session store"),
        }
    }
    /// Writes cached entries through (commit time).
    pub fn flush(&mut self) -> Result<(), StreamsError> {
        match self {
            Store::Kv(s) => s.flush(),
            Store::Window(s) => s.flush(),
            Store::Session(_) => Ok(()),
        }
    }
    /// Makes the local copy durable (memtables to files), before a checkpoint.
    pub fn persist(&mut self) -> Result<(), StreamsError> {
        self.flush()?;
        match self {
            Store::Kv(s) => s.engine.flush(),
            Store::Window(s) => s.engine.flush(),
            Store::Session(s) => s.engine.flush(),
        }
    }
    /// Changelog writes accumulated since the last call.
    pub fn take_changelog(&mut self) -> Vec<ChangelogRecord> {
        let log = match self {
            Store::Kv(s) => &mut s.log,
            Store::Window(s) => &mut s.log,
            Store::Session(s) => &mut s.log,
        };
        log.as_mut().map(std::mem::take).unwrap_or_default()
    }
    /// Applies one changelog record during restoration.
    pub fn restore(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StreamsError> {
        match self {
            Store::Kv(s) => s.restore(key, value),
            Store::Window(s) => s.restore(key, value),
            Store::Session(s) => s.restore(key, value),
        }
    }
    /// Applies a batch of changelog records during restoration in one engine write.
    pub fn restore_batch<'a>(
        &mut self,
        records: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Result<(), StreamsError> {
        self.engine_mut().begin_batch();
        let mut result = Ok(());
        for (k, v) in records {
            if let Err(e) = self.restore(k, v) {
                result = Err(e);
                break;
            }
        }
        // The batch is closed either way so later reads see a consistent engine.
        let applied = self.engine_mut().end_batch();
        result.and(applied)
    }
    /// Restoration starts (`true`) or ends: the engine may trade read
    /// performance for write throughput meanwhile.
    pub fn set_bulk_loading(&mut self, on: bool) -> Result<(), StreamsError> {
        self.engine_mut().set_bulk_loading(on)
    }
    fn engine_mut(&mut self) -> &mut dyn engine::Engine {
        match self {
            Store::Kv(s) => s.engine.as_mut(),
            Store::Window(s) => s.engine.as_mut(),
            Store::Session(s) => s.engine.as_mut(),
        }
    }
    pub fn persistent(&self) -> bool {
        match self {
            Store::Kv(s) => s.engine.persistent(),
            Store::Window(s) => s.engine.persistent(),
            Store::Session(s) => s.engine.persistent(),
        }
    }
}

/// Order-preserving encoding of a signed timestamp.
pub(crate) fn enc_ts(ts: i64) -> [u8; 8] {
    ((ts as u64) ^ (1 << 63)).to_be_bytes()
}

pub(crate) fn dec_ts(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    (u64::from_be_bytes(a) ^ (1 << 63)) as i64
}

pub(crate) fn read_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}
