//! Connection limits, as Kafka's acceptor applies them: `max.connections` makes the acceptor
//! wait for a free slot (new clients queue in the listen backlog), `max.connections.per.ip`
//! closes a client's connection beyond its share at once, so one host cannot take every slot.
//! `queued.max.request.bytes` bounds the memory of requests read but not yet handled, across
//! every connection: a connection whose next frame does not fit stops reading (its socket
//! back-pressures the client) until handled requests give memory back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

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

/// The broker-wide budget for request frames read but not yet handled, as Kafka's memory pool:
/// a frame is admitted whenever some memory is free (the budget may be overdrawn by that one
/// frame, so a frame larger than the budget still gets in), otherwise it waits for a release.
pub(crate) struct RequestMemory {
    /// Bytes free; `None`: unbounded (`queued.max.request.bytes` = -1).
    available: Option<AtomicI64>,
    freed: Notify,
}

/// Memory held by one frame until it is handled.
pub(crate) struct Held {
    pool: Option<(Arc<RequestMemory>, i64)>,
}

impl RequestMemory {
    /// A budget of `bytes` (-1 or 0: unbounded).
    pub fn new(bytes: i64) -> Arc<RequestMemory> {
        Arc::new(RequestMemory {
            available: (bytes > 0).then(|| AtomicI64::new(bytes)),
            freed: Notify::new(),
        })
    }

    /// Waits until some memory is free, then takes `size` bytes of it.
    pub async fn reserve(self: &Arc<Self>, size: usize) -> Held {
        let Some(available) = &self.available else {
            return Held { pool: None };
        };
        let size = size as i64;
        loop {
            // Registered before the check, so a release between the two is not missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let now = available.load(Ordering::Acquire);
            if now > 0 {
                if available
                    .compare_exchange(now, now - size, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    return Held {
                        pool: Some((Arc::clone(self), size)),
                    };
                }
                continue;
            }
            freed.await;
        }
    }

    /// Bytes free now (negative when overdrawn; for tests).
    #[cfg(test)]
    pub fn available(&self) -> i64 {
        self.available
            .as_ref()
            .map_or(i64::MAX, |a| a.load(Ordering::Acquire))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some((pool, size)) = self.pool.take() {
            if let Some(available) = &pool.available {
                available.fetch_add(size, Ordering::AcqRel);
                pool.freed.notify_waiters();
            }
        }
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
    async fn request_memory_admits_while_any_is_free_and_waits_when_overdrawn() {
        let pool = RequestMemory::new(10_000);
        let short = std::time::Duration::from_millis(50);
        let a = pool.reserve(6_000).await;
        // 4,000 free: a 9,000-byte frame is admitted and overdraws the budget.
        let b = pool.reserve(9_000).await;
        assert_eq!(pool.available(), -5_000);
        assert!(tokio::time::timeout(short, pool.reserve(1)).await.is_err());
        drop(a);
        // 1,000 free again: the next frame is admitted, whatever its size.
        assert_eq!(pool.available(), 1_000);
        let waiting = tokio::spawn({
            let pool = Arc::clone(&pool);
            async move { pool.reserve(20_000).await }
        });
        let c = waiting.await.unwrap();
        assert!(tokio::time::timeout(short, pool.reserve(1)).await.is_err());
        drop((b, c));
        assert_eq!(pool.available(), 10_000);
        let unbounded = RequestMemory::new(-1);
        let _x = unbounded.reserve(1 << 40).await;
    }

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
