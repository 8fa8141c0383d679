//! The request I/O pool (Kafka's `num.io.threads`): handlers that touch the disk — appends,
//! reads, fsyncs, index lookups, coordinator persistence — run on blocking threads, at most
//! `num.io.threads` at once, so a cold read or a slow fsync never stalls the tokio workers that
//! serve every other connection's heartbeats and long polls.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// A bounded pool of blocking threads for disk work.
pub(crate) struct IoThreads {
    permits: Arc<Semaphore>,
}

impl IoThreads {
    /// A pool running at most `threads` jobs at once (at least one).
    pub fn new(threads: usize) -> Self {
        IoThreads {
            permits: Arc::new(Semaphore::new(threads.max(1))),
        }
    }

    /// Runs `job` on a blocking thread once a slot is free; a panic in `job` resumes here, in
    /// the connection's task, as it would have had the job run inline.
    ///
    /// If the runtime shuts down before the job starts (it was queued, or submitted while the
    /// blocking pool was already closing), the job is dropped unrun and this future never
    /// completes: the caller's task is being torn down with the runtime, so there is no one to
    /// answer, and it is dropped where it waits.
    pub async fn run<R: Send + 'static>(&self, job: impl FnOnce() -> R + Send + 'static) -> R {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the I/O semaphore is never closed");
        let task = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job()
        });
        match task.await {
            Ok(r) => r,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // Cancelled, which only a runtime shutdown does (I/O jobs are never aborted):
                // park until the shutdown drops this task rather than panic in it.
                Err(_) => std::future::pending().await,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_at_most_the_configured_jobs_at_once() {
        let pool = Arc::new(IoThreads::new(2));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..8)
            .map(|_| {
                let (pool, running, peak) = (pool.clone(), running.clone(), peak.clone());
                tokio::spawn(async move {
                    pool.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                })
            })
            .collect();
        for j in jobs {
            j.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    /// A job submitted once the runtime is shutting down is cancelled unrun: the caller waits
    /// to be dropped with its task instead of panicking.
    #[test]
    fn a_job_cancelled_by_runtime_shutdown_parks_the_caller() {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let handle = rt.handle().clone();
        drop(rt);
        let _context = handle.enter();
        let pool = IoThreads::new(1);
        let ran = Arc::new(AtomicUsize::new(0));
        let counter = ran.clone();
        let mut run = std::pin::pin!(pool.run(move || counter.fetch_add(1, Ordering::SeqCst)));
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..3 {
            assert!(matches!(run.as_mut().poll(&mut cx), Poll::Pending));
        }
        assert_eq!(ran.load(Ordering::SeqCst), 0, "the job ran after shutdown");
    }

    #[tokio::test]
    async fn a_panicking_job_panics_the_caller() {
        let pool = Arc::new(IoThreads::new(1));
        let p = pool.clone();
        let caller = tokio::spawn(async move { p.run(|| panic!("boom")).await });
        assert!(caller.await.unwrap_err().is_panic());
        // The slot was released.
        assert_eq!(pool.run(|| 7).await, 7);
    }
}
