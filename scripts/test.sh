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

exec cargo test --workspace --all-targets --no-fail-fast "$@"
