#!/usr/bin/env bash
# Brook's broker against Apache Kafka (one node each, same machine and disk, default configs
# apart from the listener), with the same rdkafka benchmark (`brook bench produce|consume`),
# alternating the two brokers for several rounds. Prints records/s, MB/s, p99 latency, the
# broker's CPU seconds per workload and its RSS at the end of the round.
#
#   scripts/bench-vs-kafka.sh BROOK_BIN [rounds]
#
# Each broker first gets an unmeasured warm-up (WARMUP_RECORDS × 100 B produced and consumed,
# default 1000000; 0 skips it), so Kafka's JIT compiles its hot paths there rather than during
# the first measured workload.
set -euo pipefail
cd "$(dirname "$0")/.."
brook=$1 rounds=${2:-2} warmup=${WARMUP_RECORDS:-1000000}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/brook-vs-kafka.XXXXXX")
cleanup() {
  [ -n "${bpid:-}" ] && kill "$bpid" 2>/dev/null || true
  [ -d "$work/kafka" ] && scripts/kafka-cluster.sh stop --dir "$work/kafka" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# name | topic | bench arguments (consume reads what the first workload wrote)
workloads=(
  "produce 100B acks=1|p100|produce --num-records 2000000 --record-size 100 --acks 1"
  "produce 1KB acks=1|p1k|produce --num-records 500000 --record-size 1000 --acks 1"
  "produce 100B acks=all|p100all|produce --num-records 2000000 --record-size 100 --acks all"
  "produce 1KB acks=all|p1kall|produce --num-records 500000 --record-size 1000 --acks all"
  "consume 100B|p100|consume --num-records 2000000"
)
cpu_s() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat"; }
rss_mb() { awk '/VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status"; }

printf '%-5s %-6s %-22s %12s %9s %9s %8s\n' round broker workload records/s p99-ms cpu-s rss-MB
for round in $(seq 1 "$rounds"); do
  for which in brook kafka; do
    if [ "$which" = brook ]; then
      "$brook" broker --data-dir "$work/brook" --listen 127.0.0.1:0 >"$work/brook.log" 2>&1 &
      bpid=$!
      for _ in $(seq 100); do
        addr=$(grep -oE '127\.0\.0\.1:[0-9]+' "$work/brook.log" | head -1 || true)
        [ -n "$addr" ] && break
        sleep 0.1
      done
      pid=$bpid
    else
      addr=$(scripts/kafka-cluster.sh start --nodes 1 --dir "$work/kafka" 2>/dev/null)
      pid=$(awk '{ print $2 }' "$work/kafka/pids")
    fi
    if [ "$warmup" -gt 0 ]; then
      "$brook" bench produce -b "$addr" --topic warmup --num-records "$warmup" --record-size 100 \
        --acks 1 >/dev/null 2>&1 || true
      "$brook" bench consume -b "$addr" --topic warmup --num-records "$warmup" >/dev/null 2>&1 || true
    fi
    for w in "${workloads[@]}"; do
      name=${w%%|*} rest=${w#*|}
      topic=${rest%%|*} args=${rest#*|}
      before=$(cpu_s "$pid")
      # shellcheck disable=SC2086 # the arguments are words
      out=$("$brook" bench ${args%% *} -b "$addr" --topic "$topic" ${args#* } 2>&1 || true)
      rate=$(grep -oE '[0-9.]+ records/sec' <<<"$out" | head -1 | cut -d' ' -f1 || true)
      p99=$(grep -oE 'p99 [0-9.]+' <<<"$out" | head -1 | cut -d' ' -f2 || true)
      printf '%-5s %-6s %-22s %12s %9s %9s %8s\n' "$round" "$which" "$name" "${rate:-?}" "${p99:--}" \
        "$(awk -v a="$before" -v b="$(cpu_s "$pid")" 'BEGIN { printf "%.2f", b - a }')" "$(rss_mb "$pid")"
    done
    if [ "$which" = brook ]; then
      kill "$bpid"; wait "$bpid" 2>/dev/null || true; bpid=""
      rm -rf "$work/brook"
    else
      scripts/kafka-cluster.sh stop --dir "$work/kafka" >/dev/null 2>&1
    fi
  done
done
