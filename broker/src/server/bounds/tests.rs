//! The walker against the codec: every supported (api, version) round-trips with every array
//! populated, hostile counts are refused, and no input makes it panic.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    alter_configs_request as alter, create_partitions_request as create_partitions,
    create_topics_request as create_topics, delete_records_request as delete_records,
    delete_topics_request as delete_topics, describe_configs_request as describe_configs,
    fetch_request as fetch, incremental_alter_configs_request as incremental,
    join_group_request as join_group, leave_group_request as leave_group,
    list_offsets_request as list_offsets, metadata_request as metadata,
    offset_commit_request as offset_commit, offset_delete_request as offset_delete,
    offset_fetch_request as offset_fetch, offset_for_leader_epoch_request as epoch,
    produce_request as produce, sync_group_request as sync_group,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, ApiKey, ApiVersionsRequest, BrokerId, CreatePartitionsRequest,
    CreateTopicsRequest, DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest, FetchRequest,
    FindCoordinatorRequest, GroupId, HeartbeatRequest, IncrementalAlterConfigsRequest,
    InitProducerIdRequest, JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest,
    ListOffsetsRequest, MetadataRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest, OffsetForLeaderEpochRequest, ProduceRequest, ProducerId, RequestKind,
    SyncGroupRequest, TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use uuid::Uuid;

use super::schema::{body_of, Field, Ty};
use super::{
    check, check_header, decoded_budget, walk, walk_estimating, DECODED_FLOOR,
    DECODED_PER_BODY_BYTE,
};
use crate::server::versions::SUPPORTED;

fn s(text: &'static str) -> StrBytes {
    StrBytes::from_static_str(text)
}

fn topic(name: &'static str) -> TopicName {
    TopicName(s(name))
}

fn group(id: &'static str) -> GroupId {
    GroupId(s(id))
}

fn bytes(data: &'static [u8]) -> Bytes {
    Bytes::from_static(data)
}

/// An unknown tagged field on every struct: a two-byte tag and a two-byte size exercise the
/// varints (encoders write it in flexible versions only).
const TAG: i32 = 300;
fn tag_value() -> Bytes {
    Bytes::from(vec![b't'; 130])
}

macro_rules! tagged {
    ($e:expr) => {
        $e.with_unknown_tagged_field(TAG, tag_value())
    };
}

/// `value.when(cond, f)`: applies `f` only when the field exists in the version being built.
trait When: Sized {
    fn when(self, cond: bool, f: impl FnOnce(Self) -> Self) -> Self {
        if cond {
            f(self)
        } else {
            self
        }
    }
}
impl<T> When for T {}

