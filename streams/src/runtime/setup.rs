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

/// How long a source topic may be missing from the metadata before the application fails:
/// on a Kafka cluster a topic just created through one broker reaches the others' metadata a
/// moment later, and an application started right after its topics must not die of that.
const SOURCE_TOPIC_GRACE: Duration = Duration::from_secs(5);

/// Partition count of a user source topic, waiting out [`SOURCE_TOPIC_GRACE`] before calling
/// it missing.
fn source_partitions(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> Result<i32, StreamsError> {
    let deadline = std::time::Instant::now() + SOURCE_TOPIC_GRACE;
    loop {
        if let Some(n) = partitions_of(admin, topic)? {
            return Ok(n);
        }
        if std::time::Instant::now() >= deadline {
            return Err(StreamsError::MissingSourceTopic(topic.to_string()));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Works out task counts, checks co-partitioning and creates the repartition and changelog
/// topics that do not exist yet; existing ones must already have the needed counts.
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
                let n = source_partitions(admin, name)?;
                counts.insert(t.clone(), n);
            }
        }
    }
    // Repartition topics sized from their writers and co-partition groups (Kafka's rules,
    // in `topology::sizing`); joined topics that cannot agree are an error here.
    let sizing = topology.size(&counts, app_id)?;
    let mut wanted: Vec<TopicSpec> = Vec::new();
    for name in &topology.repartition_topics {
        let n = sizing.topics[&TopicRef::Internal(name.clone())];
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
                    sizing.tasks[&sub.id],
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
        // On a cluster the other brokers learn of new topics a moment later.
        let created: Vec<(String, i32)> = missing.iter().map(|(n, p, _)| (n.clone(), *p)).collect();
        if !super::metadata::wait_for_topics(admin.inner(), &created, TIMEOUT)? {
            return Err(StreamsError::Topology(format!(
                "internal topics {:?} have no leaders {} s after they were created",
                created.iter().map(|(n, _)| n).collect::<Vec<_>>(),
                TIMEOUT.as_secs()
            )));
        }
    }
    Ok(())
}
