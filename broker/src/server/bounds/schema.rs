//! The request body layouts the bounds walker follows, one table per API.
//!
//! Written from the Kafka protocol definitions (the `*Request.json` message specs, as generated
//! into kafka-protocol 0.18's `messages/*_request.rs`). Only what the walk needs is kept: each
//! field's wire type and the versions it is present in, and for an array of structs the size of
//! the codec's struct it decodes to (`structs::<T>`), for the decoded-size estimate. Names are
//! for error messages. Nullable is not recorded: the walker accepts a null length anywhere and
//! the decoder refuses it where the protocol does not allow it. Whether a string, bytes or array length is a fixed-width int
//! or a compact varint, and whether structs end in a tagged-field section, follows from the
//! API's first flexible version.
//!
//! Every table covers exactly the versions in `versions::SUPPORTED`; the walker refuses others
//! so that a version added there without checking its layout here fails the tests instead of
//! being walked with a stale table.
//!
//! The tables are laid out by hand (`rustfmt::skip`): one field a line, nested structs
//! indented under the array that holds them.

use std::mem::size_of;
use std::ops::RangeInclusive;

use bytes::Bytes;
use kafka_protocol::messages::{
    alter_configs_request as alter_configs, create_partitions_request as create_partitions,
    create_topics_request as create_topics, delete_records_request as delete_records,
    delete_topics_request as delete_topics, describe_configs_request as describe_configs,
    fetch_request as fetch, incremental_alter_configs_request as incremental,
    join_group_request as join_group, leave_group_request as leave_group,
    list_offsets_request as list_offsets, metadata_request as metadata,
    offset_commit_request as offset_commit, offset_delete_request as offset_delete,
    offset_fetch_request as offset_fetch, offset_for_leader_epoch_request as epoch,
    produce_request as produce, sync_group_request as sync_group, ApiKey,
};
use kafka_protocol::protocol::StrBytes;

/// A field's wire type.
#[derive(Debug, Clone, Copy)]
pub(super) enum Ty {
    /// A fixed number of bytes: Int8/Boolean 1, Int16 2, Int32 4, Int64 8, Uuid 16.
    Fixed(u8),
    /// String: an Int16 length, or a compact (UnsignedVarInt, length + 1) one when flexible.
    Str,
    /// Bytes or records: an Int32 length, or a compact one when flexible.
    Bytes,
    /// An array of scalars (Int32, String): an Int32 count, or compact when flexible.
    Array(&'static Ty),
    /// An array of structs; in flexible versions each element ends with tagged fields.
    /// `size` is what one element takes in memory once decoded: `size_of` the codec's struct
    /// (its strings, bytes and arrays inline as handles; what arrays hold is counted apart).
    Structs {
        size: usize,
        fields: &'static [Field],
    },
}

impl Ty {
    /// What one element of an array of this type takes in memory once decoded. Strings and
    /// bytes are handles into the frame (the codec slices the frame's `Bytes`, it does not
    /// copy), so their contents cost nothing more.
    pub(super) const fn decoded_size(&self) -> usize {
        match self {
            Ty::Fixed(n) => *n as usize,
            Ty::Str => size_of::<StrBytes>(),
            Ty::Bytes => size_of::<Bytes>(),
            Ty::Array(_) => size_of::<Vec<u8>>(),
            Ty::Structs { size, .. } => *size,
        }
    }
}

/// An array of structs decoded as the codec's `T`.
const fn structs<T>(fields: &'static [Field]) -> Ty {
    Ty::Structs {
        size: size_of::<T>(),
        fields,
    }
}

/// One field of a struct and the versions it is present in (inclusive).
#[derive(Debug, Clone, Copy)]
pub(super) struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub min: i16,
    pub max: i16,
}

impl Field {
    /// Present from `version` on.
    const fn since(mut self, version: i16) -> Field {
        self.min = version;
        self
    }

