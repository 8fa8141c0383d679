//! Typed store handles for the Processor API and store builders.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use crate::error::StreamsError;
use crate::serde::{DefaultSerde, SerdeRef};
use crate::state::{StoreKind, StoreRef, StoreSpec};

fn serdes_of<K: 'static, V: 'static>(
    name: &str,
    spec: &StoreSpec,
) -> Result<(SerdeRef<K>, SerdeRef<V>), StreamsError> {
    spec.serdes
        .downcast_ref::<(SerdeRef<K>, SerdeRef<V>)>()
        .cloned()
        .ok_or_else(|| {
            StreamsError::Topology(format!(
                "store `{name}` does not hold ({}, {})",
                std::any::type_name::<K>(),
                std::any::type_name::<V>()
            ))
        })
}

fn ser<T: 'static>(s: &SerdeRef<T>, v: &T, store: &str) -> Result<Vec<u8>, StreamsError> {
    s.serialize(v)
        .map_err(|e| StreamsError::Store {
            store: store.to_string(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| StreamsError::Store {
            store: store.to_string(),
            reason: "serde produced null for a store key or value".into(),
        })
}

fn de<T: 'static>(s: &SerdeRef<T>, b: &[u8], store: &str) -> Result<T, StreamsError> {
    s.deserialize(Some(b)).map_err(|e| StreamsError::Store {
        store: store.to_string(),
        reason: e.to_string(),
    })
}

/// A typed key-value store of the current task.
pub struct KeyValueStore<K, V> {
    name: String,
    store: StoreRef,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
    time: Arc<AtomicI64>,
}

impl<K: 'static, V: 'static> KeyValueStore<K, V> {
    pub(crate) fn new(
        name: &str,
        store: StoreRef,
        spec: &StoreSpec,
        time: Arc<AtomicI64>,
    ) -> Result<Self, StreamsError> {
        let (keys, values) = serdes_of::<K, V>(name, spec)?;
        Ok(KeyValueStore {
            name: name.to_string(),
            store,
            keys,
            values,
            time,
        })
    }

    /// The value of `key`.
    pub fn get(&self, key: &K) -> Result<Option<V>, StreamsError> {
        let k = ser(&self.keys, key, &self.name)?;
        match self.store.lock().kv().get(&k)? {
            Some(v) => Ok(Some(de(&self.values, &v, &self.name)?)),
            None => Ok(None),
        }
    }

    /// Sets `key` to `value`.
    pub fn put(&self, key: &K, value: &V) -> Result<(), StreamsError> {
        let k = ser(&self.keys, key, &self.name)?;
        let v = ser(&self.values, value, &self.name)?;
        let ts = self.time.load(Ordering::Relaxed);
        self.store.lock().kv().put(&k, Some(&v), ts)
    }

    /// Removes `key`.
    pub fn delete(&self, key: &K) -> Result<(), StreamsError> {
        let k = ser(&self.keys, key, &self.name)?;
        let ts = self.time.load(Ordering::Relaxed);
        self.store.lock().kv().put(&k, None, ts)
    }

    /// Every entry, in key-byte order.
    pub fn all(&self) -> Result<Vec<(K, V)>, StreamsError> {
        let raw = self.store.lock().kv().range(&[], None)?;
        raw.into_iter()
            .map(|(k, v)| {
                Ok((
                    de(&self.keys, &k, &self.name)?,
                    de(&self.values, &v, &self.name)?,
                ))
            })
            .collect()
    }
}

/// A typed window store of the current task.
pub struct WindowStoreHandle<K, V> {
    name: String,
    store: StoreRef,
    keys: SerdeRef<K>,
    values: SerdeRef<V>,
    time: Arc<AtomicI64>,
}

impl<K: 'static, V: 'static> WindowStoreHandle<K, V> {
    pub(crate) fn new(
        name: &str,
        store: StoreRef,
        spec: &StoreSpec,
        time: Arc<AtomicI64>,
    ) -> Result<Self, StreamsError> {
        let (keys, values) = serdes_of::<K, V>(name, spec)?;
        Ok(WindowStoreHandle {
            name: name.to_string(),
            store,
            keys,
            values,
            time,
        })
    }

    /// Stores `value` for the window of `key` starting at `window_start`.
    pub fn put(&self, key: &K, window_start: i64, value: &V) -> Result<(), StreamsError> {
        let k = ser(&self.keys, key, &self.name)?;
        let v = ser(&self.values, value, &self.name)?;
        let ts = self.time.load(Ordering::Relaxed);
        self.store
            .lock()
            .window()
            .put(&k, window_start, Some(&v), ts)
    }

    /// Values of `key` for windows starting in `[from, to]`, oldest first.
    pub fn fetch(&self, key: &K, from: i64, to: i64) -> Result<Vec<(i64, V)>, StreamsError> {
        let k = ser(&self.keys, key, &self.name)?;
        let raw = self.store.lock().window().fetch(&k, from, to)?;
        raw.into_iter()
            .map(|(_, e)| Ok((e.start, de(&self.values, &e.value, &self.name)?)))
            .collect()
    }
}

/// A store to add to a topology through the Processor API.
pub struct StoreBuilder<K, V> {
    pub(crate) spec: StoreSpec,
    _t: PhantomData<fn(K, V)>,
}

impl<K: 'static, V: 'static> StoreBuilder<K, V> {
    /// Keeps the store in memory instead of RocksDB (still restored from its changelog).
    pub fn in_memory(mut self) -> Self {
        self.spec.persistent = false;
        self
    }
    /// No changelog topic: state is lost with the local copy.
    pub fn with_logging_disabled(mut self) -> Self {
        self.spec.logged = false;
        self
    }
    /// Collapse repeated writes between commits (`statestore.cache.max.bytes`).
    pub fn with_caching_enabled(mut self) -> Self {
        self.spec.cached = true;
        self
    }
    /// The store's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }
}

/// Builders for stores used by custom processors.
pub struct Stores;

impl Stores {
    /// A persistent (RocksDB), logged key-value store with default serdes.
    pub fn key_value<K: DefaultSerde, V: DefaultSerde>(name: &str) -> StoreBuilder<K, V> {
        Self::key_value_with(name, K::default_serde(), V::default_serde())
    }
    /// A persistent, logged key-value store with the given serdes.
    pub fn key_value_with<K: 'static, V: 'static>(
        name: &str,
        keys: SerdeRef<K>,
        values: SerdeRef<V>,
    ) -> StoreBuilder<K, V> {
        StoreBuilder {
            spec: StoreSpec {
                name: name.to_string(),
                kind: StoreKind::KeyValue,
                logged: true,
                persistent: true,
                cached: false,
                serdes: Arc::new((keys, values)),
            },
            _t: PhantomData,
        }
    }
    /// A persistent, logged window store keeping `retention_ms` of windows.
    pub fn window<K: DefaultSerde, V: DefaultSerde>(
        name: &str,
        retention_ms: i64,
    ) -> StoreBuilder<K, V> {
        StoreBuilder {
            spec: StoreSpec {
                name: name.to_string(),
                kind: StoreKind::Window {
                    retention: retention_ms,
                    retain_duplicates: false,
                },
                logged: true,
                persistent: true,
                cached: false,
                serdes: Arc::new((K::default_serde(), V::default_serde())),
            },
            _t: PhantomData,
        }
    }
}
