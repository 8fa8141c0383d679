//! Brook's broker: speaks the Apache Kafka wire protocol and stores partitions in an on-disk
//! segmented log. Run it standalone (`brook broker`) or embed it:
//!
//! ```no_run
//! # async fn demo() -> Result<(), brook_broker::Error> {
//! let broker = brook_broker::Broker::builder()
//!     .data_dir("/tmp/brook-data")
//!     .listen("127.0.0.1:0")
//!     .start()
//!     .await?;
//! println!("bootstrap.servers={}", broker.bootstrap_servers());
//! broker.shutdown().await?;
//! # Ok(()) }
//! ```

mod broker;
mod config;
mod coordinator;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod handlers;
mod io_threads;
mod log;
mod partition;
mod producer_ids;
mod server;
mod state;
mod topics;
mod util;
mod wakeups;

pub use broker::{Broker, BrokerBuilder, BrokerHandle};
pub use config::{
    BrokerConfig, BrokerSettings, ConfigDef, ConfigType, GroupSettings, BROKER_CONFIGS,
    TOPIC_CONFIGS,
};
pub use error::{Error, Result};
/// Hooks for the benchmarks in `examples/`; not a stable API.
#[doc(hidden)]
pub use log::bench;

/// The API keys and version ranges this broker advertises: (name, key, min, max).
pub fn supported_apis() -> Vec<(String, i16, i16, i16)> {
    server::versions::SUPPORTED
        .iter()
        .map(|(k, min, max)| (format!("{k:?}"), *k as i16, *min, *max))
        .collect()
}
