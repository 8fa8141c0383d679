//! Fetch: stored batches served as bytes, with long polling that wakes as soon as data arrives.

use kafka_protocol::error::ResponseError;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use tokio::time::Instant;

use crate::state::BrokerState;
use crate::wakeups::Watch;

/// Handles Fetch; waits up to `max_wait_ms` for `min_bytes` to accumulate.
pub(crate) async fn handle(
    state: &Arc<BrokerState>,
    _version: i16,
    req: FetchRequest,
) -> FetchResponse {
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    // The client's limit, never above the broker's own `fetch.max.bytes` (Kafka's 55 MiB): a
    // request claiming 2 GiB must not make the broker read and hold that much.
    let broker_max = state.config.settings().fetch_max_bytes;
    let max_bytes = if req.max_bytes <= 0 {
        broker_max
    } else {
        (req.max_bytes as usize).min(broker_max)
    };
    let min_bytes = req.min_bytes.max(0) as usize;
    // Registered before the first read, so an append between a read and the wait still wakes
    // this fetch (the wake-up is kept until it is awaited).
    let mut watch = Watch::new();
    for t in &req.topics {
        if let Some(topic) = state.topics.get(&t.topic) {
            for p in &t.partitions {
                if let Some(partition) = topic.partition(p.partition) {
                    watch.add(&partition);
                }
            }
        }
    }
    let req = Arc::new(req);
    loop {
        let stopping = state.stopping.notified();
        tokio::pin!(stopping);
        stopping.as_mut().enable();
        // Reads are disk I/O: they run on the I/O threads, never on the tokio workers.
        let (st, rq) = (Arc::clone(state), Arc::clone(&req));
        let (responses, total, errors) = state.io.run(move || gather(&st, &rq, max_bytes)).await;
        if total >= min_bytes || errors || Instant::now() >= deadline || state.is_shutting_down() {
            return FetchResponse::default()
                .with_session_id(0)
                .with_responses(responses);
        }
        tokio::select! {
            biased;
            _ = watch.changed() => {}
            _ = &mut stopping => {}
            _ = tokio::time::sleep_until(deadline) => {
                // Nothing was appended to these partitions since the read (a wake-up is kept
                // until awaited), so reading again would find the same: answer with it. Idle
                // long polls expiring are most of a quiet broker's fetch work.
                return FetchResponse::default()
                    .with_session_id(0)
                    .with_responses(responses);
            }
        }
    }
}

fn gather(
    state: &BrokerState,
    req: &FetchRequest,
    max_bytes: usize,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut total = 0usize;
    let mut errors = false;
    let read_committed = req.isolation_level == 1;
    let responses = req
        .topics
        .iter()
        .map(|t| {
            let topic = state.topics.get(&t.topic);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut out = PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                        .with_preferred_read_replica(BrokerId(-1))
                        .with_aborted_transactions(read_committed.then(Vec::new))
                        .with_records(Some(Bytes::new()));
                    let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition)) else {
                        errors = true;
                        return out.with_error_code(ResponseError::UnknownTopicOrPartition.code());
                    };
                    if let Err(e) = partition.check_leader_epoch(p.current_leader_epoch) {
                        errors = true;
                        return out.with_error_code(e.code());
                    }
                    let (hw, start, plan) = {
                        let log = partition.log.lock();
                        let hw = log.next_offset();
                        let start = log.log_start_offset();
                        let plan = (p.fetch_offset >= start && p.fetch_offset < hw)
                            .then(|| log.read_plan(p.fetch_offset));
                        (hw, start, plan)
                    };
                    out = out
                        .with_high_watermark(hw)
                        .with_last_stable_offset(hw)
                        .with_log_start_offset(start);
                    if p.fetch_offset < start || p.fetch_offset > hw {
                        errors = true;
                        return out.with_error_code(ResponseError::OffsetOutOfRange.code());
                    }
                    let Some(plan) = plan else { return out };
                    let budget = max_bytes.saturating_sub(total);
                    if budget == 0 && total > 0 {
                        return out;
                    }
                    let limit = (p.partition_max_bytes.max(0) as usize).min(budget.max(1));
                    match plan.read(p.fetch_offset, limit) {
                        Ok(data) => {
                            total += data.len();
                            out.with_records(Some(data))
                        }
                        Err(e) => {
                            tracing::error!(topic = %&*t.topic, partition = p.partition, error = %e, "read failed");
                            errors = true;
                            out.with_error_code(ResponseError::KafkaStorageError.code())
                        }
                    }
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    (responses, total, errors)
}
