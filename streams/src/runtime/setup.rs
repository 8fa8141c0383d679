//! Before threads start: partition counts, co-partitioning, internal topics.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::error::StreamsError;
use crate::topology::{TopicRef, Topology};

const TIMEOUT: Duration = Duration::from_secs(30);

/// An internal topic: name, partitions, configs.
type TopicSpec = (String, i32, Vec<(&'static str, String)>);

/// Partition count of an existing topic. Asks for all topics: a metadata
/// request naming the topic would auto-create it on brokers that allow that.
fn partitions_of(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> Result<Option<i32>, StreamsError> {
    let md = admin.inner().fetch_metadata(None, TIMEOUT)?;
    Ok(md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .map(|t| t.partitions().len() as i32)
        .filter(|&n| n > 0))
}

/// Works out task counts, checks co-partitioning and creates the
/// repartition and changelog topics that do not exist yet.
pub(crate) fn prepare(
    topology: &Topology,
    app_id: &str,
    admin: &AdminClient<DefaultClientContext>,
    replication: i32,
) -> Result<(), StreamsError> {
    let mut counts: BTreeMap<TopicRef, i32> = BTreeMap::new();
    for sub in &topology.subtopologies {
        for t in &sub.source_topics {
            if let TopicRef::User(name) = t {
                let n = partitions_of(admin, name)?
                    .ok_or_else(|| StreamsError::MissingSourceTopic(name.clone()))?;
                counts.insert(t.clone(), n);
            }
        }
    }
    // A repartition topic gets as many partitions as the tasks writing it;
    // chains of repartitions resolve over a few passes.
    let mut tasks: BTreeMap<u32, i32> = BTreeMap::new();
    for _ in 0..=topology.subtopologies.len() {
        for sub in &topology.subtopologies {
            let n = sub
                .source_topics
                .iter()
                .filter_map(|t| counts.get(t))
                .max()
                .copied();
            if let Some(n) = n {
                tasks.insert(sub.id, n);
            }
        }
        for name in &topology.repartition_topics {
            let t = TopicRef::Internal(name.clone());
            let n = topology
                .writers_of(&t)
                .iter()
                .filter_map(|s| tasks.get(s))
                .max()
                .copied();
            if let Some(n) = n {
                counts.insert(t, n);
            }
        }
    }
    for sub in &topology.subtopologies {
        if !tasks.contains_key(&sub.id) {
            return Err(StreamsError::Topology(format!(
                "cannot size sub-topology {}",
                sub.id
            )));
        }
        // Stateful sub-topologies joining several inputs need equal partition counts.
        if sub.source_topics.len() > 1 && !sub.stores.is_empty() {
            let ns: Vec<i32> = sub
                .source_topics
                .iter()
                .map(|t| counts.get(t).copied().unwrap_or(0))
                .collect();
            if ns.windows(2).any(|w| w[0] != w[1]) {
                return Err(StreamsError::CoPartitioning {
                    topics: sub
                        .source_topics
                        .iter()
                        .map(|t| t.resolve(app_id))
                        .collect(),
                    counts: ns,
                });
            }
        }
    }
    let mut wanted: Vec<TopicSpec> = Vec::new();
    for name in &topology.repartition_topics {
        let n = counts[&TopicRef::Internal(name.clone())];
        wanted.push((
            format!("{app_id}-{name}"),
            n,
            vec![
                ("cleanup.policy", "delete".into()),
                ("retention.ms", "-1".into()),
            ],
        ));
    }
    for sub in &topology.subtopologies {
        for store in &sub.stores {
            if let Some(cl) = topology.changelog_of(store) {
                let spec = &topology.stores[store];
                wanted.push((
                    format!("{app_id}-{cl}"),
                    tasks[&sub.id],
                    spec.changelog_configs(),
                ));
            }
        }
    }
    let mut missing = Vec::new();
    for (name, n, configs) in &wanted {
        match partitions_of(admin, name)? {
            Some(have) if have != *n => {
                return Err(StreamsError::Topology(format!(
                    "internal topic `{name}` has {have} partitions but the topology needs {n}; delete it or reset the application"
                )))
            }
            Some(_) => {}
            None => missing.push((name.clone(), *n, configs.clone())),
        }
    }
    if !missing.is_empty() {
        let new: Vec<NewTopic<'_>> = missing
            .iter()
            .map(|(name, n, configs)| {
                let mut t = NewTopic::new(name, *n, TopicReplication::Fixed(replication));
                for (k, v) in configs {
                    t = t.set(k, v);
                }
                t
            })
            .collect();
        let results = futures::executor::block_on(
            admin.create_topics(&new, &AdminOptions::new().operation_timeout(Some(TIMEOUT))),
        )?;
        for r in results {
            if let Err((topic, code)) = r {
                if code != RDKafkaErrorCode::TopicAlreadyExists {
                    return Err(StreamsError::Topology(format!(
                        "cannot create internal topic `{topic}`: {code}"
                    )));
                }
            }
        }
    }
    Ok(())
}
