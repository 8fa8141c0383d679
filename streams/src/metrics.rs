//! Counters an application exposes (late records dropped, errors skipped, …).

use std::collections::BTreeMap;

use parking_lot::Mutex;

/// Counters of one application instance (or one test driver).
#[derive(Default, Debug)]
pub struct Metrics {
    counters: Mutex<BTreeMap<String, u64>>,
}

impl Metrics {
    pub(crate) fn incr(&self, name: &str, by: u64) {
        *self.counters.lock().entry(name.to_string()).or_default() += by;
    }

    /// Counts a record a processor dropped (Kafka's `dropped-records`), by reason.
    pub(crate) fn record_dropped(&self, node: &str, reason: &str) {
        self.incr("dropped-records-total", 1);
        self.incr(&format!("dropped-records:{node}:{reason}"), 1);
    }

    /// The value of one counter (0 when never incremented).
    pub fn get(&self, name: &str) -> u64 {
        self.counters.lock().get(name).copied().unwrap_or(0)
    }

    /// Every counter, by name.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counters.lock().clone()
    }

    /// Records dropped for any reason (late, deserialisation or processing errors skipped).
    pub fn dropped_records(&self) -> u64 {
        self.get("dropped-records-total")
    }
}