/// A request of `api` at version `v` with every field of that version set and every array
/// (nested ones too) holding at least one element with non-empty strings and bytes.
pub(crate) fn sample(api: ApiKey, v: i16) -> RequestKind {
    match api {
        ApiKey::Produce => RequestKind::Produce(tagged!(ProduceRequest::default()
            .with_transactional_id(Some(TransactionalId(s("txn"))))
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![tagged!(produce::TopicProduceData::default()
                .with_name(topic("orders"))
                .with_partition_data(vec![
                    tagged!(produce::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(bytes(b"a record batch")))),
                    tagged!(produce::PartitionProduceData::default()
                        .with_index(1)
                        .with_records(Some(bytes(b"another batch")))),
                ]))]))),
        ApiKey::Fetch => RequestKind::Fetch(tagged!(FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(500)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_isolation_level(1)
            .when(v >= 7, |r| r.with_session_id(5).with_session_epoch(3))
            .with_topics(vec![tagged!(fetch::FetchTopic::default()
                .with_topic(topic("orders"))
                .with_partitions(vec![tagged!(fetch::FetchPartition::default()
                    .with_partition(0)
                    .when(v >= 9, |p| p.with_current_leader_epoch(2))
                    .with_fetch_offset(10)
                    .when(v >= 12, |p| p.with_last_fetched_epoch(1))
                    .when(v >= 5, |p| p.with_log_start_offset(0))
                    .with_partition_max_bytes(1 << 16))]))])
            .when(v >= 7, |r| {
                r.with_forgotten_topics_data(vec![tagged!(fetch::ForgottenTopic::default()
                    .with_topic(topic("old"))
                    .with_partitions(vec![1, 2]))])
            })
            .when(v >= 11, |r| r.with_rack_id(s("rack-a")))
            .when(v >= 12, |r| r.with_cluster_id(Some(s("cluster")))))),
        ApiKey::ListOffsets => RequestKind::ListOffsets(tagged!(ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .when(v >= 2, |r| r.with_isolation_level(1))
            .with_topics(vec![tagged!(list_offsets::ListOffsetsTopic::default()
                .with_name(topic("orders"))
                .with_partitions(vec![tagged!(
                    list_offsets::ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .when(v >= 4, |p| p.with_current_leader_epoch(3))
                        .with_timestamp(-1)
                )]))]))),
        ApiKey::Metadata => RequestKind::Metadata(tagged!(MetadataRequest::default()
            .with_topics(Some(vec![
                tagged!(metadata::MetadataRequestTopic::default()
                    .with_name(Some(topic("orders")))
                    .when(v >= 10, |t| t.with_topic_id(Uuid::from_u128(7)))),
                tagged!(
                    metadata::MetadataRequestTopic::default().with_name(Some(topic("payments")))
                ),
            ]))
            .when(v >= 4, |r| r.with_allow_auto_topic_creation(false))
            .when((8..=10).contains(&v), |r| {
                r.with_include_cluster_authorized_operations(true)
            })
            .when(v >= 8, |r| r.with_include_topic_authorized_operations(true)))),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(tagged!(OffsetCommitRequest::default()
            .with_group_id(group("group"))
            .with_generation_id_or_member_epoch(3)
            .with_member_id(s("member"))
            .when(v >= 7, |r| r.with_group_instance_id(Some(s("instance"))))
            .when(v <= 4, |r| r.with_retention_time_ms(1000))
            .with_topics(vec![tagged!(
                offset_commit::OffsetCommitRequestTopic::default()
                    .with_name(topic("orders"))
                    .with_partitions(vec![tagged!(
                        offset_commit::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(5)
                            .when(v >= 6, |p| p.with_committed_leader_epoch(1))
                            .with_committed_metadata(Some(s("meta")))
                    )])
            )]))),
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(tagged!(OffsetFetchRequest::default()
            .when(v <= 7, |r| {
                r.with_group_id(group("group"))
                    .with_topics(Some(vec![tagged!(
                        offset_fetch::OffsetFetchRequestTopic::default()
                            .with_name(topic("orders"))
                            .with_partition_indexes(vec![0, 1])
                    )]))
            })
            .when(v >= 8, |r| {
                r.with_groups(vec![tagged!(
                    offset_fetch::OffsetFetchRequestGroup::default()
                        .with_group_id(group("group"))
                        .with_topics(Some(vec![tagged!(
                            offset_fetch::OffsetFetchRequestTopics::default()
                                .with_name(topic("orders"))
                                .with_partition_indexes(vec![0])
                        )]))
                )])
            })
            .when(v >= 7, |r| r.with_require_stable(true)))),
        ApiKey::FindCoordinator => {
            RequestKind::FindCoordinator(tagged!(FindCoordinatorRequest::default()
                .when(v <= 3, |r| r.with_key(s("group")))
                .when(v >= 1, |r| r.with_key_type(0))
                .when(v >= 4, |r| r.with_coordinator_keys(vec![s("g1"), s("g2")]))))
        }
        ApiKey::JoinGroup => RequestKind::JoinGroup(tagged!(JoinGroupRequest::default()
            .with_group_id(group("group"))
            .with_session_timeout_ms(10_000)
            .when(v >= 1, |r| r.with_rebalance_timeout_ms(30_000))
            .with_member_id(s("member"))
            .when(v >= 5, |r| r.with_group_instance_id(Some(s("instance"))))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![tagged!(
                join_group::JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(bytes(b"subscription"))
            )])
            .when(v >= 8, |r| r.with_reason(Some(s("rejoin")))))),
        ApiKey::Heartbeat => RequestKind::Heartbeat(tagged!(HeartbeatRequest::default()
            .with_group_id(group("group"))
            .with_generation_id(1)
            .with_member_id(s("member"))
            .when(v >= 3, |r| r.with_group_instance_id(Some(s("instance")))))),
        ApiKey::LeaveGroup => RequestKind::LeaveGroup(tagged!(LeaveGroupRequest::default()
            .with_group_id(group("group"))
            .when(v <= 2, |r| r.with_member_id(s("member")))
            .when(v >= 3, |r| {
                r.with_members(vec![tagged!(leave_group::MemberIdentity::default()
                    .with_member_id(s("member"))
                    .with_group_instance_id(Some(s("instance")))
                    .when(v >= 5, |m| m.with_reason(Some(s("bye")))))])
            }))),
        ApiKey::SyncGroup => RequestKind::SyncGroup(tagged!(SyncGroupRequest::default()
            .with_group_id(group("group"))
            .with_generation_id(1)
            .with_member_id(s("member"))
            .when(v >= 3, |r| r.with_group_instance_id(Some(s("instance"))))
            .when(v >= 5, |r| {
                r.with_protocol_type(Some(s("consumer")))
                    .with_protocol_name(Some(s("range")))
            })
            .with_assignments(vec![tagged!(
                sync_group::SyncGroupRequestAssignment::default()
                    .with_member_id(s("member"))
                    .with_assignment(bytes(b"assignment"))
            )]))),
        ApiKey::DescribeGroups => {
            RequestKind::DescribeGroups(tagged!(DescribeGroupsRequest::default()
                .with_groups(vec![group("g1"), group("g2")])
                .when(v >= 3, |r| r.with_include_authorized_operations(true))))
        }
        ApiKey::ListGroups => RequestKind::ListGroups(tagged!(ListGroupsRequest::default()
            .when(v >= 4, |r| r.with_states_filter(vec![s("Stable")]))
            .when(v >= 5, |r| r.with_types_filter(vec![s("classic")])))),
        ApiKey::ApiVersions => RequestKind::ApiVersions(tagged!(ApiVersionsRequest::default()
            .when(v >= 3, |r| {
                r.with_client_software_name(s("brook-test"))
                    .with_client_software_version(s("1.0"))
            }))),
        ApiKey::CreateTopics => RequestKind::CreateTopics(tagged!(CreateTopicsRequest::default()
            .with_topics(vec![tagged!(create_topics::CreatableTopic::default()
                .with_name(topic("orders"))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![tagged!(
                    create_topics::CreatableReplicaAssignment::default()
                        .with_partition_index(0)
                        .with_broker_ids(vec![BrokerId(0), BrokerId(1)])
                )])
                .with_configs(vec![tagged!(
                    create_topics::CreatableTopicConfig::default()
                        .with_name(s("cleanup.policy"))
                        .with_value(Some(s("compact")))
                )]))])
            .with_timeout_ms(1000)
            .with_validate_only(true))),
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(tagged!(DeleteTopicsRequest::default()
            .when(v >= 6, |r| {
                r.with_topics(vec![tagged!(delete_topics::DeleteTopicState::default()
                    .with_name(Some(topic("orders")))
                    .with_topic_id(Uuid::from_u128(9)))])
            })
            .when(v <= 5, |r| r.with_topic_names(vec![topic("orders")]))
            .with_timeout_ms(1000))),
        ApiKey::DeleteRecords => {
            RequestKind::DeleteRecords(tagged!(DeleteRecordsRequest::default()
                .with_topics(vec![tagged!(delete_records::DeleteRecordsTopic::default()
                    .with_name(topic("orders"))
                    .with_partitions(vec![tagged!(
                        delete_records::DeleteRecordsPartition::default()
                            .with_partition_index(0)
                            .with_offset(10)
                    )]))])
                .with_timeout_ms(1000)))
        }
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(tagged!(
            DeleteGroupsRequest::default().with_groups_names(vec![group("g1")])
        )),
        // Never flexible: its structs have no tagged fields.
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(
            OffsetDeleteRequest::default()
                .with_group_id(group("group"))
                .with_topics(vec![offset_delete::OffsetDeleteRequestTopic::default()
                    .with_name(topic("orders"))
                    .with_partitions(vec![
                        offset_delete::OffsetDeleteRequestPartition::default()
                            .with_partition_index(0),
                    ])]),
        ),
        ApiKey::InitProducerId => {
            RequestKind::InitProducerId(tagged!(InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s("txn"))))
                .with_transaction_timeout_ms(60_000)
                .when(v >= 3, |r| {
                    r.with_producer_id(ProducerId(5)).with_producer_epoch(1)
                })))
        }
        ApiKey::OffsetForLeaderEpoch => {
            RequestKind::OffsetForLeaderEpoch(tagged!(OffsetForLeaderEpochRequest::default()
                .when(v >= 3, |r| r.with_replica_id(BrokerId(-1)))
                .with_topics(vec![tagged!(epoch::OffsetForLeaderTopic::default()
                    .with_topic(topic("orders"))
                    .with_partitions(vec![tagged!(
                        epoch::OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(1)
                            .with_leader_epoch(1)
                    )]))])))
        }
        ApiKey::DescribeConfigs => {
            RequestKind::DescribeConfigs(tagged!(DescribeConfigsRequest::default()
                .with_resources(vec![tagged!(
                    describe_configs::DescribeConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s("orders"))
                        .with_configuration_keys(Some(vec![s("retention.ms")]))
                )])
                .with_include_synonyms(true)
                .when(v >= 3, |r| r.with_include_documentation(true))))
        }
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(tagged!(AlterConfigsRequest::default()
            .with_resources(vec![tagged!(alter::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("orders"))
                .with_configs(vec![tagged!(alter::AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("1000"))))]))])
            .with_validate_only(true))),
        ApiKey::CreatePartitions => {
            RequestKind::CreatePartitions(tagged!(CreatePartitionsRequest::default()
                .with_topics(vec![tagged!(
                    create_partitions::CreatePartitionsTopic::default()
                        .with_name(topic("orders"))
                        .with_count(3)
                        .with_assignments(Some(vec![tagged!(
                            create_partitions::CreatePartitionsAssignment::default()
                                .with_broker_ids(vec![BrokerId(0)])
                        )]))
                )])
                .with_timeout_ms(1000)
                .with_validate_only(true)))
        }
        ApiKey::IncrementalAlterConfigs => {
            RequestKind::IncrementalAlterConfigs(tagged!(IncrementalAlterConfigsRequest::default()
                .with_resources(vec![tagged!(incremental::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("orders"))
                    .with_configs(vec![tagged!(incremental::AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_config_operation(0)
                        .with_value(Some(s("1000"))))]))])
                .with_validate_only(true)))
        }
        ApiKey::DescribeCluster => {
            RequestKind::DescribeCluster(tagged!(DescribeClusterRequest::default()
                .with_include_cluster_authorized_operations(true)
                .when(v >= 1, |r| r.with_endpoint_type(2))))
        }
        other => panic!("no sample for {other:?}"),
    }
}

