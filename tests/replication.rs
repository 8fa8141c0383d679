//! Internal topics honour their replication settings, as in Kafka: streams `replication.factor`
//! (changelogs, the shutdown-signal topic) and connect `offset.storage.replication.factor` /
//! `config.storage.replication.factor` / `status.storage.replication.factor`, where -1 (the
//! default) means the cluster's `default.replication.factor`. On Brook's one-node broker every
//! factor is 1; against the 3-node Kafka cluster of `scripts/test-on-kafka.sh` they are 3.

mod common;

use std::time::Duration;

use brook_connect::{Worker, WorkerConfig};
use brook_streams::{KafkaStreams, Materialized, StreamsBuilder, StreamsConfig};
use common::*;
use rdkafka::admin::ResourceSpecifier;
use rdkafka::consumer::Consumer;
use serde_json::json;

/// (brokers in the cluster, replicas of each listed topic's first partition).
fn replication(bootstrap: &str) -> (usize, Vec<(String, usize)>) {
    let c = query_consumer(bootstrap);
    let md = c
        .fetch_metadata(None, Duration::from_secs(20))
        .expect("Metadata request");
    let topics = md
        .topics()
        .iter()
        .filter_map(|t| {
            Some((
                t.name().to_string(),
                t.partitions().first()?.replicas().len(),
            ))
        })
        .collect();
    (md.brokers().len(), topics)
}

fn replicas_of(bootstrap: &str, topic: &str) -> usize {
    let (_, topics) = replication(bootstrap);
    topics
        .into_iter()
        .find(|(t, _)| t == topic)
        .unwrap_or_else(|| panic!("topic {topic} does not exist"))
        .1
}

/// The cluster's `default.replication.factor`, read from a broker with DescribeConfigs.
async fn default_replication_factor(bootstrap: &str) -> usize {
    let c = query_consumer(bootstrap);
    let id = c
        .fetch_metadata(None, Duration::from_secs(20))
        .unwrap()
        .brokers()[0]
        .id();
    let admin = admin(bootstrap);
    let res = admin
        .describe_configs([&ResourceSpecifier::Broker(id)], &admin_options())
        .await
        .unwrap();
    let resource = res
        .into_iter()
        .next()
        .unwrap()
        .expect("DescribeConfigs of the broker");
    resource
        .get("default.replication.factor")
        .and_then(|e| e.value.as_deref())
        .expect("default.replication.factor")
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_topics_get_the_configured_replication_factor() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    let (brokers, _) = blocking({
        let b = b.clone();
        move || replication(&b)
    })
    .await;
    let default_rf = default_replication_factor(&b).await;
    create_topic(&b, "events", 2, &[]).await;

    // Streams, with replication.factor set to the cluster size.
    let dir = tempfile::tempdir().unwrap();
    let sb = StreamsBuilder::new();
    sb.stream::<String, String>("events")
        .group_by_key()
        .count_with(Materialized::as_("rf-store"))
        .to_stream()
        .map_values(|c| c.map(|c| c.to_string()))
        .to("rf-counts");
    let cfg = StreamsConfig::new("rf-app", &b)
        .set("state.dir", dir.path().display())
        .set("replication.factor", brokers);
    let mut app = KafkaStreams::new(sb.build().unwrap(), cfg).unwrap();
    app = blocking(move || {
        app.start().unwrap();
        app.wait_until_running(Duration::from_secs(60)).unwrap();
        app
    })
    .await;
    let (_, topics) = blocking({
        let b = b.clone();
        move || replication(&b)
    })
    .await;
    let internal: Vec<_> = topics
        .iter()
        .filter(|(t, _)| t.starts_with("rf-app-"))
        .collect();
    assert!(
        internal.iter().any(|(t, _)| t.ends_with("-changelog"))
            && internal
                .iter()
                .any(|(t, _)| t.ends_with("-shutdown-signal")),
        "streams internal topics: {internal:?}"
    );
    for (t, rf) in &internal {
        assert_eq!(*rf, brokers, "{t}: replication.factor={brokers}");
    }
    app = blocking(move || {
        app.close().unwrap();
        app
    })
    .await;
    drop_blocking(app).await;

    // Connect: the offset and status topics' factors explicit, the config topic's left at -1.
    let config = WorkerConfig::from_json(&json!({
        "bootstrap.servers": b, "rest.port": 0,
        "offset.storage.topic": "rf-offsets", "config.storage.topic": "rf-configs",
        "status.storage.topic": "rf-status",
        "offset.storage.replication.factor": brokers,
        "status.storage.replication.factor": brokers,
    }))
    .unwrap();
    let worker = Worker::start(config).await.unwrap();
    let (b1, b2, b3) = (b.clone(), b.clone(), b.clone());
    assert_eq!(
        blocking(move || replicas_of(&b1, "rf-offsets")).await,
        brokers,
        "offset.storage.replication.factor={brokers}"
    );
    assert_eq!(
        blocking(move || replicas_of(&b3, "rf-status")).await,
        brokers,
        "status.storage.replication.factor={brokers}"
    );
    assert_eq!(
        blocking(move || replicas_of(&b2, "rf-configs")).await,
        default_rf,
        "config.storage.replication.factor=-1: the cluster's default.replication.factor"
    );
    worker.shutdown().await;
}
