//! Consumer groups: rebalancing across members with each assignor, a member leaving, static
//! membership, committed offsets surviving a broker restart, and ListGroups/DescribeGroups.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::task::JoinHandle;

/// (member index, partition, offset, value) of every record any member consumed.
type Seen = Arc<Mutex<Vec<(usize, i32, i64, String)>>>;

struct Member {
    idx: usize,
    consumer: Arc<StreamConsumer>,
    task: JoinHandle<()>,
}

impl Member {
    fn start(
        idx: usize,
        bs: &str,
        group: &str,
        settings: &[(&str, &str)],
        topic: &str,
        seen: &Seen,
    ) -> Member {
        let mut cfg = consumer_config(bs, group);
        cfg.set("client.id", format!("member-{idx}"))
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", "200");
        for (k, v) in settings {
            cfg.set(*k, *v);
        }
        let consumer: Arc<StreamConsumer> = Arc::new(cfg.create().expect("creating a member"));
        consumer.subscribe(&[topic]).expect("subscribe");
        let (c, seen) = (Arc::clone(&consumer), Arc::clone(seen));
        let task = tokio::spawn(async move {
            loop {
                match c.recv().await {
                    Ok(m) => {
                        let v =
                            String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                        seen.lock()
                            .unwrap()
                            .push((idx, m.partition(), m.offset(), v));
                    }
                    Err(e) => eprintln!("member {idx}: consumer error {e}"),
                }
            }
        });
        Member {
            idx,
            consumer,
            task,
        }
    }

    fn assignment(&self, topic: &str) -> BTreeSet<i32> {
        self.consumer
            .assignment()
            .map(|tpl| {
                tpl.elements_for_topic(topic)
                    .iter()
                    .map(|e| e.partition())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stops polling and closes the consumer (which leaves the group).
    async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
        let c = Arc::try_unwrap(self.consumer)
            .ok()
            .expect("consumer still shared");
        drop_blocking(c).await;
    }
}

/// Waits until the members' assignments of `topic` are disjoint, cover `0..partitions`, and
/// give each member `partitions / members.len()` (±1) partitions. Returns them.
async fn wait_balanced(members: &[Member], topic: &str, partitions: i32) -> Vec<BTreeSet<i32>> {
    let mut last = Vec::new();
    let res = poll_until("a balanced assignment", TIMEOUT, || {
        let a: Vec<BTreeSet<i32>> = members.iter().map(|m| m.assignment(topic)).collect();
        last = a.clone();
        async move {
            let total: usize = a.iter().map(|s| s.len()).sum();
            let union: BTreeSet<i32> = a.iter().flatten().copied().collect();
            let even = partitions as usize / a.len();
            let balanced = a.iter().all(|s| s.len() == even || s.len() == even + 1);
            Ok((total == partitions as usize
                && union == (0..partitions).collect::<BTreeSet<i32>>()
                && balanced)
                .then_some(a))
        }
    })
    .await;
    res.unwrap_or_else(|e| panic!("{e:#}; last assignments: {last:?}"))
}

/// Waits until every value in `values` has been consumed by some member.
async fn wait_consumed(seen: &Seen, values: &[String]) {
    let want: BTreeSet<&String> = values.iter().collect();
    let res = wait_until("all records consumed", TIMEOUT, || {
        let got: BTreeSet<String> = seen.lock().unwrap().iter().map(|s| s.3.clone()).collect();
        let ok = want.iter().all(|v| got.contains(*v));
        async move { Ok(ok) }
    })
    .await;
    if let Err(e) = res {
        let got: BTreeSet<String> = seen.lock().unwrap().iter().map(|s| s.3.clone()).collect();
        let missing: Vec<&&String> = want
            .iter()
            .filter(|v| !got.contains(**v))
            .take(10)
            .collect();
        panic!(
            "{e:#}; {} missing, e.g. {missing:?}",
            want.iter().filter(|v| !got.contains(**v)).count()
        );
    }
}

async fn produce_wave(bs: &str, topic: &str, partitions: i32, tag: &str, n: usize) -> Vec<String> {
    let p = producer(bs, true);
    let recs: Vec<Out> = (0..n)
        .map(|i| Out::kv(format!("k{i}"), format!("{tag}-{i}")).to((i as i32) % partitions))
        .collect();
    produce_ok(&p, topic, &recs).await;
    drop_blocking(p).await;
    recs.iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap()).unwrap())
        .collect()
}

