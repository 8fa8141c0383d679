//! The TCP server: accepting connections and running each one.

mod bounds;
mod connection;
pub(crate) mod versions;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::state::BrokerState;

/// Accepts connections until shutdown; each connection holds a clone of `alive` until it ends.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let state = Arc::clone(&state);
                    let shutdown = shutdown.clone();
                    let alive = alive.clone();
                    tokio::spawn(async move {
                        connection::run(stream, peer, state, shutdown).await;
                        drop(alive);
                    });
                }
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => break,
        }
    }
}
