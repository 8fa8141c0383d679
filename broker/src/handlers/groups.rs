//! Consumer group APIs: FindCoordinator, Join/Sync/Heartbeat/Leave, offsets, list/describe/delete.

use kafka_protocol::error::ResponseError;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::Conn;
use crate::coordinator::{
    Committed, GroupDescription, JoinOutcome, JoinParams, Reply, SyncOutcome,
};
use crate::state::BrokerState;
use crate::util::now_ms;
use crate::util::sb;

/// The wire error code of a result: 0 for success.
fn code(error: Option<ResponseError>) -> i16 {
    error.map_or(0, |e| e.code())
}

/// FindCoordinator: this broker coordinates every group.
pub(crate) fn find_coordinator(
    state: &BrokerState,
    version: i16,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let host = sb(state.advertised_host.clone());
    let node = BrokerId(state.node_id);
    let entry = |key: StrBytes| {
        let out = CoordinatorEntry::default()
            .with_key(key)
            .with_node_id(node)
            .with_host(host.clone())
            .with_port(state.advertised_port);
        if req.key_type == 0 {
            out
        } else {
            out.with_node_id(BrokerId(-1))
                .with_host(sb(""))
                .with_port(-1)
                .with_error_code(ResponseError::CoordinatorNotAvailable.code())
                .with_error_message(Some(sb(
                    "transaction coordinator not available on this broker",
                )))
        }
    };
    if version >= 4 {
        let coordinators = req.coordinator_keys.iter().cloned().map(entry).collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let e = entry(req.key.clone());
    FindCoordinatorResponse::default()
        .with_error_code(e.error_code)
        .with_error_message(e.error_message)
        .with_node_id(e.node_id)
        .with_host(e.host)
        .with_port(e.port)
}

/// JoinGroup: waits for the rebalance to complete.
pub(crate) async fn join(
    state: &Arc<BrokerState>,
    conn: &Conn,
    version: i16,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    let rebalance_ms = if version >= 1 {
        req.rebalance_timeout_ms
    } else {
        req.session_timeout_ms
    };
    let params = JoinParams {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.map(|s| s.to_string()),
        client_id: conn.client_id.clone(),
        client_host: format!("/{}", conn.peer.ip()),
        session_timeout: Duration::from_millis(req.session_timeout_ms.max(0) as u64),
        rebalance_timeout: Duration::from_millis(rebalance_ms.max(0) as u64),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let outcome = match state.groups.join(&req.group_id, params) {
        Reply::Now(r) => r,
        // The waiter is dropped only when the group goes away mid-rebalance: retriable.
        Reply::Later(rx) => rx
            .await
            .unwrap_or_else(|_| JoinOutcome::failed(ResponseError::CoordinatorNotAvailable, "")),
    };
    join_response(outcome)
}

/// The JoinGroup response carrying `o`; the encoder drops fields the version lacks.
fn join_response(o: JoinOutcome) -> JoinGroupResponse {
    let members = o
        .members
        .into_iter()
        .map(|m| {
            JoinGroupResponseMember::default()
                .with_member_id(sb(m.member_id))
                .with_group_instance_id(m.instance_id.map(sb))
                .with_metadata(m.metadata)
        })
        .collect();
    JoinGroupResponse::default()
        .with_error_code(code(o.error))
        .with_generation_id(o.generation_id)
        .with_protocol_type(o.protocol_type.map(sb))
        .with_protocol_name(Some(sb(o.protocol_name)))
        .with_leader(sb(o.leader))
        .with_member_id(sb(o.member_id))
        .with_members(members)
}

/// SyncGroup: the leader's assignment, relayed.
pub(crate) async fn sync(state: &Arc<BrokerState>, req: SyncGroupRequest) -> SyncGroupResponse {
    let assignments = req
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let reply = state.groups.sync(
        &req.group_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.generation_id,
        assignments,
    );
    let outcome = match reply {
        Reply::Now(r) => r,
        Reply::Later(rx) => rx
            .await
            .unwrap_or_else(|_| SyncOutcome::failed(ResponseError::CoordinatorNotAvailable)),
    };
    SyncGroupResponse::default()
        .with_error_code(code(outcome.error))
        .with_protocol_type(outcome.protocol_type.map(sb))
        .with_protocol_name(outcome.protocol_name.map(sb))
        .with_assignment(outcome.assignment)
}

/// Heartbeat.
pub(crate) fn heartbeat(state: &BrokerState, req: HeartbeatRequest) -> HeartbeatResponse {
    let result = state.groups.heartbeat(
        &req.group_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.generation_id,
    );
    HeartbeatResponse::default().with_error_code(code(result.err()))
}

/// LeaveGroup (single member before v3, a batch from v3).
pub(crate) fn leave(
    state: &BrokerState,
    version: i16,
    req: LeaveGroupRequest,
) -> LeaveGroupResponse {
    if version < 3 {
        let results = state
            .groups
            .leave(&req.group_id, &[(req.member_id.to_string(), None)]);
        return LeaveGroupResponse::default().with_error_code(code(results[0].err()));
    }
    let members: Vec<(String, Option<String>)> = req
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.to_string(),
                m.group_instance_id.as_ref().map(|s| s.to_string()),
            )
        })
        .collect();
    let results = state.groups.leave(&req.group_id, &members);
    let responses = req
        .members
        .into_iter()
        .zip(results)
        .map(|(m, result)| {
            MemberResponse::default()
                .with_member_id(m.member_id)
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(code(result.err()))
        })
        .collect();
    LeaveGroupResponse::default().with_members(responses)
}

