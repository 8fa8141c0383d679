//! Stream–table enrichment: orders keyed by customer joined with the latest
//! customer record from a compacted `customers` topic.
//!
//! ```text
//! cargo run --example enrich
//! ```

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use brook_streams::{DefaultSerde, KafkaStreams, SerdeRef, Serdes, StreamsBuilder, StreamsConfig};
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

#[derive(Parser)]
struct Args {
    /// Use this cluster instead of an embedded broker.
    #[arg(long)]
    bootstrap_server: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Customer {
    name: String,
    tier: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Order {
    id: u32,
    amount_cents: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct EnrichedOrder {
    id: u32,
    amount_cents: u64,
    customer: Option<String>,
    tier: Option<String>,
}

// JSON on the wire for our own types: one line each.
impl DefaultSerde for Customer {
    fn default_serde() -> SerdeRef<Self> {
        Serdes::json()
    }
}
impl DefaultSerde for Order {
    fn default_serde() -> SerdeRef<Self> {
        Serdes::json()
    }
}
impl DefaultSerde for EnrichedOrder {
    fn default_serde() -> SerdeRef<Self> {
        Serdes::json()
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let (broker, bootstrap) = match &args.bootstrap_server {
        Some(b) => (None, b.clone()),
        None => {
            let broker = brook_broker::Broker::builder()
                .data_dir(dir.path().join("broker"))
                .listen("127.0.0.1:0")
                .start()
                .await
                .context("could not start the embedded broker")?;
            let b = broker.bootstrap_servers();
            (Some(broker), b)
        }
    };
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()?;
    let send = |topic: &'static str, key: String, value: String| {
        let p = producer.clone();
        async move {
            p.send(
                FutureRecord::to(topic).key(&key).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
        }
    };
    for (id, name, tier) in [("c1", "Ada", "gold"), ("c2", "Brian", "silver")] {
        let c = serde_json::to_string(&Customer {
            name: name.into(),
            tier: tier.into(),
        })?;
        send("customers", id.into(), c).await?;
    }
    let orders = [
        ("c1", 1, 1250),
        ("c2", 2, 900),
        ("c3", 3, 4000),
        ("c1", 4, 75),
    ];

    let out: Arc<Mutex<Vec<EnrichedOrder>>> = Arc::default();
    let sink = out.clone();
    let builder = StreamsBuilder::new();
    let customers = builder.table::<String, Customer>("customers");
    builder
        .stream::<String, Order>("orders")
        .left_join_table(&customers, |o, c: Option<Customer>| EnrichedOrder {
            id: o.id,
            amount_cents: o.amount_cents,
            customer: c.as_ref().map(|c| c.name.clone()),
            tier: c.map(|c| c.tier),
        })
        .peek(move |k, e| {
            println!(
                "order {} of {k}: {} cents, customer {:?} ({:?})",
                e.id, e.amount_cents, e.customer, e.tier
            );
            sink.lock().expect("not poisoned").push(e.clone());
        })
        .to("orders-enriched");
    // Source topics must exist when the app starts, as in Kafka Streams.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()?;
    let topics = [
        NewTopic::new("orders", 1, TopicReplication::Fixed(1)),
        NewTopic::new("orders-enriched", 1, TopicReplication::Fixed(1)),
    ];
    admin.create_topics(&topics, &AdminOptions::new()).await?;
    let config = StreamsConfig::new("enrich-example", &bootstrap)
        .set("state.dir", dir.path().join("state").display())
        .set("commit.interval.ms", 200);
    let mut app = KafkaStreams::new(builder.build()?, config)?;
    let app = tokio::task::spawn_blocking(move || -> Result<KafkaStreams> {
        app.start()?;
        app.wait_until_running(Duration::from_secs(30))?;
        Ok(app)
    })
    .await??;
    // Stream-table joins are not time-synchronised: give the table a moment
    // to load before the orders arrive.
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (cust, id, amount) in orders {
        let o = serde_json::to_string(&Order {
            id,
            amount_cents: amount,
        })?;
        send("orders", cust.into(), o).await?;
    }
    let mut app = app;
    tokio::task::spawn_blocking(move || -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while out.lock().expect("not poisoned").len() < orders.len() {
            if Instant::now() > deadline {
                bail!(
                    "only {} orders enriched",
                    out.lock().expect("not poisoned").len()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        app.close()?;
        println!(
            "enrich: {} orders joined with the customers table",
            orders.len()
        );
        Ok(())
    })
    .await??;
    drop(producer);
    drop(admin);
    if let Some(b) = broker {
        b.shutdown().await?;
    }
    Ok(())
}
