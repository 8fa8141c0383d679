//! The seeds of the fuzz corpus: a frame for every supported API and version (every array
//! populated, from the pre-pass tests' samples) and record sets in every codec. They must all
//! be accepted; `write_seed_corpus` writes them under `fuzz/corpus/` (run it with
//! `cargo test -p brook-broker --lib fuzzing -- --ignored`, then fuzz and `cargo fuzz cmin`).

use std::path::PathBuf;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{produce_request as produce, ApiKey, ProduceRequest, RequestHeader};
use kafka_protocol::messages::{RequestKind, TopicName};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::{records, request, Verdict};
use crate::server::bounds::tests::{encoded, every_version};

const NOW: i64 = 1_700_000_000_000;

fn frame(api: ApiKey, version: i16, body: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(42)
        .with_client_id(Some(StrBytes::from_static_str("fuzz-seed")))
        .encode(&mut buf, api.request_header_version(version))
        .unwrap();
    buf.extend_from_slice(body);
    buf.to_vec()
}

fn record(i: usize, key: bool, value: bool, headers: usize) -> Record {
    let mut record = Record {
        transactional: false,
        control: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: i as i64,
        // The encoder starts a new batch where offset - sequence changes: keep it constant.
        sequence: i as i32 - 1,
        timestamp: NOW + i as i64,
        key: key.then(|| Bytes::from(format!("key-{i}"))),
        value: value.then(|| Bytes::from(format!("value-{i}-").repeat(3))),
        headers: Default::default(),
        delete_horizon: false,
    };
    for h in 0..headers {
        record.headers.insert(
            StrBytes::from_string(format!("header-{h}")),
            (h % 2 == 0).then(|| Bytes::from_static(b"header value")),
        );
    }
    record
}

fn batch(records: &[Record], compression: Compression) -> Vec<u8> {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    buf.to_vec()
}

/// `plain` (an uncompressed batch) with its records in xerial-framed snappy, as the Java
/// client writes it: the magic header, then length-prefixed raw blocks.
fn xerial_snappy(plain: &[u8]) -> Vec<u8> {
    let mut out = plain[..61].to_vec();
    out.extend_from_slice(b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01");
    for chunk in plain[61..].chunks(16) {
        let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
        out.extend_from_slice(&(block.len() as u32).to_be_bytes());
        out.extend_from_slice(&block);
    }
    let batch_length = (out.len() - 12) as i32;
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = i16::from_be_bytes([out[21], out[22]]) | 2;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

fn record_sets() -> Vec<(String, Vec<u8>)> {
    let mixed: Vec<Record> = (0..4).map(|i| record(i, true, i != 2, i)).collect();
    let keyless: Vec<Record> = (0..3).map(|i| record(i, i == 1, true, 0)).collect();
    let idempotent: Vec<Record> = (0..3)
        .map(|i| Record {
            producer_id: 7,
            producer_epoch: 1,
            sequence: 10 + i as i32,
            ..record(i, true, true, 1)
        })
        .collect();
    let append_time: Vec<Record> = (0..2)
        .map(|i| Record {
            timestamp_type: TimestampType::LogAppend,
            ..record(i, true, true, 0)
        })
        .collect();
    let mut sets = vec![
        (
            "one-record".to_string(),
            batch(&mixed[..1], Compression::None),
        ),
        ("headers-tombstone".into(), batch(&mixed, Compression::None)),
        ("null-keys".into(), batch(&keyless, Compression::None)),
        ("idempotent".into(), batch(&idempotent, Compression::None)),
        (
            "log-append-time".into(),
            batch(&append_time, Compression::None),
        ),
        (
            "xerial-snappy".into(),
            xerial_snappy(&batch(&mixed, Compression::None)),
        ),
        (
            "two-batches".into(),
            [
                batch(&mixed, Compression::None),
                batch(&keyless, Compression::Lz4),
            ]
            .concat(),
        ),
    ];
    for (name, codec) in [
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ] {
        sets.push((name.into(), batch(&mixed, codec)));
    }
    sets
}

fn request_frames() -> Vec<(String, Vec<u8>)> {
    let mut frames: Vec<(String, Vec<u8>)> = every_version()
        .map(|(api, v)| (format!("{api:?}-v{v}"), frame(api, v, &encoded(api, v))))
        .collect();
    // Produce carrying real batches, so mutations reach record sets inside requests too.
    for (v, (name, records)) in [3, 7, 9].into_iter().zip(record_sets()) {
        let body = RequestKind::Produce(
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(1000)
                .with_topic_data(vec![produce::TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_static_str("orders")))
                    .with_partition_data(vec![produce::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(records)))])]),
        );
        let mut buf = BytesMut::new();
        body.encode(&mut buf, v).unwrap();
        frames.push((
            format!("Produce-v{v}-{name}"),
            frame(ApiKey::Produce, v, &buf),
        ));
    }
    // An ApiVersions version above the supported ones is answered, not refused.
    frames.push((
        "ApiVersions-v9-unsupported".into(),
        frame(ApiKey::ApiVersions, 3, &[0, 0])
            .into_iter()
            .enumerate()
            .map(|(i, b)| if i == 3 { 9 } else { b })
            .collect(),
    ));
    frames
}

#[test]
fn every_seed_is_accepted() {
    for (name, frame) in request_frames() {
        assert_eq!(
            request(&frame),
            Ok(Verdict::Accepted),
            "request seed {name}"
        );
    }
    for (name, set) in record_sets() {
        assert_eq!(
            records(&set),
            Ok(Verdict::Accepted),
            "record set seed {name}"
        );
    }
}

#[test]
#[ignore = "writes the seed corpus into fuzz/corpus"]
fn write_seed_corpus() {
    let corpus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (dir, seeds) in [("request", request_frames()), ("records", record_sets())] {
        let dir = corpus.join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, data) in seeds {
            std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
        }
    }
}