async fn rebalance_with(strategy: &str) {
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    let topic = "rebalanced";
    create_topic(&bs, topic, 6, &[]).await;
    let group = format!("group-{strategy}");
    let seen: Seen = Arc::default();
    let settings = [("partition.assignment.strategy", strategy)];
    let mut members: Vec<Member> = (0..3)
        .map(|i| Member::start(i, &bs, &group, &settings, topic, &seen))
        .collect();

    let three = wait_balanced(&members, topic, 6).await;
    assert!(three.iter().all(|s| s.len() == 2), "{strategy}: {three:?}");

    let wave1 = produce_wave(&bs, topic, 6, "wave1", 600).await;
    wait_consumed(&seen, &wave1).await;

    // One member leaves; the other two take over all six partitions.
    let leaving = members.pop().unwrap();
    let left_idx = leaving.idx;
    leaving.stop().await;
    let two = wait_balanced(&members, topic, 6).await;
    assert!(two.iter().all(|s| s.len() == 3), "{strategy}: {two:?}");

    let wave2 = produce_wave(&bs, topic, 6, "wave2", 600).await;
    wait_consumed(&seen, &wave2).await;
    {
        let seen = seen.lock().unwrap();
        assert!(
            !seen
                .iter()
                .any(|s| s.0 == left_idx && s.3.starts_with("wave2")),
            "the member that left consumed records produced after it left"
        );
    }
    for m in members {
        m.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_range() {
    rebalance_with("range").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_roundrobin() {
    rebalance_with("roundrobin").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_cooperative_sticky() {
    rebalance_with("cooperative-sticky").await;
}

/// Static members (group.instance.id): a member that restarts with the same instance id gets
/// its partitions back, and consumption carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_membership() {
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    let topic = "static";
    create_topic(&bs, topic, 4, &[]).await;
    let seen: Seen = Arc::default();
    // A long session: the restarted member must come back before the broker would expire it,
    // and no test should depend on how fast that happens.
    let s0 = [
        ("group.instance.id", "static-0"),
        ("session.timeout.ms", "30000"),
    ];
    let s1 = [
        ("group.instance.id", "static-1"),
        ("session.timeout.ms", "30000"),
    ];
    let mut members = vec![
        Member::start(0, &bs, "statics", &s0, topic, &seen),
        Member::start(1, &bs, "statics", &s1, topic, &seen),
    ];
    let before = wait_balanced(&members, topic, 4).await;
    let wave1 = produce_wave(&bs, topic, 4, "wave1", 200).await;
    wait_consumed(&seen, &wave1).await;

    // Restart member 0 with the same instance id.
    let m0 = members.remove(0);
    m0.stop().await;
    members.insert(0, Member::start(10, &bs, "statics", &s0, topic, &seen));
    let after = wait_balanced(&members, topic, 4).await;
    assert_eq!(
        after[0], before[0],
        "the static member did not get its partitions back"
    );

    let wave2 = produce_wave(&bs, topic, 4, "wave2", 200).await;
    wait_consumed(&seen, &wave2).await;

    let (bs2, g) = (bs.clone(), "statics".to_string());
    let groups = blocking(move || {
        query_consumer(&bs2)
            .fetch_group_list(Some(&g), Duration::from_secs(20))
            .map(|l| {
                l.groups()
                    .iter()
                    .map(|g| {
                        (
                            g.name().to_string(),
                            g.state().to_string(),
                            g.members().len(),
                        )
                    })
                    .collect::<Vec<_>>()
            })
    })
    .await
    .expect("DescribeGroups");
    assert_eq!(
        groups,
        vec![("statics".to_string(), "Stable".to_string(), 2)]
    );
    for m in members {
        m.stop().await;
    }
}

/// Two consumers with the same `group.instance.id`: the newer one takes the instance over and
/// the older one is fenced (a fatal FENCED_INSTANCE_ID), as in Kafka — never the reverse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_member_zombie_is_fenced() {
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    let topic = "twins";
    create_topic(&bs, topic, 2, &[]).await;
    let seen: Seen = Arc::default();
    // A short heartbeat interval so the zombie learns of its fencing quickly.
    let settings = [
        ("group.instance.id", "twin"),
        ("session.timeout.ms", "30000"),
        ("heartbeat.interval.ms", "300"),
    ];
    let older = Member::start(0, &bs, "twins", &settings, topic, &seen);
    wait_balanced(std::slice::from_ref(&older), topic, 2).await;
    let newer = Member::start(1, &bs, "twins", &settings, topic, &seen);
    let fatal = |m: &Member| m.consumer.client().fatal_error().map(|(code, _)| code);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while fatal(&older).is_none() || newer.assignment(topic).len() != 2 {
        assert!(
            fatal(&newer).is_none(),
            "the live (newer) member was fenced: {:?}",
            newer.consumer.client().fatal_error()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "older fatal error {:?}, newer assignment {:?}",
            fatal(&older),
            newer.assignment(topic)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        fatal(&older),
        Some(rdkafka::types::RDKafkaErrorCode::FencedInstanceId)
    );
    // The newer member keeps the instance through many heartbeats and consumes new records.
    let wave = produce_wave(&bs, topic, 2, "after-fence", 100).await;
    wait_consumed(&seen, &wave).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        fatal(&newer).is_none(),
        "{:?}",
        newer.consumer.client().fatal_error()
    );
    let by_newer = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(idx, _, _, v)| *idx == 1 && v.starts_with("after-fence"))
        .count();
    assert_eq!(by_newer, wave.len(), "the newer member consumed the wave");
    newer.stop().await;
    older.stop().await;
}

/// Offsets committed (with metadata) before a broker restart are where the group resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_restart() {
    let mut b = TestBroker::start().await;
    let bs = b.bootstrap();
    let topic = "resume";
    create_topic(&bs, topic, 1, &[]).await;
    let p = producer(&bs, true);
    let recs: Vec<Out> = (0..100)
        .map(|i| Out::kv("k", format!("v{i}")).to(0))
        .collect();
    produce_ok(&p, topic, &recs).await;
    drop_blocking(p).await;

    let c: StreamConsumer = consumer_config(&bs, "resumers").create().unwrap();
    c.subscribe(&[topic]).unwrap();
    loop {
        let m = tokio::time::timeout(TIMEOUT, c.recv())
            .await
            .expect("no record within the timeout")
            .expect("consumer error");
        if m.offset() == 39 {
            break;
        }
    }
    let c = Arc::new(c);
    let c2 = Arc::clone(&c);
    blocking(move || {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Offset(40))
            .unwrap();
        tpl.find_partition(topic, 0)
            .unwrap()
            .set_metadata("checkpoint-40");
        c2.commit(&tpl, CommitMode::Sync).expect("OffsetCommit");
    })
    .await;
    let c = Arc::try_unwrap(c).ok().unwrap();
    drop_blocking(c).await;

    b.restart().await;
    let bs = b.bootstrap();

    let c: StreamConsumer = consumer_config(&bs, "resumers").create().unwrap();
    let c = Arc::new(c);
    let c2 = Arc::clone(&c);
    let (offset, metadata) = blocking(move || {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, 0);
        let got = c2
            .committed_offsets(tpl, Duration::from_secs(20))
            .expect("OffsetFetch");
        let e = got.find_partition(topic, 0).unwrap();
        (e.offset(), e.metadata().to_string())
    })
    .await;
    assert_eq!(offset, Offset::Offset(40), "committed offset after restart");
    assert_eq!(metadata, "checkpoint-40", "commit metadata after restart");

    c.subscribe(&[topic]).unwrap();
    let m = tokio::time::timeout(TIMEOUT, c.recv())
        .await
        .expect("no record after restart")
        .expect("consumer error");
    assert_eq!(
        m.offset(),
        40,
        "the group did not resume at its committed offset"
    );
    assert_eq!(m.payload(), Some(&b"v40"[..]));
    drop(m);
    let c = Arc::try_unwrap(c).ok().unwrap();
    drop_blocking(c).await;
}

