#!/usr/bin/env bash
# Installs what the tests need, builds the `brook` binary (the crash test runs it as a child
# process) and runs every test of the workspace (all test binaries, even after a failure).
# Extra arguments go to `cargo test`.
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
exit "$status"
