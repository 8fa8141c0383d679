//! The admin API through rdkafka's AdminClient: create, describe, alter, add partitions,
//! delete; persistence of topics and configs across a restart; topic auto-creation; raw
//! DeleteRecords requests (v0 and v2, errors librdkafka answers itself).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rdkafka::admin::{
    AdminClient, AlterConfig, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;

/// (value, is_default, source) of every config of a topic.
async fn describe(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> HashMap<String, (Option<String>, bool, ConfigSource)> {
    let res = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &admin_options())
        .await
        .expect("DescribeConfigs request failed");
    assert_eq!(res.len(), 1);
    let r = res
        .into_iter()
        .next()
        .unwrap()
        .unwrap_or_else(|e| panic!("DescribeConfigs of {topic}: {e:?}"));
    r.entries
        .into_iter()
        .map(|e| (e.name, (e.value, e.is_default, e.source)))
        .collect()
}

async fn create(
    admin: &AdminClient<DefaultClientContext>,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<String, (String, RDKafkaErrorCode)> {
    let mut t = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let mut res = admin
        .create_topics([&t], &admin_options())
        .await
        .expect("CreateTopics request failed");
    assert_eq!(res.len(), 1);
    res.pop().unwrap()
}

/// Sends one request of `key` at `version` on a raw connection and decodes the response.
async fn raw_request<Req: Encodable, Resp: Decodable>(
    addr: std::net::SocketAddr,
    key: ApiKey,
    version: i16,
    req: Req,
) -> Resp {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut buf = bytes::BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(5)
        .with_client_id(Some(StrBytes::from_static_str("admin-test")))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    req.encode(&mut buf, version).unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(&(buf.len() as i32).to_be_bytes())
        .await
        .unwrap();
    s.write_all(&buf).await.unwrap();
    let mut len = [0u8; 4];
    tokio::time::timeout(TIMEOUT, s.read_exact(&mut len))
        .await
        .unwrap_or_else(|_| panic!("no {key:?} response"))
        .unwrap_or_else(|e| panic!("connection closed instead of a {key:?} response: {e}"));
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.unwrap();
    let mut body = bytes::Bytes::from(body);
    let h = ResponseHeader::decode(&mut body, key.response_header_version(version)).unwrap();
    assert_eq!(h.correlation_id, 5);
    Resp::decode(&mut body, version).unwrap()
}

/// Sends AlterConfigs v1 for one topic on a raw connection; returns the resource's error code.
async fn raw_alter_configs(
    addr: std::net::SocketAddr,
    topic: &str,
    configs: &[(&str, &str)],
) -> i16 {
    use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
    use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

    let req = AlterConfigsRequest::default().with_resources(vec![AlterConfigsResource::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_string(topic.to_string()))
        .with_configs(
            configs
                .iter()
                .map(|(k, v)| {
                    AlterableConfig::default()
                        .with_name(StrBytes::from_string(k.to_string()))
                        .with_value(Some(StrBytes::from_string(v.to_string())))
                })
                .collect(),
        )]);
    let resp: AlterConfigsResponse = raw_request(addr, ApiKey::AlterConfigs, 1, req).await;
    assert_eq!(resp.responses.len(), 1);
    resp.responses[0].error_code
}

/// DeleteRecords of `(topic, partition, offset)` at `version`: per partition, the low
/// watermark and error code, in the broker's order.
async fn raw_delete_records(
    addr: std::net::SocketAddr,
    version: i16,
    targets: &[(&str, i32, i64)],
) -> Vec<(String, i32, i64, i16)> {
    use kafka_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, TopicName};

    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(1000)
        .with_topics(
            targets
                .iter()
                .map(|(t, p, o)| {
                    DeleteRecordsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partitions(vec![DeleteRecordsPartition::default()
                            .with_partition_index(*p)
                            .with_offset(*o)])
                })
                .collect(),
        );
    let resp: DeleteRecordsResponse = raw_request(addr, ApiKey::DeleteRecords, version, req).await;
    resp.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    t.name.to_string(),
                    p.partition_index,
                    p.low_watermark,
                    p.error_code,
                )
            })
        })
        .collect()
}

async fn partitions_of(bs: &str, topic: &str) -> Option<usize> {
    let (b, t) = (bs.to_string(), topic.to_string());
    blocking(move || partition_count(&b, &t)).await.unwrap()
}

