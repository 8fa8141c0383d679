#!/usr/bin/env bash
# Produce throughput of two `brook` binaries side by side in one run (before/after a change):
# each round starts a fresh broker of each binary on an empty data directory and runs the same
# `brook bench produce` workloads against it, printing records/s and the broker's CPU seconds.
#
#   scripts/bench-produce-ab.sh /tmp/brook-old /tmp/brook-new [rounds]
set -euo pipefail
old=$1 new=$2 rounds=${3:-2}
client=$new
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

# name | bench produce arguments
workloads=(
  "100B none|--num-records 5000000 --record-size 100 --acks 1"
  "1KB none|--num-records 1000000 --record-size 1000 --acks 1"
  "100B lz4|--num-records 5000000 --record-size 100 --acks 1 --compression lz4"
  "1KB zstd|--num-records 1000000 --record-size 1000 --acks 1 --compression zstd"
)

cpu_s() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; }

results="$work/results"
printf '%-6s %-8s %-10s %12s %10s\n' round binary workload records/s broker-cpu
for round in $(seq 1 "$rounds"); do
  for which in old new; do
    bin=${!which}
    dir="$work/$which-$round"
    "$bin" broker --data-dir "$dir" --listen 127.0.0.1:0 >"$work/log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
      addr=$(grep -oE '127\.0\.0\.1:[0-9]+' "$work/log" | head -1 || true)
      [ -n "$addr" ] && break
      sleep 0.1
    done
    i=0
    for w in "${workloads[@]}"; do
      name=${w%%|*} args=${w#*|}
      i=$((i + 1))
      before=$(cpu_s $pid)
      # shellcheck disable=SC2086
      rate=$("$client" bench produce -b "$addr" --topic "t$i" $args 2>/dev/null |
        grep -oE '[0-9][0-9,.]* records/sec' | head -1 | tr -d ',' | awk '{print $1}')
      after=$(cpu_s $pid)
      printf '%-6s %-8s %-10s %12s %10s\n' "$round" "$which" "$name" "${rate:-?}" \
        "$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.2f", a - b }')" | tee -a "$results"
    done
    kill $pid; wait $pid 2>/dev/null || true
    rm -rf "$dir"
  done
done

# Medians per binary and workload: single runs on a shared 2-core machine vary by ±30%.
echo
echo "median of $rounds rounds (new/old records/s)"
for w in "${workloads[@]}"; do
  name=${w%%|*}
  med() {
    grep -F " $1 " "$results" | grep -F "$name " | awk -v col="$2" '{ print $col }' | sort -g |
      awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
  }
  o=$(med old 5) n=$(med new 5) oc=$(med old 6) nc=$(med new 6)
  printf '%-10s old %12.0f (cpu %5.2f s)  new %12.0f (cpu %5.2f s)  %5.1f%%\n' "$name" "$o" "$oc" "$n" "$nc" \
    "$(awk -v a="$n" -v b="$o" 'BEGIN { printf "%.1f", 100 * a / b }')"
done
