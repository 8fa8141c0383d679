//! Request handlers: one module per API family, dispatched by request kind.

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
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(state, v, r)),
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(metadata::describe_cluster(state, r))
        }
        RequestKind::Produce(r) => ResponseKind::Produce(produce::handle(state, v, r)?),
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(state, v, r).await),
        RequestKind::ListOffsets(r) => ResponseKind::ListOffsets(list_offsets::handle(state, v, r)),
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(list_offsets::offset_for_leader_epoch(state, r))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(admin::create_topics(state, v, r))
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(admin::delete_topics(state, v, r))
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(admin::delete_records(state, r))
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(admin::create_partitions(state, r))
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(configs::describe(state, v, r))
        }
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(configs::alter(state, r)),
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(configs::incremental_alter(state, r))
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(producer_id::init_producer_id(state, r))
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(groups::find_coordinator(state, v, r))
        }
        RequestKind::JoinGroup(r) => ResponseKind::JoinGroup(groups::join(state, conn, v, r).await),
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(groups::sync(state, r).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(groups::heartbeat(state, r)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(groups::leave(state, v, r)),
        RequestKind::OffsetCommit(r) => ResponseKind::OffsetCommit(groups::offset_commit(state, r)),
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(groups::offset_fetch(state, v, r)),
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(groups::list(state, r)),
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(groups::describe(state, r)),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(groups::delete(state, r)),
        RequestKind::OffsetDelete(r) => ResponseKind::OffsetDelete(groups::offset_delete(state, r)),
        other => {
            // versions::SUPPORTED gates what reaches here; this is a programming error, not input.
            tracing::error!(request = ?std::mem::discriminant(&other), "no handler for advertised API");
            return None;
        }
    })
}