async fn topics(bs: &str) -> Vec<String> {
    let b = bs.to_string();
    blocking(move || list_topics(&b)).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_describe_alter_extend_delete() {
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    let admin = admin(&bs);

    create(
        &admin,
        "orders",
        3,
        &[("retention.ms", "3600000"), ("segment.bytes", "1048576")],
    )
    .await
    .expect("creating orders");
    assert_eq!(partitions_of(&bs, "orders").await, Some(3));
    for p in 0..3 {
        assert!(
            b.partition_dir("orders", p).is_dir(),
            "orders-{p} directory"
        );
    }

    // Errors.
    assert_eq!(
        create(&admin, "orders", 3, &[]).await,
        Err(("orders".to_string(), RDKafkaErrorCode::TopicAlreadyExists))
    );
    let long = "a".repeat(250);
    for bad in ["bad name!", "..", "a/b", long.as_str()] {
        match create(&admin, bad, 1, &[]).await {
            Err((_, RDKafkaErrorCode::InvalidTopic)) => {}
            other => {
                panic!("creating topic {bad:?}: expected INVALID_TOPIC_EXCEPTION, got {other:?}")
            }
        }
    }
    assert_eq!(
        create(&admin, "zero-partitions", 0, &[]).await,
        Err((
            "zero-partitions".to_string(),
            RDKafkaErrorCode::InvalidPartitions
        ))
    );
    assert_eq!(
        create(&admin, "bad-config", 1, &[("retention.ms", "soon")]).await,
        Err(("bad-config".to_string(), RDKafkaErrorCode::InvalidConfig))
    );
    assert_eq!(
        create(&admin, "unknown-config", 1, &[("no.such.config", "1")]).await,
        Err((
            "unknown-config".to_string(),
            RDKafkaErrorCode::InvalidConfig
        ))
    );
    let listed = topics(&bs).await;
    for t in [
        "zero-partitions",
        "bad-config",
        "unknown-config",
        "bad name!",
    ] {
        assert!(
            !listed.contains(&t.to_string()),
            "failed creation left {t} behind: {listed:?}"
        );
    }

    // Describe: overrides and defaults.
    let cfg = describe(&admin, "orders").await;
    let check = |cfg: &HashMap<String, (Option<String>, bool, ConfigSource)>,
                 name: &str,
                 value: &str,
                 is_default: bool| {
        let (v, d, src) = cfg
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from DescribeConfigs: {:?}", cfg.keys()));
        assert_eq!(v.as_deref(), Some(value), "value of {name}");
        assert_eq!(*d, is_default, "is_default of {name}");
        if !is_default {
            assert_eq!(*src, ConfigSource::DynamicTopic, "source of {name}");
        }
    };
    check(&cfg, "retention.ms", "3600000", false);
    check(&cfg, "segment.bytes", "1048576", false);
    check(&cfg, "cleanup.policy", "delete", true);
    check(&cfg, "min.insync.replicas", "1", true);
    check(&cfg, "max.message.bytes", "1048588", true);
    check(&cfg, "retention.bytes", "-1", true);
    check(&cfg, "message.timestamp.type", "CreateTime", true);
    check(&cfg, "compression.type", "producer", true);
    check(&cfg, "delete.retention.ms", "86400000", true);
    check(&cfg, "segment.ms", "604800000", true);

    // AlterConfigs replaces the topic's whole override set.
    let alter = AlterConfig::new(ResourceSpecifier::Topic("orders")).set("retention.ms", "7200000");
    let res = admin
        .alter_configs([&alter], &admin_options())
        .await
        .expect("AlterConfigs request failed");
    assert!(res.iter().all(|r| r.is_ok()), "AlterConfigs: {res:?}");
    let cfg = describe(&admin, "orders").await;
    check(&cfg, "retention.ms", "7200000", false);
    check(&cfg, "segment.bytes", "1073741824", true);
    // A bad value or an unknown name is refused and changes nothing. (rdkafka 0.39 drops
    // AlterConfigs' per-resource errors, so the error code is checked on the wire.)
    assert_eq!(
        raw_alter_configs(b.addr(), "orders", &[("retention.ms", "later")]).await,
        40,
        "AlterConfigs with a bad value: INVALID_CONFIG expected"
    );
    assert_eq!(
        raw_alter_configs(b.addr(), "orders", &[("no.such.config", "1")]).await,
        40,
        "AlterConfigs with an unknown config: INVALID_CONFIG expected"
    );
    assert_eq!(
        raw_alter_configs(b.addr(), "no-such-topic", &[("retention.ms", "1")]).await,
        3,
        "AlterConfigs of a missing topic: UNKNOWN_TOPIC_OR_PARTITION expected"
    );
    check(
        &describe(&admin, "orders").await,
        "retention.ms",
        "7200000",
        false,
    );

    // More partitions; fewer is refused.
    let res = admin
        .create_partitions([&NewPartitions::new("orders", 5)], &admin_options())
        .await
        .expect("CreatePartitions request failed");
    assert_eq!(res, vec![Ok("orders".to_string())]);
    assert_eq!(partitions_of(&bs, "orders").await, Some(5));
    let p = producer(&bs, true);
    let (part, _) = produce_one(&p, "orders", Out::kv("k", "to the new partition").to(4))
        .await
        .expect("producing to a new partition");
    assert_eq!(part, 4);
    drop_blocking(p).await;
    assert!(b.partition_dir("orders", 4).is_dir());
    let res = admin
        .create_partitions([&NewPartitions::new("orders", 2)], &admin_options())
        .await
        .unwrap();
    assert_eq!(
        res,
        vec![Err((
            "orders".to_string(),
            RDKafkaErrorCode::InvalidPartitions
        ))]
    );

    // Delete.
    let res = admin
        .delete_topics(&["orders"], &admin_options())
        .await
        .expect("DeleteTopics request failed");
    assert_eq!(res, vec![Ok("orders".to_string())]);
    let bs2 = bs.clone();
    wait_until("orders gone from metadata", TIMEOUT, || {
        let bs = bs2.clone();
        async move { Ok(!topics(&bs).await.contains(&"orders".to_string())) }
    })
    .await
    .unwrap();
    let dir = b.data_dir().to_path_buf();
    wait_until("orders-N directories removed", TIMEOUT, || {
        let gone = (0..5).all(|p| !dir.join(format!("orders-{p}")).exists());
        async move { Ok(gone) }
    })
    .await
    .unwrap();
    let res = admin
        .delete_topics(&["orders"], &admin_options())
        .await
        .unwrap();
    assert_eq!(
        res,
        vec![Err((
            "orders".to_string(),
            RDKafkaErrorCode::UnknownTopicOrPartition
        ))]
    );
    // The name can be used again, from scratch.
    create(&admin, "orders", 1, &[])
        .await
        .expect("re-creating orders");
    assert_eq!(watermarks_async(&bs, "orders", 0).await.unwrap(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_and_configs_persist_across_restart() {
    let mut b = TestBroker::start().await;
    let bs = b.bootstrap();
    {
        let admin = admin(&bs);
        create(
            &admin,
            "kept",
            4,
            &[("retention.ms", "12345"), ("cleanup.policy", "compact")],
        )
        .await
        .unwrap();
        create(&admin, "dropped", 2, &[]).await.unwrap();
        let res = admin
            .delete_topics(&["dropped"], &admin_options())
            .await
            .unwrap();
        assert_eq!(res, vec![Ok("dropped".to_string())]);
    }
    let p = producer(&bs, true);
    let acked = produce_ok(
        &p,
        "kept",
        &(0..4)
            .map(|i| Out::kv(format!("k{i}"), format!("v{i}")).to(i))
            .collect::<Vec<_>>(),
    )
    .await;
    drop_blocking(p).await;

    b.restart().await;
    let bs = b.bootstrap();
    assert_eq!(partitions_of(&bs, "kept").await, Some(4));
    let listed = topics(&bs).await;
    assert!(
        !listed.contains(&"dropped".to_string()),
        "deleted topic is back: {listed:?}"
    );
    let admin = admin(&bs);
    let cfg = describe(&admin, "kept").await;
    assert_eq!(cfg["retention.ms"].0.as_deref(), Some("12345"));
    assert!(!cfg["retention.ms"].1);
    assert_eq!(cfg["cleanup.policy"].0.as_deref(), Some("compact"));
    assert!(!cfg["cleanup.policy"].1);
    assert!(cfg["segment.bytes"].1);
    let recs = read_all_async(&bs, "kept").await.unwrap();
    let mut got: Vec<(i32, i64, String)> = recs
        .iter()
        .map(|r| (r.partition, r.offset, r.value_str()))
        .collect();
    got.sort();
    let want: Vec<(i32, i64, String)> = acked
        .iter()
        .enumerate()
        .map(|(i, (p, o))| (*p, *o, format!("v{i}")))
        .collect();
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_auto_creates_topics() {
    // Broker default: one partition.
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    let p = producer(&bs, true);
    let (part, off) = produce_one(&p, "auto-default", Out::kv("k", "v"))
        .await
        .expect("producing to an unknown topic");
    assert_eq!((part, off), (0, 0));
    drop_blocking(p).await;
    assert_eq!(partitions_of(&bs, "auto-default").await, Some(1));
    let recs = read_all_async(&bs, "auto-default").await.unwrap();
    assert_eq!(recs.len(), 1);

    // num.partitions decides the count.
    let b3 = TestBroker::start_with(&[("num.partitions", "3")]).await;
    let bs3 = b3.bootstrap();
    let p = producer(&bs3, true);
    let sent: Vec<Out> = (0..30).map(|i| Out::kv(format!("key-{i}"), "v")).collect();
    produce_ok(&p, "auto-three", &sent).await;
    drop_blocking(p).await;
    assert_eq!(partitions_of(&bs3, "auto-three").await, Some(3));
    let recs = read_all_async(&bs3, "auto-three").await.unwrap();
    assert_eq!(recs.len(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_auto_create_when_disabled() {
    let b = TestBroker::start_with(&[("auto.create.topics.enable", "false")]).await;
    let bs = b.bootstrap();
    let mut cfg = producer_config(&bs, false);
    cfg.set("message.timeout.ms", "5000")
        .set("topic.metadata.propagation.max.ms", "1000");
    let p: FutureProducer = cfg.create().unwrap();
    let res = produce_one(&p, "not-created", Out::kv("k", "v")).await;
    assert!(
        matches!(
            res,
            Err(KafkaError::MessageProduction(
                RDKafkaErrorCode::UnknownTopicOrPartition
                    | RDKafkaErrorCode::UnknownTopic
                    | RDKafkaErrorCode::MessageTimedOut
            ))
        ),
        "producing to an unknown topic with auto-creation off: {res:?}"
    );
    drop_blocking(p).await;
    assert!(!topics(&bs).await.contains(&"not-created".to_string()));
    assert!(!b.partition_dir("not-created", 0).exists());

    // A Metadata request naming the topic reports it unknown and does not create it.
    let bs2 = bs.clone();
    let err = blocking(move || {
        let c = query_consumer(&bs2);
        let md = c
            .fetch_metadata(Some("not-created"), Duration::from_secs(20))
            .unwrap();
        md.topics()
            .iter()
            .find(|t| t.name() == "not-created")
            .map(|t| t.error())
    })
    .await;
    assert!(
        matches!(err, None | Some(Some(_))),
        "metadata for an unknown topic must carry an error: {err:?}"
    );
    assert!(!topics(&bs).await.contains(&"not-created".to_string()));

    // Explicit creation still works.
    create_topic(&bs, "created", 2, &[]).await;
    assert_round_trip(&bs, "created").await;
}

/// DeleteRecords on a raw connection, v0 (classic) and v2 (flexible): the codes librdkafka
/// answers locally (unknown topic or partition) come from the broker too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_raw_versions_and_unknown_targets() {
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    create_topic(&bs, "dr", 1, &[]).await;
    let p = producer(&bs, false);
    produce_ok(
        &p,
        "dr",
        &(0..6)
            .map(|i| Out::kv("k", format!("v{i}")))
            .collect::<Vec<_>>(),
    )
    .await;
    drop_blocking(p).await;
    let code = |e: ResponseError| e.code();
    // The leader of dr-0 answers for it; Kafka orders the answer by topic, not as asked, and
    // keeps one answer per partition, so each request names a partition once.
    let leader = leader_addr(&bs, "dr", 0).await;
    for (version, offset) in [(0, 2), (2, 4)] {
        let mut got = raw_delete_records(
            leader,
            version,
            &[("dr", 0, offset), ("dr", 3, 0), ("nope", 0, 0)],
        )
        .await;
        got.extend(raw_delete_records(leader, version, &[("dr", 0, 99)]).await);
        got.sort();
        let mut want: Vec<(String, i32, i64, i16)> = vec![
            ("dr".into(), 0, offset, 0),
            (
                "dr".into(),
                3,
                -1,
                code(ResponseError::UnknownTopicOrPartition),
            ),
            (
                "nope".into(),
                0,
                -1,
                code(ResponseError::UnknownTopicOrPartition),
            ),
            ("dr".into(), 0, -1, code(ResponseError::OffsetOutOfRange)),
        ];
        want.sort();
        assert_eq!(got, want, "v{version}");
    }
    assert_eq!(watermarks_async(&bs, "dr", 0).await.unwrap(), (4, 6));
}