    /// Present up to and including `version`.
    const fn until(mut self, version: i16) -> Field {
        self.max = version;
        self
    }

    pub(super) fn present_in(&self, version: i16) -> bool {
        self.min <= version && version <= self.max
    }
}

/// A field present in every version.
const fn f(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        min: 0,
        max: i16::MAX,
    }
}

/// The request body of one API.
#[derive(Debug)]
pub(super) struct Body {
    /// The versions this table was checked against (`versions::SUPPORTED`).
    pub min: i16,
    pub max: i16,
    /// First flexible version (compact lengths, tagged fields); `i16::MAX` for none.
    pub flexible: i16,
    pub fields: &'static [Field],
}

const BOOL: Ty = Ty::Fixed(1);
const I8: Ty = Ty::Fixed(1);
const I16: Ty = Ty::Fixed(2);
const I32: Ty = Ty::Fixed(4);
const I64: Ty = Ty::Fixed(8);
const UUID: Ty = Ty::Fixed(16);
const STR: Ty = Ty::Str;
const BYTES: Ty = Ty::Bytes;
const I32S: Ty = Ty::Array(&I32);
const STRS: Ty = Ty::Array(&STR);
const NEVER: i16 = i16::MAX;

/// The body of an API whose `versions` were checked, flexible from version `flexible`.
const fn body(versions: RangeInclusive<i16>, flexible: i16, fields: &'static [Field]) -> Body {
    Body {
        min: *versions.start(),
        max: *versions.end(),
        flexible,
        fields,
    }
}

/// The body layout of `api`, if the broker implements it.
pub(super) fn body_of(api: ApiKey) -> Option<&'static Body> {
    Some(match api {
        ApiKey::Produce => &PRODUCE,
        ApiKey::Fetch => &FETCH,
        ApiKey::ListOffsets => &LIST_OFFSETS,
        ApiKey::Metadata => &METADATA,
        ApiKey::OffsetCommit => &OFFSET_COMMIT,
        ApiKey::OffsetFetch => &OFFSET_FETCH,
        ApiKey::FindCoordinator => &FIND_COORDINATOR,
        ApiKey::JoinGroup => &JOIN_GROUP,
        ApiKey::Heartbeat => &HEARTBEAT,
        ApiKey::LeaveGroup => &LEAVE_GROUP,
        ApiKey::SyncGroup => &SYNC_GROUP,
        ApiKey::DescribeGroups => &DESCRIBE_GROUPS,
        ApiKey::ListGroups => &LIST_GROUPS,
        ApiKey::ApiVersions => &API_VERSIONS,
        ApiKey::CreateTopics => &CREATE_TOPICS,
        ApiKey::DeleteTopics => &DELETE_TOPICS,
        ApiKey::DeleteRecords => &DELETE_RECORDS,
        ApiKey::DeleteGroups => &DELETE_GROUPS,
        ApiKey::OffsetDelete => &OFFSET_DELETE,
        ApiKey::InitProducerId => &INIT_PRODUCER_ID,
        ApiKey::OffsetForLeaderEpoch => &OFFSET_FOR_LEADER_EPOCH,
        ApiKey::DescribeConfigs => &DESCRIBE_CONFIGS,
        ApiKey::AlterConfigs => &ALTER_CONFIGS,
        ApiKey::CreatePartitions => &CREATE_PARTITIONS,
        ApiKey::IncrementalAlterConfigs => &INCREMENTAL_ALTER_CONFIGS,
        ApiKey::DescribeCluster => &DESCRIBE_CLUSTER,
        _ => return None,
    })
}

// Produce (0). Records are a Bytes field: the walk skips them by their length.
#[rustfmt::skip]
static PRODUCE: Body = body(3..=9, 9, &[
    f("transactional_id", STR),
    f("acks", I16),
    f("timeout_ms", I32),
    f("topic_data", structs::<produce::TopicProduceData>(&[
        f("name", STR).until(12),
        f("partition_data", structs::<produce::PartitionProduceData>(&[
            f("index", I32),
            f("records", BYTES),
        ])),
    ])),
]);

