#!/usr/bin/env bash
# Quick start, part one: build and run the log-aggregation pipeline on the embedded broker
# (log generator -> FileTailSource -> streams windows -> SqliteSink), ~30 s by default.
# Extra arguments go to the pipeline, e.g. `scripts/demo.sh --duration 60 --data-dir ./brook-data`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/brook-target}"
if [ "$#" -eq 0 ]; then set -- --duration 30; fi
exec cargo run --example log_pipeline -- "$@"