pub(crate) fn encoded(api: ApiKey, v: i16) -> Bytes {
    let mut buf = BytesMut::new();
    sample(api, v)
        .encode(&mut buf, v)
        .unwrap_or_else(|e| panic!("encoding {api:?} v{v}: {e:#}"));
    buf.freeze()
}

fn decodes(api: ApiKey, v: i16, body: &[u8]) -> bool {
    RequestKind::decode(api, &mut Bytes::copy_from_slice(body), v).is_ok()
}

pub(crate) fn every_version() -> impl Iterator<Item = (ApiKey, i16)> {
    SUPPORTED
        .iter()
        .flat_map(|&(api, min, max)| (min..=max).map(move |v| (api, v)))
}

#[test]
fn every_layout_matches_the_supported_versions() {
    for &(api, min, max) in SUPPORTED {
        let body = body_of(api).unwrap_or_else(|| panic!("no layout for {api:?}"));
        assert_eq!((body.min, body.max), (min, max), "{api:?}");
    }
}

/// The smallest encoding of a struct: every array element takes at least one byte, so an
/// array count above the remaining bytes is always wrong.
fn min_size(fields: &[Field], v: i16, flexible: bool) -> usize {
    let length = |wide: bool| match (flexible, wide) {
        (true, _) => 1,
        (false, true) => 4,
        (false, false) => 2,
    };
    let tagged = usize::from(flexible);
    fields
        .iter()
        .filter(|f| f.present_in(v))
        .map(|f| match f.ty {
            Ty::Fixed(n) => n as usize,
            Ty::Str => length(false),
            Ty::Bytes | Ty::Array(_) => length(true),
            Ty::Structs { fields: inner, .. } => {
                assert!(min_size(inner, v, flexible) >= 1, "{} at v{v}", f.name);
                length(true)
            }
        })
        .sum::<usize>()
        + tagged
}

