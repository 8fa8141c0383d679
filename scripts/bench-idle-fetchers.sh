#!/usr/bin/env bash
# Runs examples/bench_idle_fetchers against a fresh `brook broker` of binary BIN:
#   scripts/bench-idle-fetchers.sh BIN [bench_idle_fetchers args]
# (build the example first: cargo build --example bench_idle_fetchers)
set -e
bin=$1; dir=$(mktemp -d)
"$bin" broker --data-dir "$dir" --listen 127.0.0.1:0 >"$dir.log" 2>&1 &
pid=$!
for _ in $(seq 100); do addr=$(grep -oE '127\.0\.0\.1:[0-9]+' "$dir.log" | head -1 || true); [ -n "$addr" ] && break; sleep 0.1; done
"${CARGO_TARGET_DIR:-target}/debug/examples/bench_idle_fetchers" --bootstrap "$addr" "${@:2}"
kill $pid; wait $pid 2>/dev/null || true; rm -rf "$dir" "$dir.log"
