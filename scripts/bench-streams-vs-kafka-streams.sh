#!/usr/bin/env bash
# Word count: Kafka Streams 4.4.0 (bench/kafka-streams-wordcount, Java) against Brook's
# examples/wordcount.rs, on the same broker and the same pre-filled input.
#
#   scripts/bench-streams-vs-kafka-streams.sh --broker brook|kafka [options]
#     --broker brook|kafka    a fresh Brook broker (from --brook) or a one-node Apache Kafka 4.4.0
#                             (scripts/kafka-cluster.sh start --nodes 1), in the run's temp dir;
#                             both with group.initial.rebalance.delay.ms=0
#     --brook BIN             brook CLI: the broker for --broker brook, and topic creation
#                             (default $CARGO_TARGET_DIR/release/brook, CARGO_TARGET_DIR defaulting
#                             to ~/.cache/brook-target)
#     --wordcount BIN         Brook's word count (default $CARGO_TARGET_DIR/release/examples/wordcount)
#     --lines N               input lines (default 1000000), each --words-per-line (5) words drawn
#                             from a --vocab (10000) word vocabulary (Zipf, s=1, seed --seed 1); the
#                             first word capitalised and a period at the end (exercises lower-casing
#                             and the non-alphanumeric split). Generated once into ~/.cache/brook-bench
#     --commit-interval-ms MS commit.interval.ms of both applications (default 1000, the example's)
#     --repeat K              runs of each application (default 1; use 3 for numbers to quote),
#                             alternating which goes first, each with a fresh application id and
#                             state dir over the same input
#     --only kstreams|brook   run one application only
#     --timeout S             give up on a run after S seconds (default 1800)
#     --keep                  keep the temp dir (logs, broker data) and print its path
#
# Each run: the application starts with a fresh application.id; the clock runs from its launch
# until its consumer group has committed the input topic's end offset AND every
# `<application.id>-*-repartition` partition up to that partition's end (so every word was counted
# and every count change written: both commit only after their output is acknowledged); polled
# every 50 ms by scripts/kafka-offsets.py. CPU = utime+stime of the application process at that
# moment (/proc/PID/stat); broker CPU is the broker's over the same interval. Then SIGTERM.
# "_R" figures count from the moment the application logged its state change to RUNNING
# (leaving out JVM start, internal topic creation and the first rebalance), CPU included.
# At the end: a result table, and the final count (last value per key of each output topic, read
# with kcat) of every word compared with the generator's counts.
# Input topic text-lines and Brook's output word-counts are fixed by the example; Kafka Streams
# writes to word-counts-kstreams. Needs java 17+, mvn (first build), kcat, python3.
# Environment: JAVA, WORDCOUNT_JAVA_OPTS (default -Xmx1g), KAFKA_HEAP_OPTS (for --broker kafka).
set -euo pipefail
. "$(dirname "$0")/bench-lib.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit "$1"; }

TARGET=${CARGO_TARGET_DIR:-$HOME/.cache/brook-target}
BROKER="" BROOK_SRC="$TARGET/release/brook" WORDCOUNT_SRC="$TARGET/release/examples/wordcount"
LINES=1000000 WORDS_PER_LINE=5 VOCAB=10000 SEED=1 COMMIT_MS=1000 REPEAT=1 ONLY="" TIMEOUT=1800 KEEP=""
while [ $# -gt 0 ]; do
    case $1 in
        --broker) BROKER=$2; shift 2 ;;
        --brook) BROOK_SRC=$2; shift 2 ;;
        --wordcount) WORDCOUNT_SRC=$2; shift 2 ;;
        --lines) LINES=$2; shift 2 ;;
        --words-per-line) WORDS_PER_LINE=$2; shift 2 ;;
        --vocab) VOCAB=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --commit-interval-ms) COMMIT_MS=$2; shift 2 ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --timeout) TIMEOUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h | --help) usage 0 ;;
        *) echo "unknown argument: $1" >&2; usage 2 ;;
    esac
done
[ -n "$BROKER" ] || usage 2
case $ONLY in "" | kstreams | brook) ;; *) die "--only wants kstreams or brook" ;; esac
for t in kcat python3 "$JAVA"; do command -v "$t" >/dev/null || die "$t not found"; done
JAVA_OPTS=${WORDCOUNT_JAVA_OPTS:--Xmx1g}
INPUT=text-lines BROOK_OUT=word-counts KS_OUT=word-counts-kstreams

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-streams.XXXXXX")
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

BROOK=$(private_copy "$BROOK_SRC")
[ "$ONLY" = kstreams ] || WORDCOUNT=$(private_copy "$WORDCOUNT_SRC")
KS_DIR="$BENCH_ROOT/bench/kafka-streams-wordcount"
if [ "$ONLY" != brook ]; then
    mvn_build "$KS_DIR" target/kafka-streams-wordcount.jar
    KS_CP="$KS_DIR/target/kafka-streams-wordcount.jar:$KS_DIR/target/lib/*"
fi

