//! `brook consume`: print records of a topic, one per line.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use crate::client::{fetch_all_metadata, unique_suffix, ClientOpts};

/// Arguments of `brook consume`.
#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[command(flatten)]
    client: ClientOpts,

    /// Topic to read
    topic: String,

    /// Consumer group to join; offsets are committed. Without it all
    /// partitions are read directly and nothing is committed
    #[arg(long)]
    group: Option<String>,

    /// Start at the earliest offset when there is no committed offset
    /// (default: only new records)
    #[arg(long)]
    from_beginning: bool,

    /// Stop after this many records
    #[arg(long, value_name = "N")]
    max_messages: Option<u64>,

    /// Print KEY<TAB>VALUE instead of just the value
    #[arg(long)]
    print_key: bool,

    /// Stop after this many milliseconds without a record
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,
}

/// Notes group assignments, so the idle timeout can ignore join time.
#[derive(Default)]
struct AssignmentWatch {
    ever_assigned: AtomicBool,
    fresh_assignment: AtomicBool,
}

impl ClientContext for AssignmentWatch {}

impl ConsumerContext for AssignmentWatch {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            self.ever_assigned.store(true, Ordering::Relaxed);
            self.fresh_assignment.store(true, Ordering::Relaxed);
        }
    }
}

/// Why the consume loop ended.
enum Stop {
    Done,
    Interrupted,
    Idle,
    StdoutClosed,
}

/// Consumes until the record limit, idle timeout, Ctrl-C or closed stdout.
pub async fn run(args: ConsumeArgs) -> Result<()> {
    let group_id = args
        .group
        .clone()
        .unwrap_or_else(|| format!("brook-console-{}", unique_suffix()));
    let mut config = args.client.config();
    // Only a named group gets its progress committed; a throwaway group id
    // would just leave garbage offsets behind on the cluster.
    let commit = if args.group.is_some() {
        "true"
    } else {
        "false"
    };
    config
        .set("group.id", &group_id)
        .set("enable.auto.commit", commit)
        // Offsets are stored by hand once a record has been printed: the
        // automatic store would also count records that rust-rdkafka drains
        // from the prefetch queue while closing, committing records nobody saw.
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            if args.from_beginning {
                "earliest"
            } else {
                "latest"
            },
        )
        .set("enable.partition.eof", "false");
    for (key, value) in &args.client.client_config {
        config.set(key, value);
    }
    let consumer: StreamConsumer<AssignmentWatch> = config
        .create_with_context(AssignmentWatch::default())
        .context("could not create the Kafka consumer")?;

    if args.group.is_some() {
        consumer
            .subscribe(&[args.topic.as_str()])
            .with_context(|| format!("could not subscribe to {}", args.topic))?;
    } else {
        // Assigning partitions directly skips the group join (and its
        // rebalance delay); the explicit start offset replaces
        // auto.offset.reset since there is no committed offset anyway.
        let metadata = fetch_all_metadata(consumer.client(), &args.client.bootstrap_server)?;
        let topic = metadata
            .topics()
            .iter()
            .find(|t| t.name() == args.topic)
            .ok_or_else(|| anyhow!("topic {} does not exist", args.topic))?;
        let start = if args.from_beginning {
            Offset::Beginning
        } else {
            Offset::End
        };
        let mut assignment = TopicPartitionList::new();
        for partition in topic.partitions() {
            assignment
                .add_partition_offset(&args.topic, partition.id(), start)
                .context("could not build the partition assignment")?;
        }
        consumer
            .assign(&assignment)
            .with_context(|| format!("could not assign the partitions of {}", args.topic))?;
    }

    let (count, stop) = consume_loop(&consumer, &args).await?;
    if args.group.is_some() {
        commit_final(&consumer)?;
    }
    match stop {
        Stop::Idle => eprintln!(
            "no record for {} ms; processed a total of {count} messages",
            args.timeout_ms.unwrap_or_default()
        ),
        Stop::Done | Stop::Interrupted | Stop::StdoutClosed => {
            eprintln!("processed a total of {count} messages")
        }
    }
    Ok(())
}

async fn consume_loop(
    consumer: &StreamConsumer<AssignmentWatch>,
    args: &ConsumeArgs,
) -> Result<(u64, Stop)> {
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut count: u64 = 0;
    loop {
        if args.max_messages.is_some_and(|max| count >= max) {
            return Ok((count, Stop::Done));
        }
        let next = async {
            match idle_limit {
                Some(limit) => tokio::time::timeout(limit, consumer.recv()).await.ok(),
                None => Some(consumer.recv().await),
            }
        };
        let received = tokio::select! {
            _ = &mut ctrl_c => return Ok((count, Stop::Interrupted)),
            received = next => received,
        };
        match received {
            None => {
                // Joining a group takes a while (group.initial.rebalance.delay.ms
                // alone is 3 s on Kafka); that is not "no record" time, so the
                // idle clock only runs once partitions have been assigned.
                let watch = consumer.context();
                let fresh = watch.fresh_assignment.swap(false, Ordering::Relaxed);
                let joined = args.group.is_none() || watch.ever_assigned.load(Ordering::Relaxed);
                if fresh || !joined {
                    continue;
                }
                return Ok((count, Stop::Idle));
            }
            Some(Ok(message)) => {
                if !print_record(&message, args.print_key)? {
                    return Ok((count, Stop::StdoutClosed));
                }
                count += 1;
                if args.group.is_some() {
                    consumer
                        .store_offset_from_message(&message)
                        .context("could not store the consumed offset")?;
                }
            }
            Some(Err(KafkaError::MessageConsumption(
                code @ (RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::TopicAuthorizationFailed),
            ))) => bail!("cannot consume {}: {code}", args.topic),
            // Other errors (broker restarts, rebalances) are transient:
            // librdkafka keeps retrying, so only report them.
            Some(Err(e)) => eprintln!("warning: {e}"),
        }
    }
}

/// Writes one record; returns false once stdout is closed (e.g. `| head`).
fn print_record(message: &BorrowedMessage<'_>, print_key: bool) -> Result<bool> {
    let mut line = Vec::with_capacity(message.payload_len() + 32);
    if print_key {
        line.extend_from_slice(message.key().unwrap_or(b"null"));
        line.push(b'\t');
    }
    line.extend_from_slice(message.payload().unwrap_or(b"null"));
    line.push(b'\n');
    // Raw bytes go out unchanged: values need not be UTF-8.
    match io::stdout().lock().write_all(&line) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e).context("could not write to stdout"),
    }
}

/// Commits the consumed position synchronously before leaving the group.
fn commit_final(consumer: &StreamConsumer<AssignmentWatch>) -> Result<()> {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => Ok(()),
        // Nothing consumed since the last (auto) commit: nothing to do.
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => Ok(()),
        Err(e) => Err(e).context("could not commit consumer offsets"),
    }
}
