//! Request handlers: one module per API family, dispatched by request kind. Handlers that
//! write or read the disk run on the I/O threads; the rest answer from memory on the worker.

mod admin;
pub(crate) mod api_versions;
mod configs;
mod fetch;
mod groups;
mod list_offsets;
mod metadata;
mod produce;
mod producer_id;

use std::net::SocketAddr;
use std::sync::Arc;

use kafka_protocol::messages::{RequestHeader, RequestKind, ResponseKind};

use crate::state::BrokerState;

/// What a handler knows about the connection a request came on.
pub(crate) struct Conn {
    pub peer: SocketAddr,
    pub client_id: String,
}

/// Runs a handler that touches the disk on the I/O threads (see `io_threads.rs`).
async fn io<R: Send + 'static>(
    state: &Arc<BrokerState>,
    handler: impl FnOnce(&BrokerState) -> R + Send + 'static,
) -> R {
    let shared = Arc::clone(state);
    state.io.run(move || handler(&shared)).await
}

/// Handles one decoded request; `None` means no response is sent (Produce with acks=0).
pub(crate) async fn handle(
    state: &Arc<BrokerState>,
    conn: &Conn,
    header: &RequestHeader,
    request: RequestKind,
) -> Option<ResponseKind> {
    let v = header.request_api_version;
    Some(match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::handle()),
        // Metadata may auto-create topics.
        RequestKind::Metadata(r) => {
            ResponseKind::Metadata(io(state, move |s| metadata::handle(s, v, r)).await)
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(metadata::describe_cluster(state, r))
        }
        RequestKind::Produce(r) => {
            ResponseKind::Produce(io(state, move |s| produce::handle(s, v, r)).await?)
        }
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(state, v, r).await),
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(io(state, move |s| list_offsets::handle(s, v, r)).await)
        }
        // The partition lock it takes may be held through an fsync (a roll, flush.messages).
        RequestKind::OffsetForLeaderEpoch(r) => ResponseKind::OffsetForLeaderEpoch(
            io(state, move |s| list_offsets::offset_for_leader_epoch(s, r)).await,
        ),
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(io(state, move |s| admin::create_topics(s, v, r)).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(io(state, move |s| admin::delete_topics(s, v, r)).await)
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(io(state, move |s| admin::delete_records(s, r)).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(io(state, move |s| admin::create_partitions(s, r)).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(configs::describe(state, v, r))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(io(state, move |s| configs::alter(s, r)).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            io(state, move |s| configs::incremental_alter(s, r)).await,
        ),
        RequestKind::InitProducerId(r) => ResponseKind::InitProducerId(
            io(state, move |s| producer_id::init_producer_id(s, r)).await,
        ),
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(groups::find_coordinator(state, v, r))
        }
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(groups::join(state, conn, v, r).await),
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(groups::sync(state, r).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(groups::heartbeat(state, r)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(groups::leave(state, v, r)),
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(io(state, move |s| groups::offset_commit(s, r)).await)
        }
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(groups::offset_fetch(state, v, r)),
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(groups::list(state, r)),
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(groups::describe(state, r)),
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(io(state, move |s| groups::delete(s, r)).await)
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(io(state, move |s| groups::offset_delete(s, r)).await)
        }
        other => {
            // versions::SUPPORTED gates what reaches here; this is a programming error, not input.
            tracing::error!(request = ?std::mem::discriminant(&other), "no handler for advertised API");
            return None;
        }
    })
}
