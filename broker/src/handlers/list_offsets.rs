//! ListOffsets (earliest, latest, by timestamp, max timestamp) and OffsetForLeaderEpoch.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
};

use crate::log::LEADER_EPOCH;
use crate::state::BrokerState;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// Handles ListOffsets.
pub(crate) fn handle(
    state: &BrokerState,
    version: i16,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = state.topics.get(&t.name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let out = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        // The codec refuses non-default values for fields a version lacks.
                        .with_leader_epoch(if version >= 4 { LEADER_EPOCH } else { -1 });
                    let Some(partition) =
                        topic.as_ref().and_then(|t| t.partition(p.partition_index))
                    else {
                        return out.with_error_code(3);
                    };
                    let log = partition.log.lock();
                    let found = match p.timestamp {
                        LATEST => Ok(Some((log.next_offset(), -1))),
                        EARLIEST => Ok(Some((log.log_start_offset(), -1))),
                        MAX_TIMESTAMP => log.max_timestamp_offset(),
                        ts if ts >= 0 => log.offset_for_timestamp(ts),
                        _ => return out.with_error_code(42),
                    };
                    match found {
                        Ok(Some((offset, ts))) => out.with_offset(offset).with_timestamp(ts),
                        Ok(None) => out,
                        Err(e) => {
                            tracing::error!(error = %e, "offset lookup failed");
                            out.with_error_code(56)
                        }
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// Handles OffsetForLeaderEpoch: one broker has had one leader epoch, ending at the log end.
pub(crate) fn offset_for_leader_epoch(
    state: &BrokerState,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = state.topics.get(&t.topic);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let out = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    match topic.as_ref().and_then(|t| t.partition(p.partition)) {
                        None => out.with_error_code(3),
                        Some(_) if p.current_leader_epoch > LEADER_EPOCH => out.with_error_code(74),
                        Some(part) if p.leader_epoch >= 0 && p.leader_epoch <= LEADER_EPOCH => {
                            let end = part.log.lock().next_offset();
                            out.with_leader_epoch(LEADER_EPOCH).with_end_offset(end)
                        }
                        Some(_) => out,
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
