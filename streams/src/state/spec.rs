//! What a store is (kind, retention, logging, caching, engine) before a task opens it.

use std::any::Any;
use std::path::Path;
use std::sync::Arc;

use super::engine::{Engine, MemoryEngine, RocksEngine, RocksEnv};
use super::{KvStore, SessionStore, Store, WindowStore};
use crate::error::StreamsError;

/// The shape of a store.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StoreKind {
    KeyValue,
    Window {
        retention: i64,
        retain_duplicates: bool,
    },
    Session {
        retention: i64,
    },
}

/// A store declared in a topology; each task opens its own instance.
pub(crate) struct StoreSpec {
    pub name: String,
    pub kind: StoreKind,
    pub logged: bool,
    pub persistent: bool,
    pub cached: bool,
    /// `(SerdeRef<K>, SerdeRef<V>)` for typed access through the Processor API.
    pub serdes: Arc<dyn Any + Send + Sync>,
}

impl StoreSpec {
    /// Kafka's changelog topic configs for this kind of store.
    pub fn changelog_configs(&self) -> Vec<(&'static str, String)> {
        match self.kind {
            StoreKind::KeyValue => vec![("cleanup.policy", "compact".into())],
            StoreKind::Window { retention, .. } | StoreKind::Session { retention } => vec![
                ("cleanup.policy", "compact,delete".into()),
                // Kafka: window retention plus one day of slack.
                ("retention.ms", (retention + 86_400_000).to_string()),
            ],
        }
    }

    pub fn open(
        &self,
        dir: Option<&Path>,
        env: &RocksEnv,
        cache_bytes: usize,
    ) -> Result<Store, StreamsError> {
        let engine: Box<dyn Engine> = match (self.persistent, dir) {
            (true, Some(d)) => {
                std::fs::create_dir_all(d)?;
                Box::new(RocksEngine::open(env, d, &self.name)?)
            }
            _ => Box::new(MemoryEngine::default()),
        };
        Ok(match self.kind {
            StoreKind::KeyValue => Store::Kv(KvStore::new(
                engine,
                self.logged,
                if self.cached { cache_bytes } else { 0 },
            )),
            StoreKind::Window {
                retention,
                retain_duplicates,
            } => Store::Window(WindowStore::new(
                engine,
                self.logged,
                retention,
                retain_duplicates,
                if self.cached { cache_bytes } else { 0 },
            )),
            StoreKind::Session { retention } => {
                Store::Session(SessionStore::new(engine, self.logged, retention))
            }
        })
    }
}