// Fetch (1). Top-level tag 0 (cluster_id, v12+) is skipped by its size like any tagged field.
#[rustfmt::skip]
static FETCH: Body = body(4..=12, 12, &[
    f("replica_id", I32).until(14),
    f("max_wait_ms", I32),
    f("min_bytes", I32),
    f("max_bytes", I32),
    f("isolation_level", I8),
    f("session_id", I32).since(7),
    f("session_epoch", I32).since(7),
    f("topics", structs::<fetch::FetchTopic>(&[
        f("topic", STR).until(12),
        f("partitions", structs::<fetch::FetchPartition>(&[
            f("partition", I32),
            f("current_leader_epoch", I32).since(9),
            f("fetch_offset", I64),
            f("last_fetched_epoch", I32).since(12),
            f("log_start_offset", I64).since(5),
            f("partition_max_bytes", I32),
        ])),
    ])),
    f("forgotten_topics_data", structs::<fetch::ForgottenTopic>(&[
        f("topic", STR).until(12),
        f("partitions", I32S),
    ])).since(7),
    f("rack_id", STR).since(11),
]);

// ListOffsets (2).
#[rustfmt::skip]
static LIST_OFFSETS: Body = body(1..=7, 6, &[
    f("replica_id", I32),
    f("isolation_level", I8).since(2),
    f("topics", structs::<list_offsets::ListOffsetsTopic>(&[
        f("name", STR),
        f("partitions", structs::<list_offsets::ListOffsetsPartition>(&[
            f("partition_index", I32),
            f("current_leader_epoch", I32).since(4),
            f("timestamp", I64),
        ])),
    ])),
]);

// Metadata (3).
#[rustfmt::skip]
static METADATA: Body = body(0..=12, 9, &[
    f("topics", structs::<metadata::MetadataRequestTopic>(&[
        f("topic_id", UUID).since(10),
        f("name", STR),
    ])),
    f("allow_auto_topic_creation", BOOL).since(4),
    f("include_cluster_authorized_operations", BOOL).since(8).until(10),
    f("include_topic_authorized_operations", BOOL).since(8),
]);

// OffsetCommit (8).
#[rustfmt::skip]
static OFFSET_COMMIT: Body = body(2..=8, 8, &[
    f("group_id", STR),
    f("generation_id_or_member_epoch", I32),
    f("member_id", STR),
    f("group_instance_id", STR).since(7),
    f("retention_time_ms", I64).until(4),
    f("topics", structs::<offset_commit::OffsetCommitRequestTopic>(&[
        f("name", STR),
        f("partitions", structs::<offset_commit::OffsetCommitRequestPartition>(&[
            f("partition_index", I32),
            f("committed_offset", I64),
            f("committed_leader_epoch", I32).since(6),
            f("committed_metadata", STR),
        ])),
    ])),
]);

// OffsetFetch (9). v8 replaced the single group with an array of groups.
#[rustfmt::skip]
static OFFSET_FETCH: Body = body(1..=8, 6, &[
    f("group_id", STR).until(7),
    f("topics", structs::<offset_fetch::OffsetFetchRequestTopic>(&[
        f("name", STR),
        f("partition_indexes", I32S),
    ])).until(7),
    f("groups", structs::<offset_fetch::OffsetFetchRequestGroup>(&[
        f("group_id", STR),
        f("member_id", STR).since(9),
        f("member_epoch", I32).since(9),
        f("topics", structs::<offset_fetch::OffsetFetchRequestTopics>(&[
            f("name", STR),
            f("partition_indexes", I32S),
        ])),
    ])).since(8),
    f("require_stable", BOOL).since(7),
]);