/// OffsetCommit; the metadata string is stored and returned by OffsetFetch.
pub(crate) fn offset_commit(state: &BrokerState, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let now = now_ms();
    let mut entries = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            if state.topics.partition(&t.name, p.partition_index).is_some() {
                entries.push((
                    t.name.to_string(),
                    p.partition_index,
                    Some(Committed {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        commit_timestamp: now,
                    }),
                ));
            }
        }
    }
    let committed = code(
        state
            .groups
            .commit(
                &state.topics,
                &req.group_id,
                req.generation_id_or_member_epoch,
                &req.member_id,
                req.group_instance_id.as_deref(),
                entries,
            )
            .err(),
    );
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let known = state.topics.partition(&t.name, p.partition_index).is_some();
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(if known {
                            committed
                        } else {
                            ResponseError::UnknownTopicOrPartition.code()
                        })
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// A topic with the committed offset (if any) of each asked-for partition.
type TopicOffsets = (TopicName, Vec<(i32, Option<Committed>)>);

/// The committed offsets asked for; `None` means every partition the group has committed.
fn lookup(
    state: &BrokerState,
    group: &str,
    topics: Option<Vec<(TopicName, Vec<i32>)>>,
) -> Vec<TopicOffsets> {
    match topics {
        Some(ts) => ts
            .into_iter()
            .map(|(name, parts)| {
                let found = parts
                    .into_iter()
                    .map(|p| (p, state.groups.committed(group, &name, p)))
                    .collect();
                (name, found)
            })
            .collect(),
        None => {
            let mut by_topic: std::collections::BTreeMap<String, Vec<(i32, Option<Committed>)>> =
                Default::default();
            for (t, p, c) in state.groups.all_committed(group) {
                by_topic.entry(t).or_default().push((p, Some(c)));
            }
            by_topic
                .into_iter()
                .map(|(t, v)| (TopicName(sb(t)), v))
                .collect()
        }
    }
}

fn fields(c: &Option<Committed>) -> (i64, i32, Option<StrBytes>) {
    match c {
        Some(c) => (
            c.offset,
            c.leader_epoch,
            Some(sb(c.metadata.clone().unwrap_or_default())),
        ),
        None => (-1, -1, Some(sb(""))),
    }
}

