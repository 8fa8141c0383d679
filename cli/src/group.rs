//! `brook group`: list consumer groups and describe members, assignments,
//! committed offsets and lag.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Subcommand};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::groups::GroupInfo;
use rdkafka::{Offset, TopicPartitionList};

use crate::client::{fetch_all_metadata, is_internal_topic, ClientOpts, REQUEST_TIMEOUT};

/// Arguments of `brook group`.
#[derive(Args, Debug)]
pub struct GroupArgs {
    #[command(flatten)]
    client: ClientOpts,

    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Subcommand, Debug)]
enum GroupCommand {
    /// List consumer groups
    List,
    /// Show a group's state, members, assignments and lag
    Describe {
        /// Group id
        group: String,
    },
}

/// Runs a `brook group` subcommand.
pub async fn run(args: GroupArgs) -> Result<()> {
    match &args.command {
        GroupCommand::List => list(&args.client),
        GroupCommand::Describe { group } => describe(&args.client, group),
    }
}

/// A consumer that never subscribes: with `group.id` set it can read the
/// group's committed offsets without joining (and so without rebalancing)
/// the group.
fn offsets_consumer(opts: &ClientOpts, group: &str) -> Result<BaseConsumer> {
    let mut config = opts.config();
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false");
    config
        .create()
        .context("could not create the Kafka consumer")
}

fn list(opts: &ClientOpts) -> Result<()> {
    // Any client can list groups; a plain consumer without group.id joins nothing.
    let client: BaseConsumer = opts
        .config()
        .create()
        .context("could not create the Kafka client")?;
    let list = client
        .fetch_group_list(None, REQUEST_TIMEOUT)
        .with_context(|| format!("could not list groups on {}", opts.bootstrap_server))?;
    let mut groups: Vec<&GroupInfo> = list.groups().iter().collect();
    groups.sort_by(|a, b| a.name().cmp(b.name()));
    let width = groups
        .iter()
        .map(|g| g.name().len())
        .max()
        .unwrap_or(0)
        .max(5);
    println!(
        "{:width$}  {:<20}  {:<13}  MEMBERS",
        "GROUP", "STATE", "PROTOCOL-TYPE"
    );
    for group in groups {
        println!(
            "{:width$}  {:<20}  {:<13}  {}",
            group.name(),
            or_dash(group.state()),
            or_dash(group.protocol_type()),
            group.members().len()
        );
    }
    Ok(())
}

