//! Connection limits, as Kafka's acceptor applies them: `max.connections` makes the acceptor
//! wait for a free slot (new clients queue in the listen backlog), `max.connections.per.ip`
//! closes a client's connection beyond its share at once, so one host cannot take every slot.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The broker-wide and per-address connection budget.
pub(crate) struct ConnectionLimits {
    total: Arc<Semaphore>,
    per_ip: usize,
    by_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// A connection's slot; freed when dropped.
pub(crate) struct Slot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
    _total: OwnedSemaphorePermit,
}

impl ConnectionLimits {
    /// Limits from `max.connections` and `max.connections.per.ip` (values below 1 mean 1).
    pub fn new(max: i64, per_ip: i64) -> Arc<ConnectionLimits> {
        let max = (max.max(1) as usize).min(Semaphore::MAX_PERMITS);
        Arc::new(ConnectionLimits {
            total: Arc::new(Semaphore::new(max)),
            per_ip: per_ip.max(1) as usize,
            by_ip: Mutex::new(HashMap::new()),
        })
    }

    /// Waits until a connection may be accepted.
    pub async fn wait_for_total(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.total)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// Takes a slot for a connection from `ip`, or `None` when that address has its share.
    pub fn admit(self: &Arc<Self>, ip: IpAddr, total: OwnedSemaphorePermit) -> Option<Slot> {
        let mut by_ip = self.by_ip.lock();
        let n = by_ip.entry(ip).or_insert(0);
        if *n >= self.per_ip {
            return None;
        }
        *n += 1;
        Some(Slot {
            limits: Arc::clone(self),
            ip,
            _total: total,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut by_ip = self.limits.by_ip.lock();
        if let Some(n) = by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                by_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn per_ip_share_and_total_are_enforced_and_released() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = limits.admit(a, limits.wait_for_total().await).unwrap();
        let _s2 = limits.admit(a, limits.wait_for_total().await).unwrap();
        assert!(limits.admit(a, limits.wait_for_total().await).is_none());
        let _s3 = limits.admit(b, limits.wait_for_total().await).unwrap();
        // All three slots are taken: the acceptor waits.
        let waiting = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            limits.wait_for_total(),
        )
        .await;
        assert!(waiting.is_err());
        drop(s1);
        let again = limits.admit(a, limits.wait_for_total().await);
        assert!(again.is_some());
    }
}