/// ListGroups and DescribeGroups (rdkafka's fetch_group_list) show a group and its members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_describe_groups() {
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    let topic = "described";
    create_topic(&bs, topic, 2, &[]).await;
    let seen: Seen = Arc::default();
    let members = vec![
        Member::start(0, &bs, "describers", &[], topic, &seen),
        Member::start(1, &bs, "describers", &[], topic, &seen),
    ];
    wait_balanced(&members, topic, 2).await;

    let bs2 = bs.clone();
    let (all, one) = blocking(move || {
        let q = query_consumer(&bs2);
        let all: Vec<String> = q
            .fetch_group_list(None, Duration::from_secs(20))
            .expect("ListGroups")
            .groups()
            .iter()
            .map(|g| g.name().to_string())
            .collect();
        let one = q
            .fetch_group_list(Some("describers"), Duration::from_secs(20))
            .expect("DescribeGroups");
        let one: Vec<_> = one
            .groups()
            .iter()
            .map(|g| {
                let mut clients: Vec<String> = g
                    .members()
                    .iter()
                    .map(|m| m.client_id().to_string())
                    .collect();
                clients.sort();
                let assignments_nonempty = g
                    .members()
                    .iter()
                    .all(|m| m.assignment().is_some_and(|a| !a.is_empty()));
                (
                    g.name().to_string(),
                    g.state().to_string(),
                    g.protocol_type().to_string(),
                    g.protocol().to_string(),
                    clients,
                    assignments_nonempty,
                )
            })
            .collect();
        (all, one)
    })
    .await;
    assert!(
        all.contains(&"describers".to_string()),
        "ListGroups: {all:?}"
    );
    assert_eq!(one.len(), 1, "{one:?}");
    let (name, state, ptype, protocol, clients, assigned) = &one[0];
    assert_eq!(name, "describers");
    assert_eq!(state, "Stable");
    assert_eq!(ptype, "consumer");
    assert_eq!(protocol, "range", "librdkafka's default first assignor");
    assert_eq!(
        clients,
        &vec!["member-0".to_string(), "member-1".to_string()]
    );
    assert!(assigned, "members without an assignment: {one:?}");
    for m in members {
        m.stop().await;
    }
}