# --- input: generated once per (lines, words, vocab, seed), with the expected counts ------------
mkdir -p "$BENCH_CACHE"
DATA="$BENCH_CACHE/wordcount-l$LINES-w$WORDS_PER_LINE-v$VOCAB-s$SEED"
if [ ! -f "$DATA.counts" ]; then
    log "generating $LINES lines into $DATA.txt"
    python3 - "$LINES" "$WORDS_PER_LINE" "$VOCAB" "$SEED" "$DATA" <<'EOF'
import collections, itertools, os, random, sys
lines, per, vocab_n, seed, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
r = random.Random(seed)
letters = "abcdefghijklmnopqrstuvwxyz"
vocab, seen = [], set()
while len(vocab) < vocab_n:
    w = "".join(r.choice(letters) for _ in range(r.randint(3, 10)))
    if w not in seen:
        seen.add(w); vocab.append(w)
cum = list(itertools.accumulate(1.0 / (k + 1) for k in range(vocab_n)))  # Zipf, s = 1
counts = collections.Counter()
with open(out + ".txt.tmp", "w") as f:
    chunk = 100000
    for start in range(0, lines, chunk):
        n = min(chunk, lines - start)
        words = r.choices(vocab, cum_weights=cum, k=n * per)
        counts.update(words)
        buf = []
        for i in range(0, n * per, per):
            line = words[i:i + per]
            buf.append(line[0].capitalize() + " " + " ".join(line[1:]) + ".\n")
        f.write("".join(buf))
os.rename(out + ".txt.tmp", out + ".txt")
with open(out + ".counts.tmp", "w") as f:
    for w, c in counts.most_common():
        f.write(f"{w} {c}\n")
os.rename(out + ".counts.tmp", out + ".counts")
EOF
fi
WORDS=$((LINES * WORDS_PER_LINE))

# --- broker and topics ---------------------------------------------------------------------------
start_broker "$BROKER" "$BROOK"
for t in "$INPUT" "$BROOK_OUT" "$KS_OUT"; do create_topic "$t"; done
log "producing $LINES lines into $INPUT"
kcat -P -b "$BOOT" -t "$INPUT" -p 0 -l -X linger.ms=20 -X batch.num.messages=10000 \
    -X queue.buffering.max.messages=1000000 "$DATA.txt"
end=$(python3 "$OFFSETS" -b "$BOOT" end "$INPUT")
[ "$end" = "$LINES" ] || die "$INPUT holds $end records, expected $LINES"

# --- runs ----------------------------------------------------------------------------------------
RESULTS=()
run_app() { # run_app kstreams|brook RUN
    local app=$1 run=$2 id pid t0 out b0 b1 cpu rss
    id="wc-$app-$run-$$"
    mkdir -p "$WORK/state-$id"
    local applog="$WORK/$id.log"
    t0=$(date +%s.%N)
    local otopic o0
    otopic=$([ "$app" = kstreams ] && echo "$KS_OUT" || echo "$BROOK_OUT")
    o0=$(python3 "$OFFSETS" -b "$BOOT" end "$otopic")
    b0=$(cpu_secs "$BROKER_PID")
    if [ "$app" = kstreams ]; then
        # shellcheck disable=SC2086 # JAVA_OPTS is a word list
        "$JAVA" $JAVA_OPTS -cp "$KS_CP" brook.bench.WordCount --bootstrap-server "$BOOT" \
            --application-id "$id" --input-topic "$INPUT" --output-topic "$KS_OUT" \
            --state-dir "$WORK/state-$id" --commit-interval-ms "$COMMIT_MS" --threads 1 >"$applog" 2>&1 &
    else
        RUST_LOG=${RUST_LOG:-warn,brook_streams=info} "$WORDCOUNT" --bootstrap-server "$BOOT" \
            --application-id "$id" --state-dir "$WORK/state-$id" --commit-interval-ms "$COMMIT_MS" \
            --threads 1 >"$applog" 2>&1 &
    fi
    pid=$!
    CHILD_PIDS+=("$pid")
    log "run $run: $app (pid $pid, application.id $id)"
    if ! watch_offsets -b "$BOOT" wait-group "$id" --input "$INPUT" --expect "$LINES" \
        --t0 "$t0" --log "$applog" --pid "$pid" --timeout "$TIMEOUT"; then
        tail -n 30 "$applog" >&2
        die "$app did not finish (log above: $applog)"
    fi
    out=$WATCH_OUT rss=$(peak_rss_mb "$pid") b1=$(cpu_secs "$BROKER_PID")
    stop_pid "$pid" 60
    local outs
    outs=$(($(python3 "$OFFSETS" -b "$BOOT" end "$otopic") - o0))
    local done_s running_s cpu cpu_r proc_s
    field() { sed -n "s/.*\b$1=\([0-9.?]*\).*/\1/p" <<<"$out"; }
    done_s=$(field done_s) running_s=$(field running_s) cpu=$(field cpu_done) cpu_r=$(field cpu_running)
    proc_s=$(awk -v a="$done_s" -v b="$running_s" 'BEGIN { printf "%.3f", a - b }')
    local mlines
    mlines=$(div "$LINES" 1000000 6)
    RESULTS+=("$(printf '%-20s %3s %7.2f %7.2f %8s %9s %10s %6s %7s %9s %7s %6s %8s' \
        "$([ "$app" = kstreams ] && echo "Kafka Streams 4.4.0" || echo "Brook wordcount")" "$run" \
        "$done_s" "$running_s" "$(div "$LINES" "$done_s")" "$(div "$WORDS" "$done_s")" \
        "$(div "$LINES" "$proc_s")" "$cpu" "$(div "$cpu" "$mlines" 2)" \
        "$(div "$(awk -v a="$cpu" -v b="$cpu_r" 'BEGIN { printf "%.2f", a - b }')" "$mlines" 2)" \
        "$(awk -v a="$b1" -v b="$b0" 'BEGIN { printf "%.2f", a - b }')" "$rss" "$outs")")
    log "  done after ${done_s}s (RUNNING at ${running_s}s), CPU ${cpu}s"
}
# Odd runs: Kafka Streams first; even runs: Brook first (the first run also warms the broker up,
# which matters for Kafka's JIT).
for ((run = 1; run <= REPEAT; run++)); do
    if ((run % 2)); then order=(kstreams brook); else order=(brook kstreams); fi
    for app in "${order[@]}"; do [ -n "$ONLY" ] && [ "$ONLY" != "$app" ] || run_app "$app" "$run"; done
