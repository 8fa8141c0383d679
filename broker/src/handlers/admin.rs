//! CreateTopics, DeleteTopics, CreatePartitions and DeleteRecords.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    TopicName,
};
use uuid::Uuid;

use crate::config::TOPIC_CONFIGS;
use crate::state::BrokerState;
use crate::topics::TopicError;
use crate::util::sb;

/// Handles CreateTopics, including `validate_only`.
pub(crate) fn create_topics(
    state: &BrokerState,
    version: i16,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut seen = std::collections::HashSet::new();
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.to_string();
            let result = CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_num_partitions(-1)
                .with_replication_factor(-1);
            if !seen.insert(name.clone()) {
                return result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(sb(format!(
                        "Duplicate topic name '{name}' in request"
                    ))));
            }
            if !t.assignments.is_empty()
                && t.assignments
                    .iter()
                    .any(|a| a.broker_ids.iter().any(|b| b.0 != state.node_id))
            {
                return result
                    .with_error_code(ResponseError::InvalidReplicaAssignment.code())
                    .with_error_message(Some(sb(
                        "Replica assignment names a broker that does not exist",
                    )));
            }
            let partitions = if t.assignments.is_empty() {
                t.num_partitions
            } else {
                t.assignments.len() as i32
            };
            let mut configs = BTreeMap::new();
            for c in &t.configs {
                match &c.value {
                    Some(v) => {
                        configs.insert(c.name.to_string(), v.to_string());
                    }
                    None => {
                        return result
                            .with_error_code(ResponseError::InvalidConfig.code())
                            .with_error_message(Some(sb(format!(
                                "Null value not supported for topic config '{}'",
                                c.name.as_str()
                            ))))
                    }
                }
            }
            match state.topics.create(
                &name,
                partitions,
                t.replication_factor,
                configs,
                req.validate_only,
            ) {
                Ok(topic) => {
                    let mut r = result
                        .with_topic_id(if req.validate_only {
                            Uuid::nil()
                        } else {
                            topic.id
                        })
                        .with_num_partitions(
                            topic.partition_count().max(partitions.max(1) as usize) as i32,
                        )
                        .with_replication_factor(1);
                    if req.validate_only {
                        r = r.with_num_partitions(if partitions == -1 {
                            state.config.settings().num_partitions
                        } else {
                            partitions
                        });
                    }
                    if version >= 5 {
                        let cfg = topic.config();
                        let configs = TOPIC_CONFIGS
                            .iter()
                            .map(|d| {
                                let (value, source) = crate::config::effective_value(
                                    d.name,
                                    &cfg.overrides,
                                    state.topics.broker_config(),
                                );
                                CreatableTopicConfigs::default()
                                    .with_name(sb(d.name))
                                    .with_value(Some(sb(value)))
                                    .with_config_source(source as i8)
                            })
                            .collect();
                        r = r.with_configs(Some(configs));
                    }
                    r
                }
                Err(e) => topic_error(result, &e),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

fn topic_error(result: CreatableTopicResult, e: &TopicError) -> CreatableTopicResult {
    result
        .with_error_code(e.code())
        .with_error_message(Some(sb(e.message())))
}

/// Handles DeleteTopics (by name, or by topic id from v6).
pub(crate) fn delete_topics(
    state: &BrokerState,
    version: i16,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let targets: Vec<(Option<String>, Uuid)> = if version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n.to_string()), Uuid::nil()))
            .collect()
    };
    let responses = targets
        .into_iter()
        .map(|(name, id)| {
            let name = name.or_else(|| state.topics.get_by_id(id).map(|t| t.name.clone()));
            let out = DeletableTopicResult::default()
                .with_name(name.clone().map(|n| TopicName(sb(n))))
                .with_topic_id(id);
            let Some(name) = name else {
                return out
                    .with_error_code(ResponseError::UnknownTopicId.code())
                    .with_error_message(Some(sb(format!("Topic id {id} does not exist"))));
            };
            match state.topics.delete(&name) {
                Ok(id) => out.with_topic_id(id),
                Err(e) => out
                    .with_error_code(e.code())
                    .with_error_message(Some(sb(e.message()))),
            }
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Handles CreatePartitions.
pub(crate) fn create_partitions(
    state: &BrokerState,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let results = req
        .topics
        .into_iter()
        .map(|t| {
            let out = CreatePartitionsTopicResult::default().with_name(t.name.clone());
            match state
                .topics
                .add_partitions(&t.name, t.count, req.validate_only)
            {
                Ok(()) => out,
                Err(e) => out
                    .with_error_code(e.code())
                    .with_error_message(Some(sb(e.message()))),
            }
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

/// Handles DeleteRecords: moves each partition's log start offset (the log decides what is
/// allowed). With one replica the new low watermark is final at once, so `timeout_ms` has
/// nothing to wait for.
pub(crate) fn delete_records(
    state: &BrokerState,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = state.topics.get(&t.name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let out = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index)
                        .with_low_watermark(-1);
                    let fail = |e: ResponseError| out.clone().with_error_code(e.code());
                    let Some(topic) = topic.as_ref() else {
                        return fail(ResponseError::UnknownTopicOrPartition);
                    };
                    // Kafka refuses internal topics before looking at the partition.
                    if topic.internal {
                        return fail(ResponseError::InvalidTopicException);
                    }
                    let Some(partition) = topic.partition(p.partition_index) else {
                        return fail(ResponseError::UnknownTopicOrPartition);
                    };
                    let result = partition.log.lock().delete_records(p.offset);
                    match result {
                        Ok(low_watermark) => out.with_low_watermark(low_watermark),
                        Err(e) => {
                            tracing::info!(topic = %topic.name, partition = p.partition_index, offset = p.offset, error = %e, "DeleteRecords refused");
                            fail(e.error())
                        }
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
