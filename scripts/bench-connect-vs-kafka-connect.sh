#!/usr/bin/env bash
# File into a topic: Kafka Connect 4.4.0 standalone with FileStreamSource (bench/kafka-connect-standalone)
# against `brook connect standalone` with FileTailSource, the same file into the same broker.
#
#   scripts/bench-connect-vs-kafka-connect.sh --broker brook|kafka [options]
#     --broker brook|kafka    a fresh Brook broker (from --brook) or a one-node Apache Kafka 4.4.0
#                             (scripts/kafka-cluster.sh start --nodes 1), in the run's temp dir;
#                             both with group.initial.rebalance.delay.ms=0
#     --brook BIN             brook CLI: broker, topic creation and `brook connect standalone`
#                             (default $CARGO_TARGET_DIR/release/brook, CARGO_TARGET_DIR defaulting
#                             to ~/.cache/brook-target)
#     --lines N               lines in the file (default 1000000), each --line-bytes (100) bytes with
#                             the newline: an 8-digit line number and random words (seed --seed 1),
#                             generated once into ~/.cache/brook-bench
#     --batch-size N          batch.size of both connectors (default 2000, both defaults)
#     --repeat K              runs of each worker (default 1; use 3 for numbers to quote), alternating
#                             which goes first, each into a fresh topic with fresh offsets (Kafka:
#                             offset file; Brook: offset/config topics)
#     --only kafka-connect|brook   run one worker only
#     --timeout S             give up on a run after S seconds (default 1800)
#     --keep                  keep the temp dir (logs, configs, broker data) and print its path
#
# Each run: the worker starts with the connector given on its command line; the clock runs from
# its launch until the topic's end offset reaches N (polled every 50 ms by scripts/kafka-offsets.py);
# CPU = utime+stime of the worker process at that moment (/proc/PID/stat); broker CPU over the same
# interval. Then SIGTERM. "_1" figures count from when the topic first held a record (leaving out
# JVM start, plugin scanning, topic look-ups), CPU included. Both workers use StringConverter for
# keys and values (records: key null, value = the line without its newline) and their default
# producer settings. At the end: a result table, and each topic's values checked against the file
# (count and md5 of all values in order, read back with kcat).
# Needs java 17+, mvn (first build), kcat, python3.
# Environment: JAVA, CONNECT_JAVA_OPTS (default -Xmx1g), KAFKA_HEAP_OPTS (for --broker kafka).
set -euo pipefail
. "$(dirname "$0")/bench-lib.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit "$1"; }

TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/brook-target}
BROKER="" BROOK_SRC="$TARGET/release/brook"
LINES=1000000 LINE_BYTES=100 SEED=1 BATCH=2000 REPEAT=1 ONLY="" TIMEOUT=1800 KEEP=""
while [ $# -gt 0 ]; do
    case $1 in
        --broker) BROKER=$2; shift 2 ;;
        --brook) BROOK_SRC=$2; shift 2 ;;
        --lines) LINES=$2; shift 2 ;;
        --line-bytes) LINE_BYTES=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --batch-size) BATCH=$2; shift 2 ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h | --help) usage 0 ;;
        *) echo "unknown argument: $1" >&2; usage 2 ;;
    esac
done
[ -n "$BROKER" ] || usage 2
case $ONLY in "" | kafka-connect | brook) ;; *) die "--only wants kafka-connect or brook" ;; esac
[ "$LINE_BYTES" -ge 10 ] || die "--line-bytes must be at least 10"
for t in kcat python3 md5sum "$JAVA"; do command -v "$t" >/dev/null || die "$t not found"; done
JAVA_OPTS=${CONNECT_JAVA_OPTS:--Xmx1g}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-connect.XXXXXX")
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

BROOK=$(private_copy "$BROOK_SRC")
KC_DIR="$BENCH_ROOT/bench/kafka-connect-standalone"
if [ "$ONLY" != brook ]; then
    mvn_build "$KC_DIR" target/connect-compat.jar
    KC_CP="$KC_DIR/target/connect-compat.jar:$KC_DIR/target/lib/*"
fi

