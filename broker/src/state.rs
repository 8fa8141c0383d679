//! Everything a request handler can reach: config, topics, groups, producer ids.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use crate::config::BrokerConfig;
use crate::coordinator::Coordinator;
use crate::io_threads::IoThreads;
use crate::producer_ids::ProducerIds;
use crate::topics::TopicManager;
use std::sync::Arc;

/// Shared broker state.
pub(crate) struct BrokerState {
    pub config: Arc<BrokerConfig>,
    pub topics: TopicManager,
    pub groups: Coordinator,
    pub producer_ids: ProducerIds,
    /// Runs the handlers that touch the disk (`num.io.threads`).
    pub io: IoThreads,
    /// Woken once when shutdown begins, so long-polling fetches return at once.
    pub stopping: Notify,
    pub cluster_id: String,
    pub node_id: i32,
    pub advertised_host: String,
    pub advertised_port: i32,
    pub shutting_down: AtomicBool,
}

impl BrokerState {
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}
