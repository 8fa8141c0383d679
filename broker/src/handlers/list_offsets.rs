//! ListOffsets (earliest, latest, by timestamp, max timestamp) and OffsetForLeaderEpoch.

use kafka_protocol::error::ResponseError;
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

use crate::log::TimestampLookup;
use crate::state::BrokerState;

/// What a ListOffsets partition gets under the partition lock: the offset itself, or the
/// timestamp lookup to scan once the lock is released.
enum Lookup {
    Known(i64),
    Scan(TimestampLookup),
}

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
                        .with_offset(-1);
                    let Some(partition) =
                        topic.as_ref().and_then(|t| t.partition(p.partition_index))
                    else {
                        return out.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if let Err(e) = partition.check_leader_epoch(p.current_leader_epoch) {
                        return out.with_error_code(e.code());
                    }
                    let lookup = {
                        let log = partition.log.lock();
                        match p.timestamp {
                            LATEST => Lookup::Known(log.next_offset()),
                            EARLIEST => Lookup::Known(log.log_start_offset()),
                            MAX_TIMESTAMP => Lookup::Scan(log.max_timestamp_lookup()),
                            ts if ts >= 0 => Lookup::Scan(log.timestamp_lookup(ts)),
                            _ => return out.with_error_code(ResponseError::InvalidRequest.code()),
                        }
                    };
                    let found = match lookup {
                        Lookup::Known(offset) => Ok(Some((offset, -1))),
                        // Reads and decodes batches: outside the partition lock, so that
                        // appends to the partition are not held up by it.
                        Lookup::Scan(scan) => scan.find(),
                    };
                    match found {
                        // The codec refuses non-default values for fields a version lacks.
                        Ok(Some((offset, ts))) if version >= 4 => out
                            .with_offset(offset)
                            .with_timestamp(ts)
                            .with_leader_epoch(partition.log.lock().epoch_for_offset(offset)),
                        Ok(Some((offset, ts))) => out.with_offset(offset).with_timestamp(ts),
                        Ok(None) => out,
                        Err(e) => {
                            tracing::error!(error = %e, "offset lookup failed");
                            out.with_error_code(ResponseError::KafkaStorageError.code())
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

/// Handles OffsetForLeaderEpoch from the partition's leader epoch cache: where the requested
/// epoch ended, so a client can tell whether the offsets it consumed were truncated away.
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
                    let Some(part) = topic.as_ref().and_then(|t| t.partition(p.partition)) else {
                        return out.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if let Err(e) = part.check_leader_epoch(p.current_leader_epoch) {
                        return out.with_error_code(e.code());
                    }
                    let (epoch, end) = part.log.lock().end_offset_for_epoch(p.leader_epoch);
                    out.with_leader_epoch(epoch).with_end_offset(end)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