#[test]
fn every_array_element_takes_at_least_one_byte() {
    for (api, v) in every_version() {
        let body = body_of(api).unwrap();
        min_size(body.fields, v, v >= body.flexible);
    }
}

#[test]
fn every_supported_version_walks_exactly_its_encoding() {
    for (api, v) in every_version() {
        let body = encoded(api, v);
        assert!(
            decodes(api, v, &body),
            "{api:?} v{v}: the codec refuses its own encoding"
        );
        assert_eq!(
            walk(api, v, &body),
            Ok(body.len()),
            "{api:?} v{v}: the walk must consume the whole encoding"
        );
        // Bytes after the body are ignored, as the decoder ignores them.
        let mut longer = body.to_vec();
        longer.extend_from_slice(b"trailing");
        assert_eq!(walk(api, v, &longer), Ok(body.len()), "{api:?} v{v}");
    }
}

#[test]
fn versions_without_a_layout_are_refused() {
    assert!(check(ApiKey::Produce, 2, &[]).is_err());
    assert!(check(ApiKey::Produce, 10, &[]).is_err());
    assert!(check(ApiKey::SaslHandshake, 1, &[]).is_err());
}

/// UnsignedVarInt encoding of `n`.
fn varint(mut n: u32) -> Vec<u8> {
    let mut out = Vec::new();
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out
}

fn assert_refused(api: ApiKey, v: i16, body: &[u8], expected: &str) {
    match check(api, v, body) {
        Ok(()) => panic!("{api:?} v{v} accepted {body:?}"),
        Err(e) => assert!(e.contains(expected), "{api:?} v{v}: {e}"),
    }
}

