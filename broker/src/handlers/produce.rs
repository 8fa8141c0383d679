//! Produce: validate batches, check idempotence, assign offsets in place, append.

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::records::RecordBatchDecoder;

use super::sb;
use crate::log::batch::{validate_record_set, BatchHeader};
use crate::log::codec::recompress;
use crate::state::BrokerState;
use crate::topics::Partition;
use crate::util::now_ms;

const INVALID_RECORD: i16 = 87;

/// Handles Produce; returns `None` for acks=0, which gets no response at all.
pub(crate) fn handle(
    state: &BrokerState,
    _version: i16,
    req: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    let now = now_ms();
    let mut appended = false;
    let transactional = req.transactional_id.is_some();
    let responses = req
        .topic_data
        .into_iter()
        .map(|t| {
            let topic = state.topics.get(&t.name);
            let partition_responses = t
                .partition_data
                .into_iter()
                .map(|p| {
                    let resp = PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1);
                    let result = if !matches!(acks, -1..=1) {
                        Err((21, format!("acks={acks} is not one of -1, 0, 1")))
                    } else if transactional {
                        Err((
                            INVALID_RECORD,
                            "transactional produce is not supported by this broker yet".into(),
                        ))
                    } else {
                        match topic.as_ref().and_then(|t| t.partition(p.index)) {
                            None => Err((3, format!("unknown topic or partition {}-{}", &*t.name, p.index))),
                            Some(partition) => append(&partition, p.records, now),
                        }
                    };
                    match result {
                        Ok((base_offset, log_append_time, log_start)) => {
                            appended = true;
                            resp.with_base_offset(base_offset)
                                .with_log_append_time_ms(log_append_time)
                                .with_log_start_offset(log_start)
                        }
                        Err((code, message)) => {
                            tracing::debug!(topic = %&*t.name, partition = p.index, code, "produce rejected: {message}");
                            resp.with_error_code(code).with_error_message(Some(sb(message)))
                        }
                    }
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_partition_responses(partition_responses)
        })
        .collect();
    if appended {
        state.data_arrived.notify_waiters();
    }
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}

fn append(
    partition: &Partition,
    records: Option<Bytes>,
    now: i64,
) -> Result<(i64, i64, i64), (i16, String)> {
    let records = records.ok_or((
        INVALID_RECORD,
        "produce request without records".to_string(),
    ))?;
    let config = partition.log.lock().config().clone();
    let mut headers = validate_record_set(&records, config.max_message_bytes)
        .map_err(|e| (e.code(), e.to_string()))?;
    if headers.iter().any(BatchHeader::is_transactional) {
        return Err((
            INVALID_RECORD,
            "transactional batches are not supported by this broker yet".into(),
        ));
    }
    if config.cleanup_policy.compact {
        check_keys(&records)?;
    }
    let records = match config.compression {
        Some(target) if headers.iter().any(|h| h.compression() != target) => {
            let recompressed = recompress_all(&records, &headers, target)?;
            // Lengths, attributes and CRCs changed: the headers must describe the new bytes.
            headers = validate_record_set(&recompressed, usize::MAX)
                .map_err(|e| (e.code(), e.to_string()))?;
            recompressed
        }
        _ => records,
    };
    let mut log = partition.log.lock();
    let info = log
        .append(&records, &mut headers, now)
        .map_err(|e| (e.code(), e.message()))?;
    Ok((
        info.base_offset,
        info.log_append_time,
        log.log_start_offset(),
    ))
}

/// Re-encodes every batch in the topic's `compression.type` (the slow path, off by default).
fn recompress_all(
    records: &Bytes,
    headers: &[BatchHeader],
    target: u8,
) -> Result<Bytes, (i16, String)> {
    let mut out = Vec::with_capacity(records.len());
    let mut pos = 0;
    for h in headers {
        let raw = &records[pos..pos + h.size()];
        if h.compression() == target {
            out.extend_from_slice(raw);
        } else {
            let batch = recompress(h, raw, target)
                .map_err(|e| (2, format!("cannot recompress batch: {e}")))?;
            out.extend_from_slice(&batch);
        }
        pos += h.size();
    }
    Ok(Bytes::from(out))
}

/// Compacted topics need a key on every record (Kafka answers INVALID_RECORD otherwise).
fn check_keys(records: &Bytes) -> Result<(), (i16, String)> {
    let mut buf = records.clone();
    while !buf.is_empty() {
        let set = RecordBatchDecoder::decode(&mut buf)
            .map_err(|e| (2, format!("cannot decode record batch: {e}")))?;
        if set.records.iter().any(|r| r.key.is_none()) {
            return Err((
                INVALID_RECORD,
                "Compacted topic cannot accept message without key".into(),
            ));
        }
    }
    Ok(())
}
