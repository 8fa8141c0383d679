//! Repartition topics sized by their co-partition group against a real broker: orders on 3
//! partitions re-keyed by customer and joined with customers on 6 partitions (a valid Kafka
//! topology) runs with a 6-partition repartition topic and joins every order; an explicit
//! repartition count that contradicts the group is refused at start, naming both topics.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use brook_streams::{
    JoinWindows, KStream, KafkaStreams, Repartitioned, Serdes, StreamsBuilder, StreamsConfig,
};
use common::*;
use rdkafka::producer::FutureProducer;

const ORDERS: usize = 60;
const CUSTOMERS: usize = 12;

/// `orders.select_key(customer).join(customers)`, optionally through an explicit repartition.
fn app(
    bootstrap: &str,
    app_id: &str,
    dir: &std::path::Path,
    partitions: Option<i32>,
) -> KafkaStreams {
    let b = StreamsBuilder::new();
    let mut by_customer: KStream<String, String> = b
        .stream::<String, String>("orders")
        .select_key(|_, v: &String| v.split(':').next().unwrap_or_default().to_string());
    if let Some(n) = partitions {
        by_customer = by_customer.repartition_with(
            Repartitioned::with(Serdes::string(), Serdes::string())
                .named("orders-by-customer")
                .with_number_of_partitions(n),
        );
    }
    let customers = b.stream::<String, String>("customers");
    by_customer
        .join(
            &customers,
            |order, name| format!("{order}@{name}"),
            JoinWindows::of_time_difference_without_grace(Duration::from_secs(3600)),
        )
        .to("enriched");
    let cfg = StreamsConfig::new(app_id, bootstrap)
        .set("state.dir", dir.display())
        .set("commit.interval.ms", 100)
        .set("consumer.session.timeout.ms", 6000);
    KafkaStreams::new(b.build().unwrap(), cfg).unwrap()
}

/// Keyed records partitioned as Kafka Streams partitions them (murmur2), so customer `cN` is
/// on the same partition number as the repartitioned orders of `cN`.
fn murmur2_producer(bootstrap: &str) -> FutureProducer {
    producer_config(bootstrap, false)
        .set("partitioner", "murmur2_random")
        .create()
        .expect("creating a producer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekeyed_stream_joins_a_topic_with_more_partitions() {
    init_tracing();
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "orders", 3, &[]).await;
    create_topic(&b, "customers", 6, &[]).await;
    create_topic(&b, "enriched", 1, &[]).await;
    let p = murmur2_producer(&b);
    let customers: Vec<Out> = (0..CUSTOMERS)
        .map(|c| Out::kv(format!("c{c}"), format!("name{c}")))
        .collect();
    produce_ok(&p, "customers", &customers).await;
    let orders: Vec<Out> = (0..ORDERS)
        .map(|o| Out::kv(format!("o{o}"), format!("c{}:item{o}", o % CUSTOMERS)))
        .collect();
    produce_ok(&p, "orders", &orders).await;
    drop_blocking(p).await;

    let dir = tempfile::tempdir().unwrap();
    let (bb, d) = (b.clone(), dir.path().to_path_buf());
    let mut streams = blocking(move || {
        let mut s = app(&bb, "copart", &d, None);
        s.start().unwrap();
        s.wait_until_running(TIMEOUT).unwrap();
        s
    })
    .await;
    let bb = b.clone();
    let repartition = blocking(move || {
        list_topics(&bb)
            .unwrap()
            .into_iter()
            .find(|t| t.starts_with("copart-") && t.ends_with("-repartition"))
    })
    .await
    .expect("a repartition topic");
    let bb = b.clone();
    let r = repartition.clone();
    let n = blocking(move || partition_count(&bb, &r).unwrap()).await;
    assert_eq!(n, Some(6), "{repartition}");

    let want: BTreeSet<String> = (0..ORDERS)
        .map(|o| format!("c{c}:item{o}@name{c}", c = o % CUSTOMERS))
        .collect();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let got: BTreeSet<String> = read_all_async(&b, "enriched")
            .await
            .unwrap()
            .iter()
            .map(|r| r.value_str())
            .collect();
        if got == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} orders joined; missing e.g. {:?}",
            got.len(),
            want.len(),
            want.difference(&got).next()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    blocking(move || streams.close().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_repartition_count_contradicting_the_join_is_refused() {
    init_tracing();
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "orders", 3, &[]).await;
    create_topic(&b, "customers", 6, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let (bb, d) = (b.clone(), dir.path().to_path_buf());
    let msg = blocking(move || {
        let mut s = app(&bb, "copart-bad", &d, Some(4));
        s.start().unwrap_err().to_string()
    })
    .await;
    assert!(
        msg.contains("copart-bad-orders-by-customer-repartition")
            && msg.contains("[4]")
            && msg.contains("[6]")
            && msg.contains("customers"),
        "{msg}"
    );
    // Nothing was created for the refused topology.
    let bb = b.clone();
    let topics = blocking(move || list_topics(&bb).unwrap()).await;
    assert!(
        !topics.iter().any(|t| t.starts_with("copart-bad-")),
        "{topics:?}"
    );
}
