#!/usr/bin/env bash
# Installs what the tests need, builds the `brook` binary (the crash test runs it as a child
# process) and runs every test of the workspace (all test binaries, even after a failure),
# then the streams and connect subset on a 3-node Kafka cluster (scripts/test-on-kafka.sh).
# Extra arguments go to `cargo test` (and skip the Kafka run).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

# Outside the checkout, so a fresh clone does not rebuild librdkafka.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/brook-target}"

cargo build -p brook-cli
export BROOK_BIN="$CARGO_TARGET_DIR/debug/brook"

# Keep cargo's exit status, and close with one line that totals every test binary.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace --all-targets --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"

# Then the streams and connect tests again, on a 3-node Apache Kafka cluster (the whole run
# only: extra arguments select tests of the normal suite). BROOK_TEST_KAFKA=0 skips it.
if [ $# -eq 0 ] && [ "${BROOK_TEST_KAFKA:-1}" != 0 ]; then
  set +e
  bash scripts/test-on-kafka.sh
  kafka_status=$?
  set -e
  [ "$kafka_status" -eq 0 ] || status=$kafka_status
fi
exit "$status"