# --- the file, generated once per (lines, bytes, seed) -------------------------------------------
mkdir -p "$BENCH_CACHE"
DATA="$BENCH_CACHE/connect-l$LINES-b$LINE_BYTES-s$SEED.txt"
if [ ! -f "$DATA" ]; then
    log "generating $LINES lines of $LINE_BYTES bytes into $DATA"
    python3 - "$LINES" "$LINE_BYTES" "$SEED" "$DATA" <<'EOF'
import os, random, sys
lines, size, seed, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
r = random.Random(seed)
words = ["".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 9))) for _ in range(5000)]
# A pool of line tails, so generation is fast; the line number makes every line distinct.
tails = []
for _ in range(4096):
    t = ""
    while len(t) < size:
        t += " " + r.choice(words)
    tails.append(t[: size - 9])  # 8 digits + tail + "\n" = size bytes
with open(out + ".tmp", "w") as f:
    for start in range(0, lines, 100000):
        f.write("".join(f"{i % 100000000:08d}{r.choice(tails)}\n" for i in range(start, min(lines, start + 100000))))
os.rename(out + ".tmp", out)
EOF
fi
BYTES=$(stat -c %s "$DATA")
read -r WANT_MD5 _ < <(md5sum "$DATA")

start_broker "$BROKER" "$BROOK"

# Kafka Connect's log4j2: INFO to the worker's log (startup and task lines), as its own default.
cat >"$WORK/connect-log4j2.properties" <<'EOF'
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
EOF

RESULTS=() TOPICS=()
run_worker() { # run_worker kafka-connect|brook RUN
    local who=$1 run=$2 topic dir pid t0 out b0 b1 cpu rss
    topic="file-$who-$run"
    dir="$WORK/$who-$run"
    mkdir -p "$dir"
    create_topic "$topic"
    TOPICS+=("$who:$topic")
    if [ "$who" = kafka-connect ]; then
        cat >"$dir/worker.properties" <<EOF
bootstrap.servers=$BOOT
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.storage.StringConverter
offset.storage.file.filename=$dir/connect.offsets
offset.flush.interval.ms=10000
listeners=http://127.0.0.1:0
plugin.discovery=only_scan
EOF
        cat >"$dir/source.properties" <<EOF
name=file-source-$run
connector.class=FileStreamSource
tasks.max=1
file=$DATA
topic=$topic
batch.size=$BATCH
EOF
    else
        cat >"$dir/worker.properties" <<EOF
bootstrap.servers=$BOOT
rest.port=0
offset.storage.topic=bench-connect-offsets-$run
config.storage.topic=bench-connect-configs-$run
key.converter=org.apache.kafka.connect.storage.StringConverter
value.converter=org.apache.kafka.connect.storage.StringConverter
offset.flush.interval.ms=10000
EOF
        cat >"$dir/source.properties" <<EOF
name=file-tail-$run
connector.class=FileTailSource
tasks.max=1
file=$DATA
topic=$topic
read.from=beginning
batch.size=$BATCH
EOF
    fi
    t0=$(date +%s.%N)
    b0=$(cpu_secs "$BROKER_PID")
    if [ "$who" = kafka-connect ]; then
        # shellcheck disable=SC2086 # JAVA_OPTS is a word list
        "$JAVA" $JAVA_OPTS -Dlog4j2.configurationFile="$WORK/connect-log4j2.properties" -cp "$KC_CP" \
            org.apache.kafka.connect.cli.ConnectStandalone "$dir/worker.properties" "$dir/source.properties" \
            >"$dir/worker.log" 2>&1 &
    else
        RUST_LOG=${RUST_LOG:-info} "$BROOK" connect standalone --rest-host 127.0.0.1 \
            "$dir/worker.properties" "$dir/source.properties" >"$dir/worker.log" 2>&1 &
    fi
    pid=$!
    CHILD_PIDS+=("$pid")
    log "run $run: $who (pid $pid) -> topic $topic"
    if ! watch_offsets -b "$BOOT" wait-end "$topic" --expect "$LINES" --t0 "$t0" \
        --pid "$pid" --timeout "$TIMEOUT"; then
        tail -n 30 "$dir/worker.log" >&2
        die "$who did not finish (log above: $dir/worker.log)"
    fi
    out=$WATCH_OUT rss=$(peak_rss_mb "$pid") b1=$(cpu_secs "$BROKER_PID")
    stop_pid "$pid" 60
    local done_s first_s cpu cpu_f proc_s mlines
    field() { sed -n "s/.*\b$1=\([0-9.?]*\).*/\1/p" <<<"$out"; }
    done_s=$(field done_s) first_s=$(field first_record_s) cpu=$(field cpu_done) cpu_f=$(field cpu_first)
    proc_s=$(awk -v a="$done_s" -v b="$first_s" 'BEGIN { printf "%.3f", a - b }')
    mlines=$(div "$LINES" 1000000 6)
    RESULTS+=("$(printf '%-30s %3s %7.2f %7.2f %9s %10s %6s %7s %9s %7s %6s' \
        "$([ "$who" = kafka-connect ] && echo "Kafka Connect FileStreamSource" || echo "Brook FileTailSource")" \
        "$run" "$done_s" "$first_s" "$(div "$LINES" "$done_s")" "$(div "$LINES" "$proc_s")" "$cpu" \
        "$(div "$cpu" "$mlines" 2)" \
        "$(div "$(awk -v a="$cpu" -v b="$cpu_f" 'BEGIN { printf "%.2f", a - b }')" "$mlines" 2)" \
        "$(awk -v a="$b1" -v b="$b0" 'BEGIN { printf "%.2f", a - b }')" "$rss")")
    log "  done after ${done_s}s (first record at ${first_s}s), CPU ${cpu}s"
}
# Odd runs: Kafka Connect first; even runs: Brook first (the first run also warms the broker up,
# which matters for Kafka's JIT).
for ((run = 1; run <= REPEAT; run++)); do
    if ((run % 2)); then order=(kafka-connect brook); else order=(brook kafka-connect); fi
    for who in "${order[@]}"; do [ -n "$ONLY" ] && [ "$ONLY" != "$who" ] || run_worker "$who" "$run"; done