// FindCoordinator (10). v4 batches the keys.
#[rustfmt::skip]
static FIND_COORDINATOR: Body = body(0..=4, 3, &[
    f("key", STR).until(3),
    f("key_type", I8).since(1),
    f("coordinator_keys", STRS).since(4),
]);

// JoinGroup (11).
#[rustfmt::skip]
static JOIN_GROUP: Body = body(0..=7, 6, &[
    f("group_id", STR),
    f("session_timeout_ms", I32),
    f("rebalance_timeout_ms", I32).since(1),
    f("member_id", STR),
    f("group_instance_id", STR).since(5),
    f("protocol_type", STR),
    f("protocols", structs::<join_group::JoinGroupRequestProtocol>(&[
        f("name", STR),
        f("metadata", BYTES),
    ])),
    f("reason", STR).since(8),
]);

// Heartbeat (12).
#[rustfmt::skip]
static HEARTBEAT: Body = body(0..=4, 4, &[
    f("group_id", STR),
    f("generation_id", I32),
    f("member_id", STR),
    f("group_instance_id", STR).since(3),
]);

// LeaveGroup (13). v3 replaced the single member with an array of members.
#[rustfmt::skip]
static LEAVE_GROUP: Body = body(0..=4, 4, &[
    f("group_id", STR),
    f("member_id", STR).until(2),
    f("members", structs::<leave_group::MemberIdentity>(&[
        f("member_id", STR),
        f("group_instance_id", STR),
        f("reason", STR).since(5),
    ])).since(3),
]);

// SyncGroup (14).
#[rustfmt::skip]
static SYNC_GROUP: Body = body(0..=5, 4, &[
    f("group_id", STR),
    f("generation_id", I32),
    f("member_id", STR),
    f("group_instance_id", STR).since(3),
    f("protocol_type", STR).since(5),
    f("protocol_name", STR).since(5),
    f("assignments", structs::<sync_group::SyncGroupRequestAssignment>(&[
        f("member_id", STR),
        f("assignment", BYTES),
    ])),
]);

// DescribeGroups (15).
#[rustfmt::skip]
static DESCRIBE_GROUPS: Body = body(0..=5, 5, &[
    f("groups", STRS),
    f("include_authorized_operations", BOOL).since(3),
]);

// ListGroups (16). v0-2 have an empty body.
#[rustfmt::skip]
static LIST_GROUPS: Body = body(0..=4, 3, &[
    f("states_filter", STRS).since(4),
    f("types_filter", STRS).since(5),
]);

// ApiVersions (18). v0-2 have an empty body.
#[rustfmt::skip]
static API_VERSIONS: Body = body(0..=3, 3, &[
    f("client_software_name", STR).since(3),
    f("client_software_version", STR).since(3),
]);

// CreateTopics (19).
#[rustfmt::skip]
static CREATE_TOPICS: Body = body(2..=7, 5, &[
    f("topics", structs::<create_topics::CreatableTopic>(&[
        f("name", STR),
        f("num_partitions", I32),
        f("replication_factor", I16),
        f("assignments", structs::<create_topics::CreatableReplicaAssignment>(&[
            f("partition_index", I32),
            f("broker_ids", I32S),
        ])),
        f("configs", structs::<create_topics::CreatableTopicConfig>(&[
            f("name", STR),
            f("value", STR),
        ])),
    ])),
    f("timeout_ms", I32),
    f("validate_only", BOOL),
]);

// DeleteTopics (20). v6 replaced the names with (name, id) structs.
#[rustfmt::skip]
static DELETE_TOPICS: Body = body(1..=6, 4, &[
    f("topics", structs::<delete_topics::DeleteTopicState>(&[
        f("name", STR),
        f("topic_id", UUID),
    ])).since(6),
    f("topic_names", STRS).until(5),
    f("timeout_ms", I32),
]);