fn describe(opts: &ClientOpts, group_id: &str) -> Result<()> {
    let consumer = offsets_consumer(opts, group_id)?;
    let list = consumer
        .fetch_group_list(Some(group_id), REQUEST_TIMEOUT)
        .with_context(|| format!("could not describe group {group_id}"))?;
    let group = list
        .groups()
        .iter()
        .find(|g| g.name() == group_id)
        .ok_or_else(|| anyhow!("group {group_id} does not exist"))?;
    if group.state() == "Dead" {
        bail!("group {group_id} does not exist");
    }
    println!(
        "Group: {group_id}\tState: {}\tProtocolType: {}\tProtocol: {}\tMembers: {}",
        or_dash(group.state()),
        or_dash(group.protocol_type()),
        or_dash(group.protocol()),
        group.members().len()
    );

    // (topic, partition) -> owning member, for the offsets table below.
    let mut owners: BTreeMap<(String, i32), String> = BTreeMap::new();
    let is_consumer_group = matches!(group.protocol_type(), "consumer" | "");
    for member in group.members() {
        println!(
            "\tMember: {}\tClientId: {}\tHost: {}",
            member.id(),
            member.client_id(),
            member.client_host()
        );
        let bytes = member.assignment().unwrap_or_default();
        if !is_consumer_group {
            println!(
                "\t\tAssignment: {} bytes (not a consumer group)",
                bytes.len()
            );
            continue;
        }
        match decode_assignment(bytes) {
            Ok(assigned) if assigned.is_empty() => println!("\t\tAssignment: -"),
            Ok(assigned) => {
                for (topic, partitions) in assigned {
                    let ids: Vec<String> = partitions.iter().map(i32::to_string).collect();
                    println!("\t\tAssignment: {topic} [{}]", ids.join(","));
                    for p in partitions {
                        owners.insert((topic.clone(), p), member.id().to_string());
                    }
                }
            }
            Err(e) => println!("\t\tAssignment: undecodable ({e})"),
        }
    }

    // Committed offsets are only asked for specific partitions, so ask for
    // every partition we know about: assigned ones plus all partitions of
    // every non-internal topic in the cluster.
    let mut wanted: BTreeSet<(String, i32)> = owners.keys().cloned().collect();
    let metadata = fetch_all_metadata(consumer.client(), &opts.bootstrap_server)?;
    for topic in metadata.topics() {
        if is_internal_topic(topic.name()) {
            continue;
        }
        for p in topic.partitions() {
            wanted.insert((topic.name().to_string(), p.id()));
        }
    }
    let mut tpl = TopicPartitionList::with_capacity(wanted.len());
    for (topic, partition) in &wanted {
        tpl.add_partition(topic, *partition);
    }
    let committed = consumer
        .committed_offsets(tpl, REQUEST_TIMEOUT)
        .with_context(|| format!("could not fetch committed offsets of group {group_id}"))?;

    let mut rows = Vec::new();
    for elem in committed.elements() {
        let Offset::Offset(offset) = elem.offset() else {
            continue;
        };
        if offset < 0 {
            continue;
        }
        // A failed watermark look-up should not hide the other rows.
        let end = consumer
            .fetch_watermarks(elem.topic(), elem.partition(), REQUEST_TIMEOUT)
            .ok()
            .map(|(_low, high)| high);
        let owner = owners
            .get(&(elem.topic().to_string(), elem.partition()))
            .cloned()
            .unwrap_or_else(|| "-".to_string());
        rows.push((
            elem.topic().to_string(),
            elem.partition(),
            offset,
            end,
            owner,
        ));
    }
    if rows.is_empty() {
        println!("No committed offsets.");
        return Ok(());
    }
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(5);
    println!(
        "{:width$}  {:>9}  {:>14}  {:>14}  {:>10}  CONSUMER-ID",
        "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"
    );
    for (topic, partition, offset, end, owner) in rows {
        let (end, lag) = match end {
            Some(end) => (end.to_string(), (end - offset).max(0).to_string()),
            None => ("?".to_string(), "?".to_string()),
        };
        println!("{topic:width$}  {partition:>9}  {offset:>14}  {end:>14}  {lag:>10}  {owner}");
    }
    Ok(())
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// Decodes the topic-partitions of a consumer-protocol assignment:
/// version i16, [topic string(i16 len), [partition i32]], user data bytes.
///
/// All versions (0-3) share this non-flexible layout, so the version is not
/// needed for decoding; user data is ignored.
fn decode_assignment(bytes: &[u8]) -> Result<Vec<(String, Vec<i32>)>> {
    // Members in the middle of a rebalance have no assignment yet.
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let mut reader = Reader(bytes);
    let _version = reader.i16()?;
    let topic_count = reader.i32()?;
    let mut topics = Vec::new();
    // A null array (-1) is simply no topics.
    for _ in 0..topic_count.max(0) {
        let topic = reader.string()?;
        let partition_count = reader.i32()?;
        let mut partitions = Vec::new();
        for _ in 0..partition_count.max(0) {
            partitions.push(reader.i32()?);
        }
        topics.push((topic, partitions));
    }
    Ok(topics)
}

/// Big-endian cursor over Kafka protocol bytes.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        if self.0.len() < n {
            bail!("truncated: needed {n} more bytes, have {}", self.0.len());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn i16(&mut self) -> Result<i16> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn string(&mut self) -> Result<String> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(String::new());
        }
        let b = self.take(len as usize)?;
        Ok(String::from_utf8_lossy(b).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_assignment() {
        let mut bytes = vec![0, 1]; // version 1
        bytes.extend(2i32.to_be_bytes()); // two topics
        bytes.extend(1i16.to_be_bytes());
        bytes.extend(b"a");
        bytes.extend(2i32.to_be_bytes());
        bytes.extend(0i32.to_be_bytes());
        bytes.extend(2i32.to_be_bytes());
        bytes.extend(3i16.to_be_bytes());
        bytes.extend(b"bcd");
        bytes.extend(0i32.to_be_bytes());
        bytes.extend((-1i32).to_be_bytes()); // null user data
        let decoded = decode_assignment(&bytes).unwrap();
        assert_eq!(
            decoded,
            vec![("a".to_string(), vec![0, 2]), ("bcd".to_string(), vec![])]
        );
        assert!(decode_assignment(&[]).unwrap().is_empty());
        assert!(decode_assignment(&bytes[..9]).is_err());
    }
}