done

# --- final counts: last value per key of each output topic against the generator --------------
final_counts() { # topic -> "word count" lines, sorted
    kcat -C -b "$BOOT" -t "$1" -p 0 -o beginning -e -q -f '%k %s\n' |
        awk '{ last[$1] = $2 } END { for (w in last) print w, last[w] }' | sort
}
sort "$DATA.counts" >"$WORK/expected"
declare -A VERDICT
for app in kstreams brook; do
    [ -n "$ONLY" ] && [ "$ONLY" != "$app" ] && continue
    topic=$([ $app = kstreams ] && echo "$KS_OUT" || echo "$BROOK_OUT")
    final_counts "$topic" >"$WORK/final-$app"
    if cmp -s "$WORK/expected" "$WORK/final-$app"; then
        VERDICT[$app]="OK: all $(wc -l <"$WORK/expected") words' final counts equal the generator's"
    else
        VERDICT[$app]="MISMATCH: $(comm -3 "$WORK/expected" "$WORK/final-$app" | wc -l) differing lines (diff $WORK/expected $WORK/final-$app; --keep to look)"
        KEEP=1
    fi
done

echo
echo "Word count, $LINES lines x $WORDS_PER_LINE words (vocabulary $VOCAB, Zipf), 1 partition," \
    "commit.interval.ms=$COMMIT_MS, at_least_once, 1 stream thread, broker: $BROKER ($BOOT)"
printf '%-20s %3s %7s %7s %8s %9s %10s %6s %7s %9s %7s %6s %8s\n' app run wall_s run_at lines/s words/s \
    lines/s_R cpu_s cpu/M cpu/M_R brk_cpu rss_MB out_recs
printf '%s\n' "${RESULTS[@]}"
echo "wall_s: launch -> group committed all input and repartition offsets; run_at: when it logged RUNNING;"
echo "lines/s_R: lines / (wall_s - run_at); cpu_s: the application's user+sys at wall_s; cpu/M: cpu_s per"
echo "million lines; cpu/M_R: the same counting only CPU used after RUNNING (no JVM start, no rebalance);"
echo "brk_cpu: broker CPU seconds over the run; rss_MB: the application's peak RSS; out_recs: count updates"
echo "the run wrote to its output topic (the record caches collapse updates between commits)."
echo
echo "Final counts (last value per key):"
printf '  %-12s %10s' word expected
[ "$ONLY" = brook ] || printf ' %10s' kstreams
[ "$ONLY" = kstreams ] || printf ' %10s' brook
echo
# The most frequent words, a middle one and the rarest.
n=$(wc -l <"$DATA.counts")
for k in 1 2 3 $((n / 2)) "$n"; do
    read -r w c < <(sed -n "${k}p" "$DATA.counts")
    printf '  %-12s %10s' "$w" "$c"
    [ "$ONLY" = brook ] || printf ' %10s' "$(awk -v w="$w" '$1 == w { print $2 }' "$WORK/final-kstreams")"
    [ "$ONLY" = kstreams ] || printf ' %10s' "$(awk -v w="$w" '$1 == w { print $2 }' "$WORK/final-brook")"
    echo
done
for app in kstreams brook; do [ -n "${VERDICT[$app]:-}" ] && echo "  $app: ${VERDICT[$app]}"; done
status=0
for app in kstreams brook; do [[ ${VERDICT[$app]:-OK} == OK* ]] || status=1; done
exit $status
