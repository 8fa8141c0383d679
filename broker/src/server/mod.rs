//! The TCP server: accepting connections and running each one.

pub(crate) mod bounds;
mod connection;
mod limits;
pub(crate) mod request;
pub(crate) mod versions;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::state::BrokerState;
use limits::{ConnectionLimits, RequestMemory};

/// Accepts connections until shutdown; each connection holds a clone of `alive` until it ends.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    let limits = ConnectionLimits::new(
        state.config.settings().max_connections,
        state.config.settings().max_connections_per_ip,
    );
    let memory = RequestMemory::new(state.config.settings().queued_max_request_bytes);
    loop {
        // At max.connections the acceptor waits, as Kafka's: new clients queue in the backlog.
        let permit = tokio::select! {
            p = limits.wait_for_total() => p,
            _ = shutdown.changed() => break,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Some(slot) = limits.admit(peer.ip(), permit) else {
                        tracing::info!(%peer, "closing connection: max.connections.per.ip reached for its address");
                        drop(stream);
                        continue;
                    };
                    let state = Arc::clone(&state);
                    let shutdown = shutdown.clone();
                    let alive = alive.clone();
                    let memory = Arc::clone(&memory);
                    tokio::spawn(async move {
                        connection::run(stream, peer, state, memory, shutdown).await;
                        drop(slot);
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
