//! Error handling policy: retries with backoff for retriable failures,
//! tolerance of bad records, and the dead letter queue.

use std::time::{Duration, Instant};

use rdkafka::message::{Header, OwnedHeaders};
use tokio::sync::watch;

use crate::config::ConnectorSettings;
use crate::connector::ConnectError;
use crate::producer::Producer;
use crate::worker::Target;

/// Backoff state for retrying an operation that needs `&mut` access.
pub(crate) struct Retry {
    started: Instant,
    delay: Duration,
    max_delay: Duration,
    timeout_ms: i64,
}

impl Retry {
    /// Starts a retry budget from errors.retry.timeout / errors.retry.delay.max.ms.
    pub fn new(settings: &ConnectorSettings) -> Self {
        Retry {
            started: Instant::now(),
            delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(settings.retry_delay_max_ms.max(1) as u64),
            timeout_ms: settings.retry_timeout_ms,
        }
    }

    /// Backoff for a task's own `Retriable` errors (poll, put, flush):
    /// retried until they stop, as Kafka Connect retries a task's
    /// `RetriableException`; `errors.retry.timeout` only bounds the
    /// worker's own operations (offset writes, the dead letter queue).
    /// The delay is capped at [`MAX_TASK_DELAY`] (below the 60 s default of
    /// errors.retry.delay.max.ms): Kafka Connect calls poll/put again at
    /// once, so a task must not sit out a minute after its resource is back.
    pub fn for_task(settings: &ConnectorSettings) -> Self {
        let base = Retry::new(settings);
        Retry {
            timeout_ms: -1,
            max_delay: base.max_delay.min(MAX_TASK_DELAY),
            ..base
        }
    }

    /// Like [`Retry::wait`], but gives up (false) as soon as the control
    /// target satisfies `give_up`, so a task retrying forever still stops.
    pub async fn wait_unless(
        &mut self,
        error: &ConnectError,
        control: &mut watch::Receiver<Target>,
        give_up: fn(Target) -> bool,
    ) -> bool {
        if !error.is_retriable()
            || !within_budget(self.timeout_ms, self.started)
            || give_up(*control.borrow())
        {
            return false;
        }
        tracing::warn!(%error, delay = ?self.delay, "retriable failure; retrying");
        tokio::select! {
            _ = tokio::time::sleep(self.delay) => {}
            // A closed channel means the worker is gone: give up too.
            _ = control.wait_for(|t| give_up(*t)) => return false,
        }
        self.delay = (self.delay * 2).min(self.max_delay);
        true
    }

    /// Sleeps and returns true when `error` should be retried.
    pub async fn wait(&mut self, error: &ConnectError) -> bool {
        if !error.is_retriable() || !within_budget(self.timeout_ms, self.started) {
            return false;
        }
        tracing::warn!(%error, delay = ?self.delay, "retriable failure; retrying");
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(self.max_delay);
        true
    }
}

/// Longest wait between two retries of a task's own Retriable error.
const MAX_TASK_DELAY: Duration = Duration::from_secs(5);

/// Retries `op` while it fails retriably, for up to errors.retry.timeout.
pub(crate) async fn with_retries<T, F, Fut>(
    settings: &ConnectorSettings,
    mut op: F,
) -> Result<T, ConnectError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ConnectError>>,
{
    let mut retry = Retry::new(settings);
    loop {
        match op().await {
            Err(e) if retry.wait(&e).await => {}
            other => return other,
        }
    }
}

fn within_budget(timeout_ms: i64, started: Instant) -> bool {
    match timeout_ms {
        t if t < 0 => true,
        0 => false,
        t => started.elapsed() < Duration::from_millis(t as u64),
    }
}

/// Where a bad sink record came from, for the DLQ context headers.
pub(crate) struct FailedRecord<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub connector: &'a str,
    pub stage: &'a str,
    pub error: &'a str,
}

/// Sends the original bytes of a failed record to the dead letter queue.
pub(crate) async fn send_to_dlq(
    producer: &Producer,
    dlq_topic: &str,
    with_headers: bool,
    failed: &FailedRecord<'_>,
) -> Result<(), ConnectError> {
    let headers = with_headers.then(|| {
        let (partition, offset) = (failed.partition.to_string(), failed.offset.to_string());
        [
            ("__connect.errors.topic", failed.topic),
            ("__connect.errors.partition", partition.as_str()),
            ("__connect.errors.offset", offset.as_str()),
            ("__connect.errors.connector.name", failed.connector),
            ("__connect.errors.stage", failed.stage),
            ("__connect.errors.exception.message", failed.error),
        ]
        .into_iter()
        .fold(OwnedHeaders::new(), |h, (key, value)| {
            h.insert(Header {
                key,
                value: Some(value),
            })
        })
    });
    producer
        .send_one(dlq_topic, failed.key, failed.value, headers)
        .await
        .map_err(|e| ConnectError::Retriable(format!("writing to DLQ {dlq_topic}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(timeout: &str) -> ConnectorSettings {
        let v =
            json!({"name": "n", "errors.retry.timeout": timeout, "errors.retry.delay.max.ms": "1"});
        serde_json::from_value(v).unwrap()
    }

    #[tokio::test]
    async fn retries_retriable_failures_within_the_timeout() {
        let s = settings("5000");
        let mut calls = 0;
        let r: Result<u32, ConnectError> = with_retries(&s, || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(ConnectError::Retriable("flaky".into()))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r.unwrap(), 3);
    }

    #[tokio::test]
    async fn task_retries_ignore_the_timeout_but_stop_on_request() {
        let s = settings("0");
        let (control, mut rx) = watch::channel(Target::Run);
        let mut retry = Retry::for_task(&s);
        let error = ConnectError::Retriable("busy".into());
        for _ in 0..3 {
            assert!(
                retry
                    .wait_unless(&error, &mut rx, |t| t == Target::Stop)
                    .await
            );
        }
        assert!(
            !retry
                .wait_unless(&ConnectError::Fatal("no".into()), &mut rx, |t| t
                    == Target::Stop)
                .await
        );
        // A stop ends a long backoff at once.
        let mut slow = Retry::for_task(&settings("0"));
        slow.delay = Duration::from_secs(30);
        let stop = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            control.send(Target::Stop).unwrap();
            control
        });
        let started = Instant::now();
        assert!(
            !slow
                .wait_unless(&error, &mut rx, |t| t == Target::Stop)
                .await
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(stop.await);
    }

    #[tokio::test]
    async fn fatal_or_no_budget_fails_at_once() {
        let mut calls = 0;
        let r: Result<(), ConnectError> = with_retries(&settings("5000"), || {
            calls += 1;
            async { Err(ConnectError::Fatal("bad".into())) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1);
        let mut calls = 0;
        let r: Result<(), ConnectError> = with_retries(&settings("0"), || {
            calls += 1;
            async { Err(ConnectError::Retriable("down".into())) }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls, 1);
    }
}