done

# --- every topic holds the file's lines, in order -------------------------------------------------
CHECKS=() status=0
for entry in "${TOPICS[@]}"; do
    topic=${entry#*:}
    kcat -C -b "$BOOT" -t "$topic" -p 0 -o beginning -e -q -f '%s\n' >"$WORK/values"
    n=$(wc -l <"$WORK/values")
    read -r md5 _ < <(md5sum "$WORK/values")
    rm -f "$WORK/values"
    keys=$(kcat -C -b "$BOOT" -t "$topic" -p 0 -o beginning -c 3 -e -q -f '%K ')
    if [ "$n" = "$LINES" ] && [ "$md5" = "$WANT_MD5" ]; then
        CHECKS+=("  $topic: OK ($n records, values = the file's lines in order; key lengths of the first 3: $keys)")
    else
        CHECKS+=("  $topic: MISMATCH ($n records, md5 $md5, file md5 $WANT_MD5)"); status=1; KEEP=1
    fi
done

echo
echo "File source: $LINES lines x $LINE_BYTES bytes ($((BYTES / 1000000)) MB), batch.size=$BATCH, 1 partition," \
    "broker: $BROKER ($BOOT)"
printf '%-30s %3s %7s %7s %9s %10s %6s %7s %9s %7s %6s\n' worker run wall_s first_s lines/s lines/s_1 \
    cpu_s cpu/M cpu/M_1 brk_cpu rss_MB
printf '%s\n' "${RESULTS[@]}"
echo "wall_s: launch -> topic end offset = $LINES; first_s: when the topic first held a record;"
echo "lines/s_1: lines / (wall_s - first_s); cpu_s: the worker's user+sys at wall_s; cpu/M: cpu_s per"
echo "million lines; cpu/M_1: the same counting only CPU used after the first record (no JVM start,"
echo "no plugin scan); brk_cpu: broker CPU seconds over the run; rss_MB: the worker's peak RSS."
printf '%s\n' "${CHECKS[@]}"
exit $status
