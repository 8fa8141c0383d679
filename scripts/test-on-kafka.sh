#!/usr/bin/env bash
# Runs the tests that cover streams and connect against a real Apache Kafka cluster: 3 KRaft
# nodes from scripts/kafka-cluster.sh, default.replication.factor=3, min.insync.replicas=2.
# The same test code as the normal suite, pointed at the cluster with BROOK_TEST_BOOTSTRAP;
# one test at a time, since every test starts by wiping the cluster (tests/common/cluster.rs).
#
#   scripts/test-on-kafka.sh                 # the CI subset, below
#   scripts/test-on-kafka.sh TEST [ARGS]     # one test binary (ARGS: a name filter, --skip NAME)
#   BROOK_TEST_BOOTSTRAP=h:p,... scripts/test-on-kafka.sh ...   # a cluster you started
#
# Needs java 17+ and mvn (Kafka comes from Maven Central once, cached outside the checkout).
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/brook-target}"
cargo build -p brook-cli
export BROOK_BIN="$CARGO_TARGET_DIR/debug/brook"

# test binary | arguments for the test binary (a name filter, --skip NAME). Together they
# cover every capability of streams and connect; the tests left out need the embedded broker
# itself (its configs, its data directory, restarting it).
subset=(
  "replication|"            # internal topics get the cluster's replication factor (3)
  "pipeline|"               # the quick-start pipeline: file tail -> streams -> SQLite, totals checked
  "streams_wordcount|--skip a_sink_topic_that_cannot_be_written" # node kill -9, standbys, restore, rebalances
  "streams_runtime|"        # state listener, restore, memory budget, thread replacement, shutdown
  "streams_copartition|"    # repartition topics, co-partitioned joins
  "connect_file|"           # file source across rotations, file sink, DLQ
  "connect_sqlite|"         # SQLite source / sink / CDC
  "connect_rest|"           # Kafka Connect's REST API, offsets API
  "connect_sink_tasks|"     # sink tasks across rebalances
  "connect_source_tasks|"   # source delivery failures, restarts
  "connect_status|"         # status.storage.topic records
  # Differential: the broker-facing tests against Kafka itself. Left out: tests that set broker
  # configs (message.max.bytes, fetch.max.bytes, connection, idle and request-memory limits,
  # num.partitions, auto.create.topics.enable), read Brook's data directory or measure its RSS.
  "roundtrip|--skip idempotent_retry_after_dropped_connection --skip topic_compression_type_recompresses_batches"
  "groups|"                 # assignors, static membership and fencing, offsets across a restart
  "admin|--skip create_describe_alter_extend_delete --skip produce_auto_creates_topics --skip no_auto_create_when_disabled"
  "timestamps|"             # ListOffsets by timestamp, LogAppendTime, across a restart
  "delete_records|--skip delete_records_moves_the_log_start"
  "bad_input|--skip connection_limits --skip fetch_is_capped --skip produce_larger_than --skip queued_request_bytes --skip a_frame_that_would_decode --skip idle_connections_are_closed --skip a_client_that_stops_reading"
)
if [ $# -gt 0 ]; then
  subset=("$1|${*:2}")
fi

# Build every test binary first: the cluster should not idle through a compile.
targets=()
for entry in "${subset[@]}"; do targets+=(--test "${entry%%|*}"); done
cargo test --no-run "${targets[@]}"

started=""
if [ -z "${BROOK_TEST_BOOTSTRAP:-}" ]; then
  dir=$(mktemp -u -d "${TMPDIR:-/tmp}/brook-kafka-test.XXXXXX")
  BROOK_TEST_BOOTSTRAP=$(scripts/kafka-cluster.sh start --nodes 3 --dir "$dir" \
    --prop default.replication.factor=3 --prop min.insync.replicas=2 \
    --prop broker.session.timeout.ms=3000 --prop broker.heartbeat.interval.ms=500)
  started=$dir
  # The failover test kills and restarts nodes of this cluster.
  export BROOK_TEST_KAFKA_DIR=$dir
  trap 'scripts/kafka-cluster.sh stop --dir "$started" || true' EXIT
fi
export BROOK_TEST_BOOTSTRAP
echo "test-on-kafka: cluster $BROOK_TEST_BOOTSTRAP" >&2

log=$(mktemp)
status=0
for entry in "${subset[@]}"; do
  test=${entry%%|*} filter=${entry#*|}
  echo "test-on-kafka: $test ${filter:-(all)}" >&2
  set +e
  # shellcheck disable=SC2086 # the arguments are words
  cargo test --test "$test" -- --test-threads 1 $filter 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  set -e
  [ "$rc" -eq 0 ] || status=$rc
done
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests on Kafka: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
