//! Helpers for the tests of the connect worker.

use std::time::{Duration, Instant};

use brook_connect::{State, Worker};

use super::TIMEOUT;

/// Waits until the first task of connector `name` is in `state`.
pub async fn wait_for_state(worker: &Worker, name: &str, state: State) {
    let start = Instant::now();
    loop {
        let s = worker.status(name);
        if s.as_ref().and_then(|s| s.tasks.first()).map(|t| t.state) == Some(state) {
            return;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "{name} never got to {state:?}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
