//! `brook produce`: one record per stdin line.

use std::io::{self, BufRead};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Message};

use crate::client::ClientOpts;

/// How many individual delivery failures are printed before only counting.
const MAX_REPORTED_ERRORS: u64 = 10;

/// Arguments of `brook produce`.
#[derive(Args, Debug)]
pub struct ProduceArgs {
    #[command(flatten)]
    client: ClientOpts,

    /// Topic to produce to
    topic: String,

    /// Split each line at the first SEP into key and value
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,

    /// Partition to write to (default: chosen by the partitioner)
    #[arg(long)]
    partition: Option<i32>,

    /// Acknowledgements required: 0, 1 or all
    #[arg(long, default_value = "all", value_parser = ["0", "1", "-1", "all"])]
    acks: String,
}

/// Counts delivery outcomes; librdkafka calls it from our own `poll`s.
struct DeliveryCounter {
    delivered: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    /// The 1-based stdin line number, to point at the failing record.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, line: usize) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((err, msg)) => {
                let failed = self.failed.fetch_add(1, Ordering::Relaxed) + 1;
                if failed <= MAX_REPORTED_ERRORS {
                    eprintln!(
                        "error: record from line {line} was not delivered to {}: {err}",
                        msg.topic()
                    );
                } else if failed == MAX_REPORTED_ERRORS + 1 {
                    eprintln!("error: more delivery failures; counting only");
                }
            }
        }
    }
}

/// Reads stdin to EOF, producing one record per line; fails if any record
/// could not be delivered.
pub fn run(args: ProduceArgs) -> Result<()> {
    let mut config = args.client.config();
    config
        .set("acks", &args.acks)
        // A console tool should not sit for librdkafka's 5-minute default
        // when the broker is unreachable.
        .set("message.timeout.ms", "30000");
    // Re-apply user overrides: they win over the defaults above.
    for (key, value) in &args.client.client_config {
        config.set(key, value);
    }
    let producer: BaseProducer<DeliveryCounter> = config
        .create_with_context(DeliveryCounter {
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        })
        .context("could not create the Kafka producer")?;

    let stdin = io::stdin();
    let mut sent: u64 = 0;
    for (index, line) in stdin.lock().lines().enumerate() {
        let line = line.context("could not read stdin")?;
        let (key, value) = match &args.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((key, value)) => (Some(key), value),
                // A line without the separator is a record with a null key.
                None => (None, line.as_str()),
            },
            None => (None, line.as_str()),
        };
        let mut record = BaseRecord::with_opaque_to(&args.topic, index + 1).payload(value);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(partition) = args.partition {
            record = record.partition(partition);
        }
        send_with_retry(&producer, record)?;
        sent += 1;
        // Serve delivery callbacks as we go so errors show up early.
        producer.poll(Duration::ZERO);
    }

    let flushed = producer.flush(Duration::from_secs(60));
    let context = producer.context();
    let delivered = context.delivered.load(Ordering::Relaxed);
    let failed = context.failed.load(Ordering::Relaxed);
    if let Err(e) = flushed {
        bail!(
            "timed out waiting for deliveries ({e}): {delivered} of {sent} records delivered, \
             {failed} failed, {} still in flight",
            producer.in_flight_count()
        );
    }
    if failed > 0 {
        bail!(
            "{failed} of {sent} records could not be delivered to {}",
            args.topic
        );
    }
    eprintln!("produced {delivered} records to {}", args.topic);
    Ok(())
}

/// Enqueues a record, waiting for room while librdkafka's queue is full.
fn send_with_retry<'a>(
    producer: &BaseProducer<DeliveryCounter>,
    mut record: BaseRecord<'a, str, str, usize>,
) -> Result<()> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                record = returned;
                producer.poll(Duration::from_millis(100));
            }
            Err((err, returned)) => {
                let line = returned.delivery_opaque;
                return Err(err).with_context(|| {
                    format!(
                        "could not send the record from line {line} to {}",
                        returned.topic
                    )
                });
            }
        }
    }
}
