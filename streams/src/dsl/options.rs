//! Per-operation options: serdes, names, store choices (Kafka's `Consumed`,
//! `Produced`, `Grouped`, `Materialized`, `Repartitioned`, `StreamJoined`).

use crate::fns::TsExtractor;
use std::sync::Arc;

use crate::serde::{DefaultSerde, SerdeRef};

/// How a source topic is read.
pub struct Consumed<K, V> {
    pub(crate) keys: SerdeRef<K>,
    pub(crate) values: SerdeRef<V>,
    pub(crate) timestamps: Option<TsExtractor<K, V>>,
    pub(crate) name: Option<String>,
}

impl<K: 'static, V: 'static> Consumed<K, V> {
    /// With these serdes.
    pub fn with(keys: SerdeRef<K>, values: SerdeRef<V>) -> Self {
        Consumed {
            keys,
            values,
            timestamps: None,
            name: None,
        }
    }
    /// Event time from the record instead of the Kafka timestamp; the
    /// closure gets key, value and the Kafka timestamp.
    pub fn with_timestamp_extractor(
        mut self,
        f: impl Fn(&K, &V, i64) -> i64 + Send + Sync + 'static,
    ) -> Self {
        self.timestamps = Some(Arc::new(f));
        self
    }
    /// Names the source node.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

impl<K: DefaultSerde, V: DefaultSerde> Default for Consumed<K, V> {
    fn default() -> Self {
        Consumed::with(K::default_serde(), V::default_serde())
    }
}

/// How records are written to a topic.
pub struct Produced<K, V> {
    pub(crate) keys: SerdeRef<K>,
    pub(crate) values: SerdeRef<V>,
    pub(crate) name: Option<String>,
}

impl<K: 'static, V: 'static> Produced<K, V> {
    /// With these serdes.
    pub fn with(keys: SerdeRef<K>, values: SerdeRef<V>) -> Self {
        Produced {
            keys,
            values,
            name: None,
        }
    }
    /// Names the sink node.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

impl<K: DefaultSerde, V: DefaultSerde> Default for Produced<K, V> {
    fn default() -> Self {
        Produced::with(K::default_serde(), V::default_serde())
    }
}

/// Serdes and name for a grouping (and its repartition topic, `<name>-repartition`).
pub struct Grouped<K, V> {
    pub(crate) keys: SerdeRef<K>,
    pub(crate) values: SerdeRef<V>,
    pub(crate) name: Option<String>,
}

impl<K: 'static, V: 'static> Grouped<K, V> {
    /// With these serdes.
    pub fn with(keys: SerdeRef<K>, values: SerdeRef<V>) -> Self {
        Grouped {
            keys,
            values,
            name: None,
        }
    }
    /// Names the grouping; the repartition topic becomes `<application.id>-<name>-repartition`.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
}

impl<K: DefaultSerde, V: DefaultSerde> Default for Grouped<K, V> {
    fn default() -> Self {
        Grouped::with(K::default_serde(), V::default_serde())
    }
}

/// How an aggregation or table is stored: name, serdes, engine, logging, caching.
pub struct Materialized<K, V> {
    pub(crate) keys: SerdeRef<K>,
    pub(crate) values: SerdeRef<V>,
    pub(crate) name: Option<String>,
    pub(crate) in_memory: bool,
    pub(crate) logging: bool,
    pub(crate) caching: bool,
    pub(crate) retention_ms: Option<i64>,
}

impl<K: 'static, V: 'static> Materialized<K, V> {
    /// With these serdes (RocksDB, logged, cached — Kafka's defaults).
    pub fn with(keys: SerdeRef<K>, values: SerdeRef<V>) -> Self {
        Materialized {
            keys,
            values,
            name: None,
            in_memory: false,
            logging: true,
            caching: true,
            retention_ms: None,
        }
    }
    /// Names the store (its changelog is `<application.id>-<name>-changelog`).
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
    /// An in-memory store instead of RocksDB.
    pub fn in_memory(mut self) -> Self {
        self.in_memory = true;
        self
    }
    /// No changelog topic.
    pub fn with_logging_disabled(mut self) -> Self {
        self.logging = false;
        self
    }
    /// Forward every update instead of collapsing them between commits.
    pub fn with_caching_disabled(mut self) -> Self {
        self.caching = false;
        self
    }
    /// How long windows are kept (windowed stores; at least size + grace).
    pub fn with_retention(mut self, ms: i64) -> Self {
        self.retention_ms = Some(ms);
        self
    }
}

impl<K: DefaultSerde, V: DefaultSerde> Materialized<K, V> {
    /// A named store with default serdes.
    pub fn as_(name: &str) -> Self {
        Materialized::with(K::default_serde(), V::default_serde()).named(name)
    }
}

impl<K: DefaultSerde, V: DefaultSerde> Default for Materialized<K, V> {
    fn default() -> Self {
        Materialized::with(K::default_serde(), V::default_serde())
    }
}

/// Options for an explicit repartition.
pub struct Repartitioned<K, V> {
    pub(crate) keys: SerdeRef<K>,
    pub(crate) values: SerdeRef<V>,
    pub(crate) name: Option<String>,
    pub(crate) partitions: Option<i32>,
}

impl<K: 'static, V: 'static> Repartitioned<K, V> {
    /// With these serdes.
    pub fn with(keys: SerdeRef<K>, values: SerdeRef<V>) -> Self {
        Repartitioned {
            keys,
            values,
            name: None,
            partitions: None,
        }
    }
    /// Names the topic `<application.id>-<name>-repartition`.
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
    /// Gives the topic `n` partitions instead of deriving the count from the topology; it
    /// must then agree with any topic it is co-partitioned with.
    pub fn with_number_of_partitions(mut self, n: i32) -> Self {
        self.partitions = Some(n);
        self
    }
}

impl<K: DefaultSerde, V: DefaultSerde> Default for Repartitioned<K, V> {
    fn default() -> Self {
        Repartitioned::with(K::default_serde(), V::default_serde())
    }
}

/// Serdes and store names for a stream–stream join.
pub struct StreamJoined<K, V, VO> {
    pub(crate) keys: SerdeRef<K>,
    pub(crate) values: SerdeRef<V>,
    pub(crate) other_values: SerdeRef<VO>,
    pub(crate) name: Option<String>,
    pub(crate) in_memory: bool,
}

impl<K: 'static, V: 'static, VO: 'static> StreamJoined<K, V, VO> {
    /// With these serdes.
    pub fn with(keys: SerdeRef<K>, values: SerdeRef<V>, other_values: SerdeRef<VO>) -> Self {
        StreamJoined {
            keys,
            values,
            other_values,
            name: None,
            in_memory: false,
        }
    }
    /// Names the join's stores (`<name>-this-join-store`, `<name>-other-join-store`).
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
    /// Keep the join windows in memory.
    pub fn in_memory(mut self) -> Self {
        self.in_memory = true;
        self
    }
}

impl<K: DefaultSerde, V: DefaultSerde, VO: DefaultSerde> Default for StreamJoined<K, V, VO> {
    fn default() -> Self {
        StreamJoined::with(K::default_serde(), V::default_serde(), VO::default_serde())
    }
}
