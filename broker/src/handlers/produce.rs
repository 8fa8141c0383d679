//! Produce: translate the request into appends (`partition.rs` validates and stores) and
//! the results into the response.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};

use crate::log::AppendError;
use crate::partition::{Appended, ClientLimits};
use crate::state::BrokerState;
use crate::util::now_ms;
use crate::util::sb;

/// Handles Produce; returns `None` for acks=0, which gets no response at all.
pub(crate) fn handle(
    state: &BrokerState,
    version: i16,
    req: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    let now = now_ms();
    let transactional = req.transactional_id.is_some();
    let limits = ClientLimits {
        produce_version: version,
        max_decompressed_bytes: state.config.settings().message_max_decompressed_bytes,
    };
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
                    let result: Result<Appended, Refusal> = if !matches!(acks, -1..=1) {
                        Err(Refusal::new(
                            ResponseError::InvalidRequiredAcks,
                            format!("acks={acks} is not one of -1, 0, 1"),
                        ))
                    } else if transactional {
                        Err(Refusal::new(
                            ResponseError::InvalidRecord,
                            "transactional produce is not supported by this broker yet",
                        ))
                    } else {
                        match (topic.as_ref().and_then(|t| t.partition(p.index)), p.records) {
                            (None, _) => Err(Refusal::new(
                                ResponseError::UnknownTopicOrPartition,
                                format!("unknown topic or partition {}-{}", &*t.name, p.index),
                            )),
                            (Some(_), None) => Err(Refusal::new(
                                ResponseError::InvalidRecord,
                                "produce request without records",
                            )),
                            (Some(partition), Some(records)) => partition
                                .append_produced(records, limits, now)
                                .map_err(Refusal::from),
                        }
                    };
                    match result {
                        Ok(done) => {
                            resp.with_base_offset(done.info.base_offset)
                                .with_log_append_time_ms(done.info.log_append_time)
                                .with_log_start_offset(done.log_start_offset)
                        }
                        Err(r) => {
                            tracing::debug!(topic = %&*t.name, partition = p.index, code = r.code, "produce rejected: {}", r.message);
                            resp.with_error_code(r.code)
                                .with_error_message(Some(sb(r.message)))
                                .with_record_errors(r.records)
                        }
                    }
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(t.name)
                .with_partition_responses(partition_responses)
        })
        .collect();
    if acks == 0 {
        return None;
    }
    Some(ProduceResponse::default().with_responses(responses))
}

/// A partition's refusal as the response carries it.
struct Refusal {
    code: i16,
    message: String,
    records: Vec<BatchIndexAndErrorMessage>,
}

impl Refusal {
    fn new(error: ResponseError, message: impl Into<String>) -> Self {
        Refusal {
            code: error.code(),
            message: message.into(),
            records: Vec::new(),
        }
    }
}

impl From<AppendError> for Refusal {
    fn from(e: AppendError) -> Self {
        Refusal {
            code: e.code(),
            records: e
                .record_errors()
                .iter()
                .map(|r| {
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(r.index)
                        .with_batch_index_error_message(Some(sb(r.message.clone())))
                })
                .collect(),
            message: e.message(),
        }
    }
}
