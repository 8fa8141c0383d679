//! Brook connect: the Kafka-Connect-style runtime.
//!
//! Connectors implement the traits in this crate and register their typed
//! configuration by class name with `typetag`; a [`Worker`] runs them, keeping
//! source offsets in a compacted topic and sink progress in consumer groups,
//! and writing connector and task statuses to a compacted topic as Kafka
//! Connect does.

mod config;
mod config_file;
mod config_store;
mod connector;
mod converter;
mod errors;
mod group_offsets;
mod offsets;
mod produce_batch;
mod producer;
mod rest;
mod status_store;
mod worker;

pub use config::{
    lenient, ConfigError, ConnectorConfig, ConnectorDefinition, ConnectorSettings, ErrorTolerance,
};
pub use config_file::{
    connector_file, parse_config_text, parse_properties, read_config_file, read_connector_file,
    ConfigFileError, ConnectorFile,
};
pub use config_store::ConfigStoreError;
pub use connector::{
    ConnectError, Connector, SinkConnector, SinkRecord, SinkTask, SourceConnector, SourceOffset,
    SourcePartition, SourceRecord, SourceTask, StoredOffsets, TaskConfig, TopicPartition,
};
pub use converter::{Converter, ConverterError};
pub use offsets::OffsetStoreError;
pub use rest::{PluginInfo, RestServer};
pub use worker::{
    ConnectorState, ConnectorStatus, State, TaskStatus, Worker, WorkerConfig, WorkerError,
};

/// The JSON crate used throughout the API (configs, records, offsets), so
/// callers need not depend on a matching version themselves.
pub use serde_json;
