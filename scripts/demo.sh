#!/usr/bin/env bash
# Quick start, part one: build and run the demo pipeline on the embedded broker.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/brook-target}"
exec cargo run --example demo
