//! `brook topic`: create, list, describe, alter and delete topics through
//! the Kafka admin API.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use rdkafka::admin::{
    AdminClient, AlterConfig, ConfigResource, ConfigSource, NewTopic, ResourceSpecifier,
    TopicReplication, TopicResult,
};
use rdkafka::client::DefaultClientContext;

use crate::client::{admin_options, fetch_all_metadata, parse_key_val, ClientOpts};

/// Arguments of `brook topic`.
#[derive(Args, Debug)]
pub struct TopicArgs {
    #[command(flatten)]
    client: ClientOpts,

    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Subcommand, Debug)]
enum TopicCommand {
    /// Create a topic
    Create {
        /// Topic name
        name: String,
        /// Number of partitions (default: the broker's num.partitions)
        #[arg(long)]
        partitions: Option<i32>,
        /// Replication factor (default -1: the cluster's default.replication.factor, as
        /// kafka-topics.sh)
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        replication_factor: i32,
        /// Topic config, e.g. retention.ms=60000; repeatable
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_val)]
        configs: Vec<(String, String)>,
    },
    /// List topics with their partition counts
    List,
    /// Show partitions (leader, replicas, ISR) and configs of a topic
    Describe {
        /// Topic name
        name: String,
    },
    /// Set topic configs (other dynamic configs are kept)
    Alter {
        /// Topic name
        name: String,
        /// Config to set, e.g. retention.ms=60000; repeatable
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_val)]
        configs: Vec<(String, String)>,
        /// Config to reset to its default; repeatable
        #[arg(long = "delete-config", value_name = "KEY")]
        delete_configs: Vec<String>,
    },
    /// Delete a topic
    Delete {
        /// Topic name
        name: String,
    },
}

/// Runs a `brook topic` subcommand.
pub async fn run(args: TopicArgs) -> Result<()> {
    let admin = args.client.admin()?;
    let bootstrap = &args.client.bootstrap_server;
    match args.command {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            // -1 asks the broker for its default partition count (KIP-464).
            let mut topic = NewTopic::new(
                &name,
                partitions.unwrap_or(-1),
                TopicReplication::Fixed(replication_factor),
            );
            for (key, value) in &configs {
                topic = topic.set(key, value);
            }
            let results = admin
                .create_topics([&topic], &admin_options())
                .await
                .with_context(|| format!("create topic request to {bootstrap} failed"))?;
            check_topic_results(results, "create")?;
            println!("created topic {name}");
        }
        TopicCommand::List => list(&admin, bootstrap)?,
        TopicCommand::Describe { name } => describe(&admin, bootstrap, &name).await?,
        TopicCommand::Alter {
            name,
            configs,
            delete_configs,
        } => alter(&admin, &name, configs, delete_configs).await?,
        TopicCommand::Delete { name } => {
            let results = admin
                .delete_topics(&[name.as_str()], &admin_options())
                .await
                .with_context(|| format!("delete topic request to {bootstrap} failed"))?;
            check_topic_results(results, "delete")?;
            println!("deleted topic {name}");
        }
    }
    Ok(())
}

/// Turns per-topic admin results into one error naming the broker's error code.
fn check_topic_results(results: Vec<TopicResult>, action: &str) -> Result<()> {
    for result in results {
        if let Err((topic, code)) = result {
            bail!("could not {action} topic {topic}: {code}");
        }
    }
    Ok(())
}

fn list(admin: &AdminClient<DefaultClientContext>, bootstrap: &str) -> Result<()> {
    let metadata = fetch_all_metadata(admin.inner(), bootstrap)?;
    let mut topics: Vec<_> = metadata.topics().iter().collect();
    topics.sort_by(|a, b| a.name().cmp(b.name()));
    let width = topics
        .iter()
        .map(|t| t.name().len())
        .max()
        .unwrap_or(0)
        .max(5);
    println!("{:width$}  PARTITIONS  REPLICATION", "TOPIC");
    for topic in topics {
        let replication = topic.partitions().first().map_or(0, |p| p.replicas().len());
        println!(
            "{:width$}  {:>10}  {:>11}",
            topic.name(),
            topic.partitions().len(),
            replication
        );
    }
    Ok(())
}

