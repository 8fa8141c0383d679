//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.

use kafka_protocol::error::ResponseError;
use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResult;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::config::{
    effective_value, find_def, ConfigDef, ConfigSource, ConfigType, BROKER_CONFIGS, TOPIC_CONFIGS,
};
use crate::state::BrokerState;
use crate::util::sb;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;

fn wanted(keys: &Option<Vec<StrBytes>>, name: &str) -> bool {
    keys.as_ref()
        .is_none_or(|k| k.is_empty() || k.iter().any(|k| k.as_str() == name))
}

fn entry(
    def: &ConfigDef,
    value: String,
    source: ConfigSource,
    read_only: bool,
    synonyms: Vec<DescribeConfigsSynonym>,
    documentation: bool,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(sb(def.name))
        .with_value(Some(sb(value)))
        .with_read_only(read_only)
        .with_config_source(source as i8)
        .with_is_sensitive(false)
        .with_synonyms(synonyms)
        .with_config_type(def.kind as i8)
        .with_documentation(documentation.then(|| sb(def.doc)))
}

/// Handles DescribeConfigs for topics (every topic config, as Kafka lists them) and the broker.
pub(crate) fn describe(
    state: &BrokerState,
    version: i16,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let broker = state.topics.broker_config();
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let out = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match r.resource_type {
                TOPIC => {
                    let Some(topic) = state.topics.get(r.resource_name.as_str()) else {
                        return out
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(sb(format!(
                                "Topic '{}' does not exist.",
                                r.resource_name.as_str()
                            ))));
                    };
                    let cfg = topic.config();
                    let configs = TOPIC_CONFIGS
                        .iter()
                        .filter(|d| wanted(&r.configuration_keys, d.name))
                        .map(|d| {
                            let (value, source) = effective_value(d.name, &cfg.overrides, broker);
                            let mut synonyms = Vec::new();
                            if req.include_synonyms && version >= 1 {
                                if let Some(v) = cfg.overrides.get(d.name) {
                                    synonyms.push(synonym(
                                        d.name,
                                        v.clone(),
                                        ConfigSource::DynamicTopic,
                                    ));
                                }
                                if let Some(syn) = d.broker_synonym {
                                    if broker.is_set(syn) {
                                        synonyms.push(synonym(
                                            syn,
                                            broker.get(syn).unwrap_or_default().into(),
                                            ConfigSource::StaticBroker,
                                        ));
                                    }
                                }
                                synonyms.push(synonym(
                                    d.broker_synonym.unwrap_or(d.name),
                                    d.default.into(),
                                    ConfigSource::Default,
                                ));
                            }
                            entry(d, value, source, false, synonyms, req.include_documentation)
                        })
                        .collect();
                    out.with_configs(configs)
                }
                BROKER => {
                    let name = r.resource_name.as_str();
                    if !name.is_empty() && name != state.node_id.to_string() {
                        return out
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_error_message(Some(sb(format!("Unknown broker '{name}'"))));
                    }
                    let configs = BROKER_CONFIGS
                        .iter()
                        .filter(|d| wanted(&r.configuration_keys, d.name))
                        .map(|d| {
                            let source = if broker.is_set(d.name) {
                                ConfigSource::StaticBroker
                            } else {
                                ConfigSource::Default
                            };
                            let value = broker.get(d.name).unwrap_or_default().to_string();
                            entry(
                                d,
                                value,
                                source,
                                true,
                                Vec::new(),
                                req.include_documentation,
                            )
                        })
                        .collect();
                    out.with_configs(configs)
                }
                other => out
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(sb(format!(
                        "Resource type {other} is not supported"
                    )))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn synonym(name: &str, value: String, source: ConfigSource) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(sb(name))
        .with_value(Some(sb(value)))
        .with_source(source as i8)
}

/// Applies `edit` to a topic's overrides; a refusal carries its error and message.
fn alter_topic(
    state: &BrokerState,
    resource_type: i8,
    name: &str,
    validate_only: bool,
    edit: impl FnOnce(&mut BTreeMap<String, String>) -> Result<(), String>,
) -> Result<(), (ResponseError, String)> {
    if resource_type == BROKER {
        return Err((
            ResponseError::InvalidRequest,
            "Altering broker configs at run time is not supported; restart with --config".into(),
        ));
    }
    if resource_type != TOPIC {
        return Err((
            ResponseError::InvalidRequest,
            format!("Resource type {resource_type} is not supported"),
        ));
    }
    let Some(topic) = state.topics.get(name) else {
        return Err((
            ResponseError::UnknownTopicOrPartition,
            format!("Topic '{name}' does not exist."),
        ));
    };
    let mut overrides = topic.config().overrides.clone();
    edit(&mut overrides).map_err(|m| (ResponseError::InvalidConfig, m))?;
    state
        .topics
        .set_configs(name, overrides, validate_only)
        .map_err(|e| (e.error(), e.message()))
}

/// The error code and message fields of an alter result.
fn alter_fields(result: Result<(), (ResponseError, String)>) -> (i16, Option<String>) {
    match result {
        Ok(()) => (0, None),
        Err((e, message)) => (e.code(), Some(message)),
    }
}

/// Handles AlterConfigs: the given set replaces all of a topic's overrides.
pub(crate) fn alter(state: &BrokerState, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let (code, message) = alter_fields(alter_topic(
                state,
                r.resource_type,
                r.resource_name.as_str(),
                req.validate_only,
                |o| {
                    o.clear();
                    for c in &r.configs {
                        if let Some(v) = &c.value {
                            o.insert(c.name.to_string(), v.to_string());
                        }
                    }
                    Ok(())
                },
            ));
            AlterConfigsResourceResponse::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(code)
                .with_error_message(message.map(sb))
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}

/// Handles IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT per key.
pub(crate) fn incremental_alter(
    state: &BrokerState,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let responses = req
        .resources
        .into_iter()
        .map(|r| {
            let (code, message) = alter_fields(alter_topic(
                state,
                r.resource_type,
                r.resource_name.as_str(),
                req.validate_only,
                |o| {
                    for c in &r.configs {
                        let name = c.name.to_string();
                        let value = c.value.as_ref().map(|v| v.to_string());
                        let def = find_def(TOPIC_CONFIGS, &name)
                            .ok_or_else(|| format!("unknown topic config '{name}'"))?;
                        let current = effective_value(&name, o, state.topics.broker_config()).0;
                        let list = |s: &str| -> Vec<String> {
                            s.split(',')
                                .map(str::trim)
                                .filter(|x| !x.is_empty())
                                .map(String::from)
                                .collect()
                        };
                        match c.config_operation {
                            0 => {
                                o.insert(name, value.ok_or("SET needs a value")?);
                            }
                            1 => {
                                o.remove(&name);
                            }
                            2 | 3 if def.kind != ConfigType::List => {
                                return Err(format!(
                                    "APPEND/SUBTRACT only apply to list configs, not '{name}'"
                                ));
                            }
                            2 => {
                                let mut items = list(&current);
                                for v in list(&value.unwrap_or_default()) {
                                    if !items.contains(&v) {
                                        items.push(v);
                                    }
                                }
                                o.insert(name, items.join(","));
                            }
                            3 => {
                                let remove = list(&value.unwrap_or_default());
                                let items: Vec<String> = list(&current)
                                    .into_iter()
                                    .filter(|v| !remove.contains(v))
                                    .collect();
                                o.insert(name, items.join(","));
                            }
                            op => return Err(format!("unknown config operation {op}")),
                        }
                    }
                    Ok(())
                },
            ));
            IncrementalResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name)
                .with_error_code(code)
                .with_error_message(message.map(sb))
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}
