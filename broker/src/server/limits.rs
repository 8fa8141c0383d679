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

/// The broker-wide budget for request frames read but not yet handled.
pub(crate) struct RequestMemory {
    /// `None`: unbounded (`queued.max.request.bytes` = -1).
    kib: Option<Arc<Semaphore>>,
    capacity_kib: u32,
}

/// Memory held by one frame until it is handled.
pub(crate) struct Held {
    _permit: Option<OwnedSemaphorePermit>,
}

impl RequestMemory {
    /// A budget of `bytes` (-1 or 0: unbounded), accounted in KiB.
    pub fn new(bytes: i64) -> Arc<RequestMemory> {
        let capacity_kib = if bytes <= 0 {
            0
        } else {
            (bytes as u64).div_ceil(1024).min(u32::MAX as u64) as u32
        };
        Arc::new(RequestMemory {
            kib: (capacity_kib > 0).then(|| Arc::new(Semaphore::new(capacity_kib as usize))),
            capacity_kib,
        })
    }

    /// Waits until a frame of `size` bytes fits. A frame larger than the whole budget waits
    /// for all of it, as Kafka's pool admits one oversized request once memory is free.
    pub async fn reserve(&self, size: usize) -> Held {
        let Some(sem) = &self.kib else {
            return Held { _permit: None };
        };
        let kib = (size as u64)
            .div_ceil(1024)
            .clamp(1, self.capacity_kib as u64) as u32;
        let permit = Arc::clone(sem)
            .acquire_many_owned(kib)
            .await
            .expect("the semaphore is never closed");
        Held {
            _permit: Some(permit),
        }
    }

    /// KiB free now (for tests).
    #[cfg(test)]
    pub fn available_kib(&self) -> usize {
        self.kib
            .as_ref()
            .map_or(usize::MAX, |s| s.available_permits())
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
    async fn request_memory_waits_for_room_and_admits_an_oversized_frame_alone() {
        let pool = RequestMemory::new(10 * 1024);
        let a = pool.reserve(6 * 1024).await;
        let _b = pool.reserve(3 * 1024 + 1).await; // rounds up to 4 KiB
        assert_eq!(pool.available_kib(), 0);
        let short = std::time::Duration::from_millis(50);
        assert!(tokio::time::timeout(short, pool.reserve(1)).await.is_err());
        drop(a);
        let c = pool.reserve(6 * 1024).await;
        drop((c, _b));
        // Larger than the budget: waits for all of it, then proceeds.
        let huge = pool.reserve(1 << 30).await;
        assert_eq!(pool.available_kib(), 0);
        drop(huge);
        assert_eq!(pool.available_kib(), 10);
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
