//! Long-polling fetches wait per partition (Kafka's delayed-fetch purgatory keyed by
//! partition): an append wakes only the fetches that asked for that partition, so the cost of
//! a produce does not grow with the number of idle consumers elsewhere on the broker.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::topics::Partition;

/// The fetches waiting on one partition.
#[derive(Default)]
pub(crate) struct Waiters {
    inner: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    waiting: HashMap<u64, Arc<Notify>>,
}

impl Waiters {
    fn register(&self, wake: &Arc<Notify>) -> u64 {
        let mut r = self.inner.lock();
        let id = r.next_id;
        r.next_id += 1;
        r.waiting.insert(id, Arc::clone(wake));
        id
    }

    fn remove(&self, id: u64) {
        self.inner.lock().waiting.remove(&id);
    }

    /// Wakes every fetch waiting on this partition. `notify_one` stores a permit when the
    /// fetch is not parked yet, so an append between its read and its wait is not missed.
    pub fn wake_all(&self) {
        for wake in self.inner.lock().waiting.values() {
            wake.notify_one();
        }
    }

    /// How many fetches are registered (for tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner.lock().waiting.len()
    }
}

/// One fetch's registrations on the partitions it reads; dropping it unregisters them all.
pub(crate) struct Watch {
    wake: Arc<Notify>,
    registered: Vec<(Arc<Partition>, u64)>,
}

impl Watch {
    /// A watch on no partition yet.
    pub fn new() -> Self {
        Watch {
            wake: Arc::new(Notify::new()),
            registered: Vec::new(),
        }
    }

    /// Wakes this watch on every append to `partition` from now on.
    pub fn add(&mut self, partition: &Arc<Partition>) {
        let id = partition.waiters.register(&self.wake);
        self.registered.push((Arc::clone(partition), id));
    }

    /// Returns once any watched partition has had an append since the last wake-up (or since
    /// registration).
    pub async fn changed(&self) {
        self.wake.notified().await
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        for (partition, id) in &self.registered {
            partition.waiters.remove(*id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::config::BrokerConfig;
    use crate::log::testing::{batch, TestRecord};
    use crate::topics::TopicManager;

    #[tokio::test]
    async fn an_append_wakes_only_the_fetches_watching_its_partition() {
        let dir = tempfile::tempdir().unwrap();
        let config = Arc::new(BrokerConfig::default());
        let topics = TopicManager::open(dir.path(), config, true).unwrap();
        let topic = topics.create("t", 2, 1, BTreeMap::new(), false).unwrap();
        let (p0, p1) = (topic.partition(0).unwrap(), topic.partition(1).unwrap());
        let mut on_p0 = Watch::new();
        on_p0.add(&p0);
        let mut on_p1 = Watch::new();
        on_p1.add(&p1);
        let one = TestRecord {
            value: b"v",
            ..TestRecord::default()
        };
        let records = batch(&one.encode(), 0, 1, 0, 0);
        p1.append_internal(bytes::Bytes::from(records), 0).unwrap();
        let short = Duration::from_millis(50);
        // The append came before the wait: its wake-up was kept.
        assert!(tokio::time::timeout(short, on_p1.changed()).await.is_ok());
        assert!(tokio::time::timeout(short, on_p0.changed()).await.is_err());
        assert_eq!((p0.waiters.len(), p1.waiters.len()), (1, 1));
        drop((on_p0, on_p1));
        assert_eq!((p0.waiters.len(), p1.waiters.len()), (0, 0));
    }
}
