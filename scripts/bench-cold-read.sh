#!/usr/bin/env bash
# Runs examples/bench_cold_read against a fresh `brook broker` of binary BIN:
#   scripts/bench-cold-read.sh BIN [bench_cold_read args]
# Broker configs go in BROOK_CONFIGS, e.g. BROOK_CONFIGS="num.io.threads=2".
# (build the example first: cargo build --example bench_cold_read). The data directory is
# under $BENCH_DIR (default /var/tmp, a disk rather than a tmpfs) and deleted afterwards.
set -e
bin=$1; dir=$(mktemp -d "${BENCH_DIR:-/var/tmp}/brook-cold.XXXXXX")
configs=(); for c in ${BROOK_CONFIGS:-}; do configs+=(--config "$c"); done
"$bin" broker --data-dir "$dir" --listen 127.0.0.1:0 "${configs[@]}" >"$dir.log" 2>&1 &
pid=$!
for _ in $(seq 100); do addr=$(grep -oE '127\.0\.0\.1:[0-9]+' "$dir.log" | head -1 || true); [ -n "$addr" ] && break; sleep 0.1; done
"${CARGO_TARGET_DIR:-target}/debug/examples/bench_cold_read" --bootstrap "$addr" --data-dir "$dir" "${@:2}"
grep -c "rebalanc" "$dir.log" | sed 's/^/broker log lines mentioning a rebalance: /' || true
kill $pid; wait $pid 2>/dev/null || true; rm -rf "$dir" "$dir.log"