// DeleteRecords (21).
#[rustfmt::skip]
static DELETE_RECORDS: Body = body(0..=2, 2, &[
    f("topics", structs::<delete_records::DeleteRecordsTopic>(&[
        f("name", STR),
        f("partitions", structs::<delete_records::DeleteRecordsPartition>(&[
            f("partition_index", I32),
            f("offset", I64),
        ])),
    ])),
    f("timeout_ms", I32),
]);

// InitProducerId (22).
#[rustfmt::skip]
static INIT_PRODUCER_ID: Body = body(0..=4, 2, &[
    f("transactional_id", STR),
    f("transaction_timeout_ms", I32),
    f("producer_id", I64).since(3),
    f("producer_epoch", I16).since(3),
]);

// OffsetForLeaderEpoch (23).
#[rustfmt::skip]
static OFFSET_FOR_LEADER_EPOCH: Body = body(2..=4, 4, &[
    f("replica_id", I32).since(3),
    f("topics", structs::<epoch::OffsetForLeaderTopic>(&[
        f("topic", STR),
        f("partitions", structs::<epoch::OffsetForLeaderPartition>(&[
            f("partition", I32),
            f("current_leader_epoch", I32),
            f("leader_epoch", I32),
        ])),
    ])),
]);

// DescribeConfigs (32).
#[rustfmt::skip]
static DESCRIBE_CONFIGS: Body = body(1..=4, 4, &[
    f("resources", structs::<describe_configs::DescribeConfigsResource>(&[
        f("resource_type", I8),
        f("resource_name", STR),
        f("configuration_keys", STRS),
    ])),
    f("include_synonyms", BOOL),
    f("include_documentation", BOOL).since(3),
]);

// AlterConfigs (33).
#[rustfmt::skip]
static ALTER_CONFIGS: Body = body(0..=2, 2, &[
    f("resources", structs::<alter_configs::AlterConfigsResource>(&[
        f("resource_type", I8),
        f("resource_name", STR),
        f("configs", structs::<alter_configs::AlterableConfig>(&[
            f("name", STR),
            f("value", STR),
        ])),
    ])),
    f("validate_only", BOOL),
]);

// CreatePartitions (37).
#[rustfmt::skip]
static CREATE_PARTITIONS: Body = body(0..=3, 2, &[
    f("topics", structs::<create_partitions::CreatePartitionsTopic>(&[
        f("name", STR),
        f("count", I32),
        f("assignments", structs::<create_partitions::CreatePartitionsAssignment>(&[
            f("broker_ids", I32S),
        ])),
    ])),
    f("timeout_ms", I32),
    f("validate_only", BOOL),
]);

// DeleteGroups (42).
#[rustfmt::skip]
static DELETE_GROUPS: Body = body(0..=2, 2, &[
    f("groups_names", STRS),
]);

// IncrementalAlterConfigs (44).
#[rustfmt::skip]
static INCREMENTAL_ALTER_CONFIGS: Body = body(0..=1, 1, &[
    f("resources", structs::<incremental::AlterConfigsResource>(&[
        f("resource_type", I8),
        f("resource_name", STR),
        f("configs", structs::<incremental::AlterableConfig>(&[
            f("name", STR),
            f("config_operation", I8),
            f("value", STR),
        ])),
    ])),
    f("validate_only", BOOL),
]);

// OffsetDelete (47). Never flexible.
#[rustfmt::skip]
static OFFSET_DELETE: Body = body(0..=0, NEVER, &[
    f("group_id", STR),
    f("topics", structs::<offset_delete::OffsetDeleteRequestTopic>(&[
        f("name", STR),
        f("partitions", structs::<offset_delete::OffsetDeleteRequestPartition>(&[
            f("partition_index", I32),
        ])),
    ])),
]);

// DescribeCluster (60). Flexible from v0.
#[rustfmt::skip]
static DESCRIBE_CLUSTER: Body = body(0..=1, 0, &[
    f("include_cluster_authorized_operations", BOOL),
    f("endpoint_type", I8).since(1),
    f("include_fenced_brokers", BOOL).since(2),
]);