#[test]
fn a_first_array_of_two_billion_elements_is_refused() {
    let huge = i32::MAX as u32;
    // Metadata v1: topics (Int32 count).
    assert_refused(
        ApiKey::Metadata,
        1,
        &huge.to_be_bytes(),
        "claims 2147483647 elements",
    );
    // Produce v9: null transactional_id, acks, timeout_ms, topic_data (compact count + 1).
    let mut produce = vec![0, 0xff, 0xff, 0, 0, 0x75, 0x30];
    produce.extend(varint(huge + 1));
    produce.extend_from_slice(&[0; 8]);
    assert_refused(ApiKey::Produce, 9, &produce, "claims 2147483647 elements");
    // CreateTopics v7: topics first.
    let mut create = varint(huge + 1);
    create.extend_from_slice(&[0; 16]);
    assert_refused(
        ApiKey::CreateTopics,
        7,
        &create,
        "claims 2147483647 elements",
    );
    // OffsetCommit v8: group_id "g", generation, empty member_id, null instance id, topics.
    let mut commit = vec![2, b'g', 0, 0, 0, 1, 1, 0];
    commit.extend(varint(huge + 1));
    assert_refused(
        ApiKey::OffsetCommit,
        8,
        &commit,
        "claims 2147483647 elements",
    );
    // The largest compact count the codec can read: u32::MAX - 1 elements.
    assert_refused(
        ApiKey::CreateTopics,
        7,
        &varint(u32::MAX),
        "claims 4294967294 elements",
    );
}

#[test]
fn hostile_counts_and_lengths_deep_in_a_body_are_refused() {
    // Produce v8 with one topic whose partition array claims 2^31-1 elements.
    let mut body = vec![
        0xff, 0xff, 0xff, 0xff, 0, 0, 3, 0xe8, 0, 0, 0, 1, 0, 1, b't',
    ];
    body.extend_from_slice(&i32::MAX.to_be_bytes());
    assert_refused(ApiKey::Produce, 8, &body, "partition_data");
    // The same partition with records claiming more bytes than there are.
    let mut body = vec![
        0xff, 0xff, 0xff, 0xff, 0, 0, 3, 0xe8, 0, 0, 0, 1, 0, 1, b't',
    ];
    body.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3]);
    assert_refused(ApiKey::Produce, 8, &body, "records");
    // A negative count other than -1 (null).
    assert_refused(ApiKey::Metadata, 1, &(-2i32).to_be_bytes(), "negative");
    // A string running past the end.
    assert_refused(ApiKey::Heartbeat, 0, &[0x7f, 0xff, b'g'], "group_id");
    // A compact string (Metadata v9 topic name) running past the end.
    let mut body = vec![2];
    body.extend(varint(1 << 30));
    assert_refused(ApiKey::Metadata, 9, &body, "name");
    // Tagged fields (after Metadata v9's empty topics and three booleans): too many, and one
    // running past the end.
    let mut body = vec![1, 0, 0, 0];
    body.extend(varint(u32::MAX));
    assert_refused(ApiKey::Metadata, 9, &body, "tagged fields of body");
    let mut body = vec![1, 0, 0, 0, 1, 5];
    body.extend(varint(1 << 20));
    body.extend_from_slice(b"short");
    assert_refused(ApiKey::Metadata, 9, &body, "tagged field 5");
}

#[test]
fn truncated_bodies_are_refused_and_never_panic() {
    for (api, v) in every_version() {
        let body = encoded(api, v);
        for cut in 0..body.len() {
            let prefix = &body[..cut];
            // Every prefix is short of the walk, which consumed the whole body.
            assert!(check(api, v, prefix).is_err(), "{api:?} v{v} cut at {cut}");
            // The decoder must not panic on it either (it is never reached in the broker).
            let _ = decodes(api, v, prefix);
        }
    }
}

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_and_mutated_bodies_never_panic() {
    let mut rng = Rng(0x5eed_b0d1e5);
    for (api, v) in every_version() {
        let valid = encoded(api, v);
        for i in 0..400 {
            let body: Vec<u8> = if i % 2 == 0 || valid.is_empty() {
                let len = rng.below(160);
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                // Mostly valid: overwrite up to three bytes, sometimes with 0xff or 0x7f,
                // the bytes that make counts and lengths large.
                let mut body = valid.to_vec();
                for _ in 0..=rng.below(3) {
                    let at = rng.below(body.len());
                    body[at] = match rng.below(4) {
                        0 => 0xff,
                        1 => 0x7f,
                        _ => rng.next() as u8,
                    };
                }
                body
            };
            match check(api, v, &body) {
                // What the walk passes decodes, or fails to, without huge allocations.
                Ok(()) => {
                    let _ = decodes(api, v, &body);
                }
                // A count above the remaining bytes is short of elements of at least a byte
                // each (see every_array_element_takes_at_least_one_byte); decoding it is the
                // very allocation the walk is there to prevent.
                Err(e) if e.contains("elements but only") => {}
                // Otherwise the walk is no stricter than the decoder. Fetch is exempt: the
                // codec decodes its known tagged field (cluster_id) without holding it to the
                // field's size, as the walk does.
                Err(e) => assert!(
                    api == ApiKey::Fetch || !decodes(api, v, &body),
                    "{api:?} v{v}: the walk refused what the codec decodes: {e}; {body:?}"
                ),
            }
        }
    }
}

