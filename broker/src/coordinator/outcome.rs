//! What the coordinator answers, in its own terms. The coordinator knows no wire messages:
//! the group handlers turn these into JoinGroup/SyncGroup/DescribeGroups responses for the
//! request's version, so protocol details stay in one place and the state machine can be
//! tested without building responses.

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

/// A member as the leader sees it in a JoinGroup answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JoinedMember {
    /// The member's id in this generation.
    pub member_id: String,
    /// Its `group.instance.id`, for static members.
    pub instance_id: Option<String>,
    /// Its subscription metadata for the selected protocol.
    pub metadata: Bytes,
}

/// The answer to a JoinGroup.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct JoinOutcome {
    /// Why the join failed; `None` when it succeeded.
    pub error: Option<ResponseError>,
    /// The generation joined, -1 on failure.
    pub generation_id: i32,
    /// The group's protocol type (`consumer`, `connect`, ...), unset on failure.
    pub protocol_type: Option<String>,
    /// The selected assignment protocol, empty when there is none.
    pub protocol_name: String,
    /// The leader's member id, empty when there is none.
    pub leader: String,
    /// The member id the client must use from now on (also on MEMBER_ID_REQUIRED).
    pub member_id: String,
    /// Every member with its metadata, for the leader only; empty for followers.
    pub members: Vec<JoinedMember>,
}

impl JoinOutcome {
    /// A refused join: only the error and the member id mean anything.
    pub fn failed(error: ResponseError, member_id: &str) -> Self {
        JoinOutcome {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: String::new(),
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// The answer to a SyncGroup.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyncOutcome {
    /// Why the sync failed; `None` when it succeeded.
    pub error: Option<ResponseError>,
    /// The group's protocol type, unset on failure.
    pub protocol_type: Option<String>,
    /// The selected assignment protocol, unset on failure.
    pub protocol_name: Option<String>,
    /// This member's assignment as the leader sent it.
    pub assignment: Bytes,
}

impl SyncOutcome {
    /// A refused sync: only the error means anything.
    pub fn failed(error: ResponseError) -> Self {
        SyncOutcome {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DescribedMember {
    /// The member's id.
    pub member_id: String,
    /// Its `group.instance.id`, for static members.
    pub instance_id: Option<String>,
    /// The client id it joined with.
    pub client_id: String,
    /// The address it joined from, as `/ip`.
    pub client_host: String,
    /// Its metadata for the selected protocol.
    pub metadata: Bytes,
    /// Its current assignment.
    pub assignment: Bytes,
}

/// What DescribeGroups says about one group.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GroupDescription {
    /// The group's id.
    pub group_id: String,
    /// Kafka's state name; `Dead` for a group the broker does not know.
    pub state: &'static str,
    /// The group's protocol type, empty when unknown.
    pub protocol_type: String,
    /// The selected assignment protocol, empty when there is none.
    pub protocol: String,
    /// The current members.
    pub members: Vec<DescribedMember>,
}
