//! The typed DSL: `StreamsBuilder`, `KStream`, `KTable` and their grouped and windowed forms.

mod builder;
mod graph;
mod grouped;
mod joins;
mod kstream;
mod ktable;
pub(crate) mod options;
mod windowed;

pub use builder::StreamsBuilder;
pub use grouped::{KGroupedStream, KGroupedTable};
pub use kstream::{BranchedKStream, KStream};
pub use ktable::{KTable, Suppressed};
pub use options::{Consumed, Grouped, Materialized, Produced, Repartitioned, StreamJoined};
pub use windowed::{SessionWindowedKStream, SlidingWindowedKStream, TimeWindowedKStream};
