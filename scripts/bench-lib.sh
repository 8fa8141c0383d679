# Shared by scripts/bench-streams-vs-kafka-streams.sh and scripts/bench-connect-vs-kafka-connect.sh
# (sourced, not run): one-node broker (Brook or Apache Kafka), process CPU/RSS from /proc, the Maven
# build of a bench/ project, cleanup. Each script sets WORK (its temp dir) before calling these.

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OFFSETS="$BENCH_ROOT/scripts/kafka-offsets.py"
CLK_TCK=$(getconf CLK_TCK)
BENCH_CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/brook-bench"
JAVA=${JAVA:-java}
BROKER_PID="" KAFKA_DIR="" BOOT=""
CHILD_PIDS=()

log() { echo "[$(date +%T)] $*" >&2; }
die() { log "error: $*"; exit 1; }

# Copies binary $1 into $WORK/bin (so a rebuild during the run cannot swap it) and prints the copy.
private_copy() {
    [ -x "$1" ] || die "no executable at $1"
    mkdir -p "$WORK/bin"
    local dst
    dst="$WORK/bin/$(basename "$1")"
    cp "$1" "$dst" && echo "$dst"
}

# Builds Maven project $1 (offline first, so a warm ~/.m2 needs no network). Skipped when every
# output named in "${@:2}" is newer than the pom and the sources.
mvn_build() {
    local dir=$1 out stale=0
    shift
    for out in "$@"; do
        if [ ! -e "$dir/$out" ] || [ -n "$(find "$dir/pom.xml" "$dir/src" -newer "$dir/$out" 2>/dev/null | head -1)" ]; then
            stale=1
        fi
    done
    [ $stale = 0 ] && return 0
    command -v mvn >/dev/null || die "mvn not found (needed to build $dir)"
    log "building $dir with Maven"
    (cd "$dir" && { mvn -B -q -o -Dstyle.color=never package >"$WORK/mvn.log" 2>&1 ||
        mvn -B -q -Dstyle.color=never package >"$WORK/mvn.log" 2>&1; }) ||
        { tail -n 40 "$WORK/mvn.log" >&2; die "Maven build of $dir failed"; }
}

# start_broker brook BROOK_BIN | start_broker kafka: sets BOOT and BROKER_PID.
start_broker() {
    case $1 in
        brook)
            # No initial rebalance delay, as scripts/kafka-cluster.sh configures Kafka (both
            # default to 3 s, which would add 3 s to every application's start).
            "$2" broker --data-dir "$WORK/brook-data" --listen 127.0.0.1:0 \
                --config group.initial.rebalance.delay.ms=0 >"$WORK/broker.log" 2>&1 &
            BROKER_PID=$!
            local i
            for ((i = 0; i < 200; i++)); do
                # (the log may not exist yet: the background shell opens it)
                BOOT=$(sed -n 's/^brook broker listening on \([0-9.:]*\).*/\1/p' "$WORK/broker.log" 2>/dev/null || true)
                [ -n "$BOOT" ] && break
                kill -0 "$BROKER_PID" 2>/dev/null || { cat "$WORK/broker.log" >&2; die "brook broker exited"; }
                sleep 0.05
            done
            [ -n "$BOOT" ] || { cat "$WORK/broker.log" >&2; die "brook broker did not print its address"; }
            log "Brook broker $BOOT (pid $BROKER_PID, $2)"
            ;;
        kafka)
            KAFKA_DIR="$WORK/kafka"
            BOOT=$("$BENCH_ROOT/scripts/kafka-cluster.sh" start --nodes 1 --dir "$KAFKA_DIR" | tail -n 1) ||
                die "could not start Kafka"
            BROKER_PID=$(cat "$KAFKA_DIR/node1/pid")
            log "Apache Kafka $BOOT (pid $BROKER_PID)"
            ;;
        *) die "--broker wants brook or kafka, got '$1'" ;;
    esac
}

stop_broker() {
    if [ -n "$KAFKA_DIR" ]; then
        "$BENCH_ROOT/scripts/kafka-cluster.sh" stop --dir "$KAFKA_DIR" >/dev/null 2>&1 || true
        KAFKA_DIR=""
    elif [ -n "$BROKER_PID" ]; then
        stop_pid "$BROKER_PID"
    fi
    BROKER_PID=""
}

# SIGTERM, then SIGKILL after ${2:-30} s; waits for the process to go.
stop_pid() {
    local pid=$1 limit=${2:-30} i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < limit * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# CPU seconds (user + system, all threads, children not included) of process $1 so far.
cpu_secs() {
    awk -v t="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / t }' "/proc/$1/stat" 2>/dev/null || echo "?"
}

# Peak RSS in MB of process $1.
peak_rss_mb() {
    awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"
}

# Creates topic $1 with 1 partition on $BOOT (librdkafka admin through the brook CLI).
create_topic() {
    "$BROOK" topic create -b "$BOOT" "$1" --partitions 1 >/dev/null || die "could not create topic $1"
}

# Runs scripts/kafka-offsets.py "$@" in the background and waits for it (a foreground child would
# hold off the INT/TERM traps until it ends); sets WATCH_OUT to its stdout, returns its status.
watch_offsets() {
    local wpid rc=0
    python3 "$OFFSETS" "$@" >"$WORK/watch.out" &
    wpid=$!
    CHILD_PIDS+=("$wpid")
    wait "$wpid" || rc=$?
    WATCH_OUT=$(cat "$WORK/watch.out")
    return $rc
}

bench_cleanup() {
    local pid
    for pid in "${CHILD_PIDS[@]+"${CHILD_PIDS[@]}"}"; do stop_pid "$pid" 10; done
    stop_broker
    if [ -n "${KEEP:-}" ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
}

# a / b with $3 decimals, "-" when b is 0 or not a number.
div() { awk -v a="$1" -v b="$2" -v d="${3:-0}" 'BEGIN { if (b + 0 > 0) printf "%.*f", d, a / b; else printf "-" }'; }