async fn describe(
    admin: &AdminClient<DefaultClientContext>,
    bootstrap: &str,
    name: &str,
) -> Result<()> {
    let metadata = fetch_all_metadata(admin.inner(), bootstrap)?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == name)
        .ok_or_else(|| anyhow!("topic {name} does not exist"))?;
    if let Some(err) = topic.error() {
        bail!("broker reported an error for topic {name}: {err:?}");
    }
    let mut partitions: Vec<_> = topic.partitions().iter().collect();
    partitions.sort_by_key(|p| p.id());
    let replication = partitions.first().map_or(0, |p| p.replicas().len());
    println!(
        "Topic: {name}\tPartitionCount: {}\tReplicationFactor: {replication}",
        partitions.len()
    );
    for p in partitions {
        let error = p
            .error()
            .map(|e| format!("\tError: {e:?}"))
            .unwrap_or_default();
        println!(
            "\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}{error}",
            p.id(),
            p.leader(),
            join_ids(p.replicas()),
            join_ids(p.isr()),
        );
    }

    let config = describe_topic_config(admin, name).await?;
    println!("Configs:");
    let mut entries: Vec<_> = config.entries.iter().collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    for entry in entries {
        let value = match (&entry.value, entry.is_sensitive) {
            (_, true) => "(sensitive)",
            (Some(v), false) => v.as_str(),
            (None, false) => "(null)",
        };
        let origin = if entry.is_default {
            "default".to_string()
        } else {
            source_name(&entry.source).to_string()
        };
        println!("\t{} = {value}\t({origin})", entry.name);
    }
    Ok(())
}

/// Fetches the config of one topic, flattening the nested admin results.
async fn describe_topic_config(
    admin: &AdminClient<DefaultClientContext>,
    name: &str,
) -> Result<ConfigResource> {
    let results = admin
        .describe_configs([&ResourceSpecifier::Topic(name)], &admin_options())
        .await
        .with_context(|| format!("describe configs request for topic {name} failed"))?;
    match results.into_iter().next() {
        Some(Ok(resource)) => Ok(resource),
        Some(Err(code)) => bail!("could not describe configs of topic {name}: {code}"),
        None => bail!("broker returned no configs for topic {name}"),
    }
}

/// Applies config changes with the (non-incremental) AlterConfigs API.
///
/// AlterConfigs replaces a topic's whole dynamic config, so we first read
/// the topic's current dynamic overrides and send them along with the
/// changes; otherwise altering one key would silently reset all others.
async fn alter(
    admin: &AdminClient<DefaultClientContext>,
    name: &str,
    configs: Vec<(String, String)>,
    delete_configs: Vec<String>,
) -> Result<()> {
    if configs.is_empty() && delete_configs.is_empty() {
        bail!("nothing to alter: pass --config KEY=VALUE and/or --delete-config KEY");
    }
    let current = describe_topic_config(admin, name).await?;
    let mut merged: BTreeMap<String, String> = current
        .entries
        .iter()
        .filter(|e| e.source == ConfigSource::DynamicTopic && !e.is_default)
        .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
        .collect();
    for key in &delete_configs {
        merged.remove(key);
    }
    merged.extend(configs);

    let mut change = AlterConfig::new(ResourceSpecifier::Topic(name));
    for (key, value) in &merged {
        change = change.set(key, value);
    }
    let results = admin
        .alter_configs([&change], &admin_options())
        .await
        .with_context(|| format!("alter configs request for topic {name} failed"))?;
    for result in results {
        if let Err((_, code)) = result {
            bail!("could not alter configs of topic {name}: {code}");
        }
    }
    println!("altered configs of topic {name}");
    Ok(())
}

fn source_name(source: &ConfigSource) -> &'static str {
    match source {
        ConfigSource::Unknown => "unknown",
        ConfigSource::DynamicTopic => "topic override",
        ConfigSource::DynamicBroker => "dynamic broker config",
        ConfigSource::DynamicDefaultBroker => "dynamic default broker config",
        ConfigSource::StaticBroker => "static broker config",
        ConfigSource::Default => "default",
    }
}

fn join_ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}
