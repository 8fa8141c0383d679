//! Metadata and DescribeCluster: brokers, controller, cluster id, topics and partitions.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest, MetadataResponse,
    TopicName,
};
use uuid::Uuid;

use crate::state::BrokerState;
use crate::topics::{validate_topic_name, Topic, TopicError};
use crate::util::sb;

fn topic_entry(state: &BrokerState, topic: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(state.node_id);
    let partitions = topic
        .partitions
        .read()
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_partition_index(p.index)
                .with_leader_id(node)
                .with_leader_epoch(p.log.lock().leader_epoch())
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(sb(topic.name.clone()))))
        .with_topic_id(topic.id)
        .with_is_internal(topic.internal)
        .with_partitions(partitions)
        .with_topic_authorized_operations(i32::MIN)
}

/// A topic entry that carries only an error.
fn error_entry(name: Option<String>, id: Uuid, error: ResponseError) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(|n| TopicName(sb(n))))
        .with_topic_id(id)
        .with_error_code(error.code())
        .with_topic_authorized_operations(i32::MIN)
}

/// Answers Metadata, auto-creating unknown topics when allowed.
pub(crate) fn handle(state: &BrokerState, version: i16, req: MetadataRequest) -> MetadataResponse {
    let all = match &req.topics {
        None => true,
        Some(t) => version == 0 && t.is_empty(),
    };
    // Before v4 the request has no flag and Kafka always auto-creates.
    let allow_create = (version < 4 || req.allow_auto_topic_creation)
        && state.config.settings().auto_create_topics;
    let topics = if all {
        state
            .topics
            .list()
            .iter()
            .map(|t| topic_entry(state, t))
            .collect()
    } else {
        req.topics
            .unwrap_or_default()
            .into_iter()
            .map(|t| match t.name {
                Some(name) => {
                    let name = name.to_string();
                    if let Some(topic) = state.topics.get(&name) {
                        return topic_entry(state, &topic);
                    }
                    if let Err(e) = validate_topic_name(&name) {
                        return error_entry(Some(name), Uuid::nil(), e.error());
                    }
                    if !allow_create {
                        return error_entry(
                            Some(name),
                            Uuid::nil(),
                            ResponseError::UnknownTopicOrPartition,
                        );
                    }
                    match state
                        .topics
                        .create(&name, -1, -1, Default::default(), false)
                    {
                        Ok(topic) => topic_entry(state, &topic),
                        Err(TopicError::Exists(_)) => match state.topics.get(&name) {
                            Some(topic) => topic_entry(state, &topic),
                            None => error_entry(
                                Some(name),
                                Uuid::nil(),
                                ResponseError::LeaderNotAvailable,
                            ),
                        },
                        Err(e) => {
                            tracing::warn!(topic = %name, "auto-create failed: {}", e.message());
                            error_entry(Some(name), Uuid::nil(), e.error())
                        }
                    }
                }
                None => match state.topics.get_by_id(t.topic_id) {
                    Some(topic) => topic_entry(state, &topic),
                    None => error_entry(None, t.topic_id, ResponseError::UnknownTopicId),
                },
            })
            .collect()
    };
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(BrokerId(state.node_id))
            .with_host(sb(state.advertised_host.clone()))
            .with_port(state.advertised_port)])
        .with_cluster_id(Some(sb(state.cluster_id.clone())))
        .with_controller_id(BrokerId(state.node_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(i32::MIN)
}

/// Answers DescribeCluster with this one broker as the whole cluster and its controller.
pub(crate) fn describe_cluster(
    state: &BrokerState,
    _req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    DescribeClusterResponse::default()
        .with_endpoint_type(1)
        .with_cluster_id(sb(state.cluster_id.clone()))
        .with_controller_id(BrokerId(state.node_id))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(BrokerId(state.node_id))
            .with_host(sb(state.advertised_host.clone()))
            .with_port(state.advertised_port)])
        .with_cluster_authorized_operations(i32::MIN)
}
