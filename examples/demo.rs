//! End-to-end demo: an embedded Brook broker driven by a stock Kafka client.
//!
//! Starts a broker in a temporary directory, creates a topic with the admin
//! API, produces keyed records idempotently, reads them back in a consumer
//! group and shuts the broker down. Run with `cargo run --example demo`.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};

const TOPIC: &str = "demo";
const RECORDS: usize = 10;
/// Everything after the broker start must finish within this time.
const DEADLINE: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();

    let dir = tempfile::tempdir().context("could not create a temp dir")?;
    let broker = brook_broker::Broker::builder()
        .data_dir(dir.path())
        .listen("127.0.0.1:0")
        .start()
        .await
        .context("could not start the embedded broker")?;
    let addr = broker.local_addr();
    let bootstrap = broker.bootstrap_servers();

    // Run the client part under a deadline, but shut the broker down either
    // way so a failure still leaves a clean process behind.
    let outcome = tokio::time::timeout(DEADLINE, run_clients(&bootstrap)).await;
    broker
        .shutdown()
        .await
        .context("broker did not shut down cleanly")?;

    let consumed = match outcome {
        Ok(result) => result?,
        Err(_) => bail!("demo did not finish within {DEADLINE:?}"),
    };
    println!("demo: produced {RECORDS}, consumed {consumed} through the embedded broker at {addr}");
    Ok(())
}

/// Creates the topic, produces the records and consumes them back; returns
/// how many records were consumed.
async fn run_clients(bootstrap: &str) -> Result<usize> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("could not create the admin client")?;
    let topic = NewTopic::new(TOPIC, 3, TopicReplication::Fixed(1));
    for result in admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .context("create topics request failed")?
    {
        if let Err((name, code)) = result {
            bail!("could not create topic {name}: {code}");
        }
    }
    println!("created topic {TOPIC} with 3 partitions");

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .context("could not create the producer")?;
    for i in 0..RECORDS {
        // A handful of keys, so records with the same key share a partition.
        let key = format!("user-{}", i % 4);
        let value = format!("event #{i}");
        let record = FutureRecord::to(TOPIC).key(&key).payload(&value);
        let delivery = producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(err, _)| err)
            .with_context(|| format!("could not deliver record {i}"))?;
        println!(
            "produced  partition={} offset={} key={key} value={value}",
            delivery.partition, delivery.offset
        );
    }

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "demo-group")
        .set("auto.offset.reset", "earliest")
        .create()
        .context("could not create the consumer")?;
    consumer
        .subscribe(&[TOPIC])
        .context("could not subscribe")?;

    // Deduplicate by position: a rebalance may legitimately redeliver.
    let mut seen = BTreeSet::new();
    while seen.len() < RECORDS {
        let message = match consumer.recv().await {
            Ok(message) => message,
            // Errors here are transient (e.g. a coordinator still loading);
            // librdkafka retries, and the overall deadline bounds the wait.
            Err(e) => {
                eprintln!("consumer warning: {e}");
                continue;
            }
        };
        let key = String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned();
        let value = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
        if seen.insert((message.partition(), message.offset())) {
            println!(
                "consumed  partition={} offset={} key={key} value={value}",
                message.partition(),
                message.offset()
            );
        }
    }
    Ok(seen.len())
}
