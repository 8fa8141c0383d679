//! `StreamsBuilder`: where a topology starts.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use super::graph::Graph;
use super::kstream::KStream;
use super::ktable::KTable;
use super::options::{Consumed, Materialized};
use crate::error::StreamsError;
use crate::record::Data;
use crate::serde::{DefaultSerde, OptionSerde};
use crate::store_api::StoreBuilder;
use crate::topology::{TopicRef, Topology};

/// Builds a [`Topology`] from streams and tables.
#[derive(Default)]
pub struct StreamsBuilder {
    pub(crate) g: Rc<RefCell<Graph>>,
}

impl StreamsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads a topic as a stream, with the types' default serdes.
    pub fn stream<K: Data + DefaultSerde, V: Data + DefaultSerde>(
        &self,
        topic: &str,
    ) -> KStream<K, V> {
        self.stream_with(&[topic], Consumed::default())
    }

    /// Reads one or more topics as one stream.
    pub fn stream_with<K: Data, V: Data>(
        &self,
        topics: &[&str],
        consumed: Consumed<K, V>,
    ) -> KStream<K, V> {
        let mut g = self.g.borrow_mut();
        let name = consumed
            .name
            .clone()
            .unwrap_or_else(|| g.name("KSTREAM-SOURCE"));
        let node = g.source(
            name,
            topics
                .iter()
                .map(|t| TopicRef::User(t.to_string()))
                .collect(),
            consumed.keys,
            consumed.values,
            consumed.timestamps,
        );
        drop(g);
        KStream::new(self.g.clone(), node, false)
    }

    /// Reads a topic as a table (latest value per key; a null value deletes),
    /// materialised in a store with default serdes.
    pub fn table<K: Data + DefaultSerde, V: Data + DefaultSerde>(
        &self,
        topic: &str,
    ) -> KTable<K, V> {
        self.table_with(topic, Consumed::default(), Materialized::default())
    }

    /// Reads a topic as a table with explicit serdes and store options.
    pub fn table_with<K: Data, V: Data>(
        &self,
        topic: &str,
        consumed: Consumed<K, V>,
        mat: Materialized<K, V>,
    ) -> KTable<K, V> {
        let mut g = self.g.borrow_mut();
        let src_name = consumed
            .name
            .clone()
            .unwrap_or_else(|| g.name("KTABLE-SOURCE"));
        // Keys are read as nullable: a null key is not a deserialisation error but a record
        // the table drops and counts (as Kafka's KTableSource).
        let src = g.source(
            src_name,
            vec![TopicRef::User(topic.to_string())],
            Arc::new(OptionSerde(consumed.keys.clone())),
            Arc::new(OptionSerde(consumed.values.clone())),
            None,
        );
        let store = mat
            .name
            .clone()
            .unwrap_or_else(|| format!("{topic}-STATE-STORE-{:010}", g.nodes.len()));
        let store = g.materialized_store(store, &mat);
        let node = g.table_source(
            src,
            &store,
            mat.keys.clone(),
            mat.values.clone(),
            mat.caching,
            true,
        );
        drop(g);
        KTable::new(self.g.clone(), node, Some((store, mat.keys, mat.values)))
    }

    /// Adds a store for custom processors (see [`KStream::process`]).
    pub fn add_state_store<K: 'static, V: 'static>(&self, store: StoreBuilder<K, V>) -> &Self {
        self.g.borrow_mut().add_store(store.spec);
        self
    }

    /// Finishes the topology; reports the first construction error.
    pub fn build(self) -> Result<Topology, StreamsError> {
        let r = self.g.borrow_mut().build();
        r
    }
}