/// OffsetFetch (one group before v8, several from v8).
pub(crate) fn offset_fetch(
    state: &BrokerState,
    version: i16,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if version < 8 {
        let wanted = req.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name, t.partition_indexes))
                .collect()
        });
        let topics = lookup(state, &req.group_id, wanted)
            .into_iter()
            .map(|(name, parts)| {
                let partitions = parts
                    .iter()
                    .map(|(p, c)| {
                        let (offset, epoch, metadata) = fields(c);
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(*p)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(epoch)
                            .with_metadata(metadata)
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(name)
                    .with_partitions(partitions)
            })
            .collect();
        return OffsetFetchResponse::default().with_topics(topics);
    }
    let groups = req
        .groups
        .into_iter()
        .map(|g| {
            let wanted = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name, t.partition_indexes))
                    .collect()
            });
            let topics = lookup(state, &g.group_id, wanted)
                .into_iter()
                .map(|(name, parts)| {
                    let partitions = parts
                        .iter()
                        .map(|(p, c)| {
                            let (offset, epoch, metadata) = fields(c);
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(*p)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(metadata)
                        })
                        .collect();
                    OffsetFetchResponseTopics::default()
                        .with_name(name)
                        .with_partitions(partitions)
                })
                .collect();
            OffsetFetchResponseGroup::default()
                .with_group_id(g.group_id)
                .with_topics(topics)
        })
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}

/// ListGroups, with the v4 state filter.
pub(crate) fn list(state: &BrokerState, req: ListGroupsRequest) -> ListGroupsResponse {
    let groups = state
        .groups
        .list()
        .into_iter()
        .filter(|(_, _, s)| {
            req.states_filter.is_empty()
                || req
                    .states_filter
                    .iter()
                    .any(|f| f.as_str().eq_ignore_ascii_case(s))
        })
        .map(|(id, ptype, s)| {
            ListedGroup::default()
                .with_group_id(GroupId(sb(id)))
                .with_protocol_type(sb(ptype))
                .with_group_state(sb(s))
                .with_group_type(sb("classic"))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

/// DescribeGroups.
pub(crate) fn describe(state: &BrokerState, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = req
        .groups
        .iter()
        .map(|g| described_group(state.groups.describe(g)))
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

/// The DescribeGroups entry for `d`; Brook does not compute authorized operations.
fn described_group(d: GroupDescription) -> DescribedGroup {
    let members = d
        .members
        .into_iter()
        .map(|m| {
            DescribedGroupMember::default()
                .with_member_id(sb(m.member_id))
                .with_group_instance_id(m.instance_id.map(sb))
                .with_client_id(sb(m.client_id))
                .with_client_host(sb(m.client_host))
                .with_member_metadata(m.metadata)
                .with_member_assignment(m.assignment)
        })
        .collect();
    DescribedGroup::default()
        .with_group_id(GroupId(sb(d.group_id)))
        .with_authorized_operations(i32::MIN)
        .with_group_state(sb(d.state))
        .with_protocol_type(sb(d.protocol_type))
        .with_protocol_data(sb(d.protocol))
        .with_members(members)
}

/// OffsetDelete: forgets committed offsets of an empty group.
pub(crate) fn offset_delete(state: &BrokerState, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let entries: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index))
        })
        .collect();
    let results = match state
        .groups
        .delete_offsets(&state.topics, &req.group_id, &entries)
    {
        Ok(results) => results,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
    };
    // One result per requested partition, in request order.
    let mut results = results.into_iter();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code(results.next().and_then(Result::err)))
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

/// DeleteGroups.
pub(crate) fn delete(state: &BrokerState, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let results = req
        .groups_names
        .into_iter()
        .map(|g| {
            let result = state.groups.delete(&state.topics, &g);
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(code(result.err()))
        })
        .collect();
    DeleteGroupsResponse::default().with_results(results)
}
