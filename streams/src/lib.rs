//! Brook streams: a Kafka-Streams-style library for Rust.
//!
//! Build a typed topology with [`StreamsBuilder`], run it against any Kafka
//! cluster with [`KafkaStreams`], or test it without one using
//! [`TopologyTestDriver`].

mod config;
mod driver;
mod dsl;
mod error;
mod fns;
mod metrics;
mod ops;
mod processor;
mod record;
mod runtime;
mod serde;
mod state;
mod store_api;
mod task;
mod topology;
mod window;

pub use config::{DeserializationHandler, ProcessingHandler, StreamsConfig};
pub use driver::{TestInputTopic, TestOutputTopic, TopologyTestDriver};
pub use dsl::{
    BranchedKStream, Consumed, Grouped, KGroupedStream, KGroupedTable, KStream, KTable,
    Materialized, Produced, Repartitioned, SessionWindowedKStream, SlidingWindowedKStream,
    StreamJoined, StreamsBuilder, Suppressed, TimeWindowedKStream,
};
pub use error::{Result, SerdeError, StreamsError};
pub use metrics::Metrics;
pub use processor::{Processor, ProcessorContext, PunctuationType, ScheduleId};
pub use record::{Change, Data, Header, Headers, Record, RecordMetadata};
pub use runtime::{KafkaStreams, State, StateRestoreListener, StreamThreadExceptionResponse};
pub use serde::{
    BytesSerde, DecimalSerde, DefaultSerde, FnSerde, IntSerde, JsonSerde, OptionSerde, Serde,
    SerdeRef, Serdes, StringSerde, UnitSerde,
};
pub use store_api::{KeyValueStore, StoreBuilder, Stores, WindowStoreHandle};
pub use task::TaskId;
pub use topology::{Topology, TopologyDescription};
pub use window::{
    JoinWindows, SessionWindows, SlidingWindows, TimeWindows, Window, Windowed, WindowedSerde,
};