#[test]
fn walker_cost_on_a_one_mebibyte_produce() {
    use std::time::Instant;
    let records = Bytes::from(vec![0u8; 1 << 20]);
    let one_partition = ProduceRequest::default()
        .with_acks(-1)
        .with_topic_data(vec![produce::TopicProduceData::default()
            .with_name(topic("orders"))
            .with_partition_data(vec![produce::PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    // The same megabyte spread over 64 topics of 16 partitions.
    let many_partitions = ProduceRequest::default().with_acks(-1).with_topic_data(
        (0..64)
            .map(|t| {
                produce::TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(format!("topic-{t}"))))
                    .with_partition_data(
                        (0..16)
                            .map(|p| {
                                produce::PartitionProduceData::default()
                                    .with_index(p)
                                    .with_records(Some(Bytes::from(vec![0u8; 1024])))
                            })
                            .collect(),
                    )
            })
            .collect(),
    );
    for (what, request) in [
        ("1 partition", one_partition),
        ("1024 partitions", many_partitions),
    ] {
        for v in [8, 9] {
            let mut buf = BytesMut::new();
            request.encode(&mut buf, v).unwrap();
            const ROUNDS: u32 = 2000;
            let start = Instant::now();
            for _ in 0..ROUNDS {
                let walked = walk(ApiKey::Produce, v, std::hint::black_box(&buf));
                assert_eq!(walked, Ok(buf.len()));
            }
            let per = start.elapsed() / ROUNDS;
            // For scale: decoding the same frame (records are not copied).
            let frame = buf.clone().freeze();
            let start = Instant::now();
            for _ in 0..ROUNDS {
                let request = RequestKind::decode(ApiKey::Produce, &mut frame.clone(), v);
                assert!(std::hint::black_box(request).is_ok());
            }
            let decode = start.elapsed() / ROUNDS;
            eprintln!(
                "walk of a {} byte Produce v{v} ({what}): {per:?} (decode: {decode:?})",
                buf.len()
            );
            // Loose: a walk skips the records, so it costs nothing next to reading them.
            assert!(per.as_micros() < 500, "{what} v{v}: {per:?}");
        }
    }
}

/// `n` empty strings, compact or not, as an array's elements.
fn empty_strings(n: usize, compact: bool) -> Vec<u8> {
    let mut body = if compact {
        varint(n as u32 + 1)
    } else {
        (n as i32).to_be_bytes().to_vec()
    };
    body.extend(std::iter::repeat_n(
        if compact { 1 } else { 0 },
        n * if compact { 1 } else { 2 },
    ));
    body
}

#[test]
fn arrays_that_decode_past_the_budget_are_refused() {
    // DescribeGroups v5: one byte per empty group name, 32 once decoded. A hundred thousand
    // fit in the floor; a million (1 MB of body, 32 MB decoded) do not.
    for (n, accepted) in [(100_000, true), (1_000_000, false)] {
        let mut body = empty_strings(n, true);
        body.extend_from_slice(&[0, 0]); // include_authorized_operations, tagged fields
        assert_eq!(
            check(ApiKey::DescribeGroups, 5, &body).is_ok(),
            accepted,
            "{n}"
        );
        if !accepted {
            assert_refused(ApiKey::DescribeGroups, 5, &body, "in memory");
        }
    }
    // DescribeGroups v4: two bytes per empty name, 16x.
    let mut body = empty_strings(1_000_000, false);
    body.push(0);
    assert_refused(ApiKey::DescribeGroups, 4, &body, "groups at byte 0");
    // Fetch v12: three-byte topics (empty name, no partitions, no tags), ~100 bytes decoded.
    // replica_id, max_wait_ms, min_bytes, max_bytes, isolation_level, session id and epoch.
    let mut body = vec![0xff; 4];
    body.extend_from_slice(&[0; 21]);
    let n = 1_000_000;
    body.extend(varint(n + 1));
    for _ in 0..n {
        body.extend_from_slice(&[1, 1, 0]);
    }
    body.extend_from_slice(&[1, 1, 0]);
    assert_refused(ApiKey::Fetch, 12, &body, "topics at byte 25");
    // Unknown tagged fields, each two to four bytes: a map entry of ~80 bytes once decoded.
    let mut body = vec![1, 0, 0, 0];
    let n = 1_000_000;
    body.extend(varint(n));
    for tag in 0..n {
        body.extend(varint(tag));
        body.push(0);
    }
    assert_refused(ApiKey::Metadata, 9, &body, "tagged fields of body");
}

#[test]
fn header_tagged_fields_past_the_budget_are_refused() {
    // Header v2: key, version, correlation id, a non-compact client id, tagged fields.
    let mut frame = vec![0, 3, 0, 12, 0, 0, 0, 1, 0, 4, b't', b'e', b's', b't'];
    let fixed = frame.clone();
    frame.push(0);
    assert_eq!(check_header(2, &frame), Ok(()));
    let mut frame = fixed.clone();
    let n = 1_000_000;
    frame.extend(varint(n));
    for tag in 0..n {
        frame.extend(varint(tag));
        frame.push(0);
    }
    let err = check_header(2, &frame).unwrap_err();
    assert!(err.contains("tagged fields of header"), "{err}");
    // Too many claimed for the bytes, and a truncated client id.
    let mut frame = fixed.clone();
    frame.extend(varint(u32::MAX));
    assert!(check_header(2, &frame).is_err());
    assert!(check_header(2, &fixed[..12]).is_err());
    // Header v1 has no counts.
    assert_eq!(check_header(1, &fixed), Ok(()));
}

/// `topics` topics named `topic-N` of `per_topic` partitions each: `topic(name, partitions)`
/// builds a topic, `partition(index)` a partition.
fn topics_of<T, P>(
    topics: usize,
    per_topic: i32,
    topic: impl Fn(TopicName, Vec<P>) -> T,
    partition: impl Fn(i32) -> P,
) -> Vec<T> {
    (0..topics)
        .map(|t| {
            let name = TopicName(StrBytes::from_string(format!("topic-{t}")));
            topic(name, (0..per_topic).map(&partition).collect())
        })
        .collect()
}

/// Large requests as clients build them, in the oldest and newest supported versions: each
/// decodes to less than `DECODED_PER_BODY_BYTE` times its body without the floor's help.
#[test]
fn legitimate_requests_decode_within_the_budget() {
    let name = |prefix: &str, i: usize| StrBytes::from_string(format!("{prefix}-{i}"));
    let requests: Vec<(&str, ApiKey, RequestKind)> = vec![
        (
            "Produce, 1000 partitions of 1 KiB",
            ApiKey::Produce,
            RequestKind::Produce(ProduceRequest::default().with_acks(-1).with_topic_data(
                topics_of(
                    100,
                    10,
                    |n, p| {
                        produce::TopicProduceData::default()
                            .with_name(n)
                            .with_partition_data(p)
                    },
                    |i| {
                        produce::PartitionProduceData::default()
                            .with_index(i)
                            .with_records(Some(Bytes::from(vec![0u8; 1024])))
                    },
                ),
            )),
        ),
        (
            "Fetch, 10000 partitions",
            ApiKey::Fetch,
            RequestKind::Fetch(FetchRequest::default().with_topics(topics_of(
                1000,
                10,
                |n, p| {
                    fetch::FetchTopic::default()
                        .with_topic(n)
                        .with_partitions(p)
                },
                |i| fetch::FetchPartition::default().with_partition(i),
            ))),
        ),
        (
            "ListOffsets, 10000 partitions",
            ApiKey::ListOffsets,
            RequestKind::ListOffsets(ListOffsetsRequest::default().with_topics(topics_of(
                1000,
                10,
                |n, p| {
                    list_offsets::ListOffsetsTopic::default()
                        .with_name(n)
                        .with_partitions(p)
                },
                |i| list_offsets::ListOffsetsPartition::default().with_partition_index(i),
            ))),
        ),
        (
            "Metadata, 10000 topics",
            ApiKey::Metadata,
            RequestKind::Metadata(
                MetadataRequest::default().with_topics(Some(
                    (0..10_000)
                        .map(|t| {
                            metadata::MetadataRequestTopic::default()
                                .with_name(Some(TopicName(name("topic", t))))
                        })
                        .collect(),
                )),
            ),
        ),
        (
            "OffsetCommit, 10000 partitions",
            ApiKey::OffsetCommit,
            RequestKind::OffsetCommit(
                OffsetCommitRequest::default()
                    .with_group_id(group("consumers"))
                    .with_topics(topics_of(
                        1000,
                        10,
                        |n, p| {
                            offset_commit::OffsetCommitRequestTopic::default()
                                .with_name(n)
                                .with_partitions(p)
                        },
                        |i| {
                            offset_commit::OffsetCommitRequestPartition::default()
                                .with_partition_index(i)
                                .with_committed_offset(1000)
                        },
                    )),
            ),
        ),
        (
            "DeleteRecords, 10000 partitions",
            ApiKey::DeleteRecords,
            RequestKind::DeleteRecords(DeleteRecordsRequest::default().with_topics(topics_of(
                1000,
                10,
                |n, p| {
                    delete_records::DeleteRecordsTopic::default()
                        .with_name(n)
                        .with_partitions(p)
                },
                |i| delete_records::DeleteRecordsPartition::default().with_partition_index(i),
            ))),
        ),
        (
            "OffsetDelete, 10000 partitions",
            ApiKey::OffsetDelete,
            RequestKind::OffsetDelete(
                OffsetDeleteRequest::default()
                    .with_group_id(group("consumers"))
                    .with_topics(topics_of(
                        1,
                        10_000,
                        |n, p| {
                            offset_delete::OffsetDeleteRequestTopic::default()
                                .with_name(n)
                                .with_partitions(p)
                        },
                        |i| {
                            offset_delete::OffsetDeleteRequestPartition::default()
                                .with_partition_index(i)
                        },
                    )),
            ),
        ),
        (
            "DescribeGroups, 10000 groups",
            ApiKey::DescribeGroups,
            RequestKind::DescribeGroups(
                DescribeGroupsRequest::default()
                    .with_groups((0..10_000).map(|g| GroupId(name("group", g))).collect()),
            ),
        ),
        (
            "CreateTopics, 100 topics of 100 partitions on one broker",
            ApiKey::CreateTopics,
            RequestKind::CreateTopics(CreateTopicsRequest::default().with_topics(topics_of(
                100,
                100,
                |n, p| {
                    create_topics::CreatableTopic::default()
                        .with_name(n)
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                        .with_assignments(p)
                },
                |i| {
                    create_topics::CreatableReplicaAssignment::default()
                        .with_partition_index(i)
                        .with_broker_ids(vec![BrokerId(0)])
                },
            ))),
        ),
        (
            "CreatePartitions, 100 topics of 100 new partitions on one broker",
            ApiKey::CreatePartitions,
            RequestKind::CreatePartitions(CreatePartitionsRequest::default().with_topics(
                topics_of(
                    100,
                    100,
                    |n, p| {
                        create_partitions::CreatePartitionsTopic::default()
                            .with_name(n)
                            .with_count(200)
                            .with_assignments(Some(p))
                    },
                    |_| {
                        create_partitions::CreatePartitionsAssignment::default()
                            .with_broker_ids(vec![BrokerId(0)])
                    },
                ),
            )),
        ),
    ];
    for (what, api, request) in requests {
        // Explicit replica assignments, one broker id per partition, are the densest layouts
        // clients send: up to 13x, within the budget thanks to the floor up to ~130,000
        // partitions in one request.
        let assignments = matches!(api, ApiKey::CreateTopics | ApiKey::CreatePartitions);
        let (min, max) = crate::server::versions::supported_range(api).unwrap();
        for v in if min == max {
            vec![min]
        } else {
            vec![min, max]
        } {
            let mut buf = BytesMut::new();
            request.encode(&mut buf, v).unwrap();
            let (walked, decoded) = walk_estimating(api, v, &buf).unwrap();
            assert_eq!(walked, buf.len(), "{what} v{v}");
            let ratio = decoded as f64 / buf.len() as f64;
            eprintln!(
                "{what} v{v}: {} bytes decode to ~{decoded} ({ratio:.2}x)",
                buf.len()
            );
            assert!(
                assignments || decoded <= buf.len() * DECODED_PER_BODY_BYTE,
                "{what} v{v}: {ratio:.2}x"
            );
            assert!(decoded < decoded_budget(buf.len()), "{what} v{v}");
            if assignments {
                assert!(ratio < 14.0, "{what} v{v}: {ratio:.2}x");
                // A thousand times as many partitions as above would not be refused before
                // ~100x as many: the floor covers 1 MiB / (ratio - 8) bytes of body.
                let covered =
                    DECODED_FLOOR as f64 / (ratio - DECODED_PER_BODY_BYTE as f64).max(0.1);
                assert!(covered > 250_000.0, "{what} v{v}: {covered}");
            }
        }
    }
}

/// The estimate of a struct array element is the codec's own struct: checked on a few.
#[test]
fn struct_sizes_are_the_codecs() {
    let size_of_first =
        |api: ApiKey| match body_of(api)
            .unwrap()
            .fields
            .iter()
            .find_map(|f| match f.ty {
                Ty::Structs { size, .. } => Some(size),
                _ => None,
            }) {
            Some(size) => size,
            None => panic!("{api:?} has no struct array"),
        };
    assert_eq!(
        size_of_first(ApiKey::Produce),
        std::mem::size_of::<produce::TopicProduceData>()
    );
    assert_eq!(
        size_of_first(ApiKey::Fetch),
        std::mem::size_of::<fetch::FetchTopic>()
    );
    assert_eq!(
        size_of_first(ApiKey::Metadata),
        std::mem::size_of::<metadata::MetadataRequestTopic>()
    );
    assert_eq!(Ty::Str.decoded_size(), std::mem::size_of::<GroupId>());
    assert_eq!(
        Ty::Bytes.decoded_size(),
        std::mem::size_of::<Option<Bytes>>()
    );
}
