#!/usr/bin/env bash
# Runs a real Apache Kafka KRaft cluster on loopback, without containers, for tests and benchmarks.
#
#   scripts/kafka-cluster.sh start [--nodes N] [--dir DIR] [--prop key=value]... [--timeout S]
#       N (default 3) combined broker+controller nodes (static controller.quorum.voters) on free
#       127.0.0.1 ports, in DIR (default: a new mktemp -d). Waits (at most S, default 90, seconds)
#       until every node serves metadata listing all N brokers, then prints the bootstrap list as
#       the LAST line of stdout (all else goes to stderr):
#           BOOTSTRAP=$(scripts/kafka-cluster.sh start --prop min.insync.replicas=2)
#   scripts/kafka-cluster.sh stop [--dir DIR]        SIGTERM, then SIGKILL after $KAFKA_STOP_TIMEOUT
#                                                    (default 20) s; removes DIR if this script made it
#   scripts/kafka-cluster.sh status [--dir DIR]      one line per node; exit 1 if a node is down
#   scripts/kafka-cluster.sh kill-node K [--dir DIR] kill -9 node K (1-based), print its pid
#   scripts/kafka-cluster.sh start-node K [--dir DIR] restart node K with its config and data
#   scripts/kafka-cluster.sh restart [--dir DIR]     rolling restart: each node in turn stops cleanly
#                                                    and starts again on its port and data
#   scripts/kafka-cluster.sh tool CLASS [ARGS...]    run a Kafka tool class, e.g.
#       tool TopicCommand --bootstrap-server "$BOOTSTRAP" --create --topic t --partitions 3 --replication-factor 3
#       (a CLASS without a dot means org.apache.kafka.tools.CLASS)
#   scripts/kafka-cluster.sh fetch                   only download Kafka; prints the classpath
#
# Without --dir, stop/status/kill-node/start-node use the cluster started last.
# After kill-node, the controller moves the node's leaders once broker.session.timeout.ms (9 s)
# passes; failover tests go faster with --prop broker.session.timeout.ms=3000
# --prop broker.heartbeat.interval.ms=500 (about 4 s).
# Kafka $KAFKA_VERSION (pinned below) and its runtime dependencies come from Maven Central with
# `mvn`, once, into ${XDG_CACHE_HOME:-~/.cache}/brook-kafka/VERSION/lib; later runs need no network.
# Layout of DIR: bootstrap, pids ("K PID" lines), cluster.env, log4j2.properties,
# nodeK/{server.properties,data/,server.log,pid}. Needs java 17+, mvn, python3; kcat if present.
# Environment: KAFKA_VERSION, KAFKA_HEAP_OPTS (default -Xmx512m -Xms256m), KAFKA_JVM_OPTS, JAVA.
set -euo pipefail

KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
LOG4J_VERSION=2.25.5 # the log4j2 of Kafka 4.4.0; its slf4j 1.7 binding makes the broker log
HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}
JVM_OPTS=${KAFKA_JVM_OPTS:--XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true}
JAVA=${JAVA:-java}
TOOL_OPTS="-Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC" # short-lived tools: start fast
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/brook-kafka"
LIB="$CACHE_ROOT/$KAFKA_VERSION/lib"

log() { echo "kafka-cluster: $*" >&2; }
die() { log "$*"; exit 1; }

# Downloads Kafka into $LIB (once) and sets CP to the classpath.
fetch() {
    if [ ! -f "$LIB/.complete" ]; then
        command -v mvn >/dev/null || die "mvn not found (needed once, to fetch Kafka $KAFKA_VERSION)"
        local work
        mkdir -p "$CACHE_ROOT" && work=$(mktemp -d "$CACHE_ROOT/.fetch.XXXXXX")
        # kafka-tools for TopicCommand & co., without connect-runtime (Jetty, Jersey): no tool here needs it.
        cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>
  <groupId>brook</groupId><artifactId>kafka-cluster</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version>
      <exclusions><exclusion><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId></exclusion></exclusions></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
EOF
        log "fetching Kafka $KAFKA_VERSION with mvn into $LIB"
        (cd "$work" && mvn -B -Dstyle.color=never dependency:copy-dependencies -DincludeScope=runtime \
            -DoutputDirectory="$work/lib" >"$work/mvn.log" 2>&1) ||
            { tail -n 30 "$work/mvn.log" >&2; rm -rf "$work"; die "mvn could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION"; }
        touch "$work/lib/.complete"
        mkdir -p "$(dirname "$LIB")"
        rm -rf "$LIB" && mv "$work/lib" "$LIB" && mv "$work/pom.xml" "$LIB/../pom.xml" && rm -rf "$work"
    fi
    CP=$(find "$LIB" -name '*.jar' | sort | paste -sd: -)
}

# Parses the common options; sets DIR (absolute or empty), NODES, PROPS, TIMEOUT, ARGS (the rest).
parse() {
    DIR="" NODES=3 PROPS=() TIMEOUT=90 ARGS=()
    while [ $# -gt 0 ]; do
        case $1 in --dir | --nodes | --prop | --timeout) [ $# -ge 2 ] || die "$1 wants a value" ;; esac
        case $1 in
            --dir) DIR=$2; shift 2 ;;
            --nodes) NODES=$2; shift 2 ;;
            --prop) [[ $2 == *=* ]] || die "--prop wants key=value, got '$2'"; PROPS+=("$2"); shift 2 ;;
            --timeout) TIMEOUT=$2; shift 2 ;;
            -h | --help) usage 0 ;;
            *) ARGS+=("$1"); shift ;;
        esac
    done
    [[ $NODES =~ ^[1-9][0-9]*$ ]] || die "--nodes wants a positive number, got '$NODES'"
}

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit "$1"; }

# True while process $1 exists and is not a zombie.
running() { [ -e "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# Sets DIR to the recorded cluster (the last started one without --dir) and loads cluster.env.
load_cluster() {
    if [ -z "$DIR" ]; then
        DIR=$(cat "$CACHE_ROOT/last-dir" 2>/dev/null) || die "no cluster recorded; pass --dir"
        [ -d "$DIR" ] || { rm -f "$CACHE_ROOT/last-dir"; die "the last cluster's $DIR is gone"; }
    fi
    DIR=$(cd "$DIR" 2>/dev/null && pwd) || die "no directory $DIR"
    [ -f "$DIR/cluster.env" ] || die "$DIR holds no cluster (no cluster.env)"
    # shellcheck source=/dev/null
    . "$DIR/cluster.env"
}

# Prints the pid of node K if that process is alive, is java and runs this DIR's config.
live_pid() {
    local pid
    pid=$(cat "$DIR/node$1/pid" 2>/dev/null) || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = java ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$DIR/node$1/server.properties" || return 1
    echo "$pid"
}

write_pids() {
    local k
    for ((k = 1; k <= NODES; k++)); do echo "$k $(cat "$DIR/node$k/pid" 2>/dev/null || echo -)"; done >"$DIR/pids"
}

# Starts node K in the background, in its own session so the caller's Ctrl-C does not reach it.
launch() {
    local k=$1 nd="$DIR/node$1"
    rm -f "$nd/pid"
    # shellcheck disable=SC2086 # HEAP_OPTS and JVM_OPTS are word lists
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$nd/pid" \
        "$JAVA" $HEAP_OPTS $JVM_OPTS -Dlog4j2.configurationFile="$DIR/log4j2.properties" \
        -cp "$CP" kafka.Kafka "$nd/server.properties" </dev/null >>"$nd/server.log" 2>&1 &
    disown
    local i
    for ((i = 0; i < 100; i++)); do live_pid "$k" >/dev/null && return 0; sleep 0.05; done
    log "node $k did not start; tail of $nd/server.log:"; tail -n 20 "$nd/server.log" >&2; return 1
}

# Waits until each node in "$@" logged "Kafka Server started" after byte offset OFF[k] of its log
# and (with kcat) answers a metadata request listing all NODES brokers. On timeout or a crash, shows
# the node's log tail and returns 1.
wait_ready() {
    local deadline=$((SECONDS + TIMEOUT)) pending=("$@") k left
    while [ ${#pending[@]} -gt 0 ]; do
        left=()
        for k in "${pending[@]}"; do
            local nd="$DIR/node$k" port
            if ! live_pid "$k" >/dev/null; then
                log "node $k exited; tail of $nd/server.log:"; tail -n 40 "$nd/server.log" >&2; return 1
            fi
            port=$(sed -n 's/^advertised.listeners=PLAINTEXT:\/\/127.0.0.1://p' "$nd/server.properties")
            if tail -c +$((${OFF[$k]:-0} + 1)) "$nd/server.log" | grep -q 'Kafka Server started' &&
                { ! command -v kcat >/dev/null ||
                    kcat -b "127.0.0.1:$port" -L -m 3 2>/dev/null | grep -q "^ $NODES brokers:"; }; then
                continue
            fi
            left+=("$k")
        done
        pending=("${left[@]+"${left[@]}"}")
        [ ${#pending[@]} -eq 0 ] && return 0
        if [ $SECONDS -ge $deadline ]; then
            k=${pending[0]}
            log "node $k not ready after ${TIMEOUT}s; tail of $DIR/node$k/server.log:"
            tail -n 40 "$DIR/node$k/server.log" >&2; return 1
        fi
        sleep 0.5
    done
}

# SIGTERM to the given nodes, SIGKILL to those still alive after KAFKA_STOP_TIMEOUT seconds.
stop_nodes() {
    local k pid pids=() deadline=$((SECONDS + ${KAFKA_STOP_TIMEOUT:-20}))
    for k in "$@"; do pid=$(live_pid "$k") && { kill -TERM "$pid" 2>/dev/null || true; pids+=("$k:$pid"); }; done
    for pid in "${pids[@]+"${pids[@]}"}"; do
        k=${pid%%:*} pid=${pid#*:}
        while running "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
        if live_pid "$k" >/dev/null; then log "node $k (pid $pid) still running; SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
        while running "$pid"; do sleep 0.1; done
    done
}

cmd_start() {
    local created=0 k all
    if [ -z "$DIR" ]; then DIR=$(mktemp -d "${TMPDIR:-/tmp}/brook-kafka.XXXXXX"); created=1
    elif [ ! -e "$DIR" ]; then mkdir -p "$DIR"; created=1
    elif [ -n "$(ls -A "$DIR")" ]; then die "$DIR is not empty"; fi
    DIR=$(cd "$DIR" && pwd)
    mapfile -t all < <(seq "$NODES")
    fetch
    local ports voters="" bootstrap="" cluster_id rf=$((NODES < 3 ? NODES : 3)) isr=$((NODES < 2 ? 1 : 2))
    read -r -a ports < <(python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(2 * int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$NODES")
    [ ${#ports[@]} -eq $((2 * NODES)) ] || die "could not pick free ports"
    cluster_id=$(python3 -c 'import base64, uuid; print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
    for ((k = 1; k <= NODES; k++)); do
        voters+="${voters:+,}$k@127.0.0.1:${ports[2 * k - 1]}"
        bootstrap+="${bootstrap:+,}127.0.0.1:${ports[2 * k - 2]}"
    done
    printf 'NODES=%s\nCREATED=%s\nCLUSTER_ID=%s\n' "$NODES" "$created" "$cluster_id" >"$DIR/cluster.env"
    echo "$bootstrap" >"$DIR/bootstrap"
    cat >"$DIR/log4j2.properties" <<'EOF'
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
    for ((k = 1; k <= NODES; k++)); do
        mkdir -p "$DIR/node$k/data"
        {
            echo "process.roles=broker,controller"
            echo "node.id=$k"
            echo "controller.quorum.voters=$voters"
            echo "listeners=PLAINTEXT://127.0.0.1:${ports[2 * k - 2]},CONTROLLER://127.0.0.1:${ports[2 * k - 1]}"
            echo "advertised.listeners=PLAINTEXT://127.0.0.1:${ports[2 * k - 2]}"
            echo "controller.listener.names=CONTROLLER"
            echo "inter.broker.listener.name=PLAINTEXT"
            echo "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
            echo "log.dirs=$DIR/node$k/data"
            echo "offsets.topic.replication.factor=$rf"
            echo "transaction.state.log.replication.factor=$rf"
            echo "transaction.state.log.min.isr=$isr"
            echo "share.coordinator.state.topic.replication.factor=$rf"
            echo "share.coordinator.state.topic.min.isr=$isr"
            echo "group.initial.rebalance.delay.ms=0"
            printf '%s\n' "${PROPS[@]+"${PROPS[@]}"}" # last wins
        } >"$DIR/node$k/server.properties"
        # shellcheck disable=SC2086
        "$JAVA" $TOOL_OPTS -Dlog4j2.configurationFile="$DIR/log4j2.properties" -cp "$CP" kafka.tools.StorageTool \
            format --cluster-id "$cluster_id" --config "$DIR/node$k/server.properties" >"$DIR/node$k/format.log" 2>&1 &
    done
    for ((k = 1; k <= NODES; k++)); do
        wait -n || { cat "$DIR"/node*/format.log >&2; [ "$created" = 1 ] && rm -rf "$DIR"; die "storage format failed"; }
    done
    mkdir -p "$CACHE_ROOT" && echo "$DIR" >"$CACHE_ROOT/last-dir"
    log "formatted in ${SECONDS}s; starting $NODES nodes of Kafka $KAFKA_VERSION in $DIR"
    declare -gA OFF=()
    for k in "${all[@]}"; do launch "$k" || break; done
    write_pids
    if ! live_pid "$k" >/dev/null || ! wait_ready "${all[@]}"; then
        log "start failed; stopping the cluster in $DIR (kept for inspection)"
        KAFKA_STOP_TIMEOUT=0 stop_nodes "${all[@]}"; exit 1
    fi
    log "ready after ${SECONDS}s: $bootstrap (stop: $0 stop --dir $DIR)"
    echo "$bootstrap"
}

cmd_stop() {
    load_cluster
    local all
    mapfile -t all < <(seq "$NODES")
    stop_nodes "${all[@]}"
    log "stopped the cluster in $DIR"
    [ "$(cat "$CACHE_ROOT/last-dir" 2>/dev/null)" = "$DIR" ] && rm -f "$CACHE_ROOT/last-dir"
    if [ "$CREATED" = 1 ]; then rm -rf "$DIR"; else write_pids; fi
}

cmd_status() {
    load_cluster
    local k pid up=0 port
    for ((k = 1; k <= NODES; k++)); do
        port=$(sed -n 's/^advertised.listeners=PLAINTEXT:\/\/127.0.0.1://p' "$DIR/node$k/server.properties")
        if pid=$(live_pid "$k"); then
            up=$((up + 1)); echo "node $k: up, pid $pid, 127.0.0.1:$port, rss $(awk '/VmRSS/ {print $2, $3}' "/proc/$pid/status")"
        else echo "node $k: down, 127.0.0.1:$port"; fi
    done
    echo "$up/$NODES up in $DIR; bootstrap $(cat "$DIR/bootstrap")"
    [ "$up" = "$NODES" ]
}

node_arg() {
    if [[ ${ARGS[0]:-} =~ ^[1-9][0-9]*$ ]] && [ "${ARGS[0]}" -le "$NODES" ]; then echo "${ARGS[0]}"
    else die "want a node number in 1..$NODES, got '${ARGS[0]:-}'"; fi
}

cmd_kill_node() {
    load_cluster
    local k pid
    k=$(node_arg)
    pid=$(live_pid "$k") || die "node $k is not running"
    kill -KILL "$pid"
    while running "$pid"; do sleep 0.05; done
    log "killed node $k (pid $pid)"
    echo "$pid"
}

cmd_start_node() {
    load_cluster
    local k
    k=$(node_arg)
    live_pid "$k" >/dev/null && die "node $k is already running"
    fetch
    declare -gA OFF=()
    OFF[$k]=$(stat -c %s "$DIR/node$k/server.log")
    launch "$k" || exit 1
    write_pids
    wait_ready "$k" || die "node $k did not come back"
    log "node $k is back (pid $(cat "$DIR/node$k/pid"))"
    cat "$DIR/bootstrap"
}

cmd_restart() {
    load_cluster
    local k
    fetch
    declare -gA OFF=()
    # Rolling, as operators restart Kafka: one node at a time, each back and listing every
    # broker before the next stops, so the controller quorum never loses its majority. (Stopping
    # all nodes at once left one node not ready after 180 s in CI.)
    for ((k = 1; k <= NODES; k++)); do
        stop_nodes "$k"
        OFF[$k]=$(stat -c %s "$DIR/node$k/server.log")
        launch "$k" || exit 1
        write_pids
        wait_ready "$k" || die "node $k did not come back"
    done
    log "restarted every node of the cluster in $DIR"
    cat "$DIR/bootstrap"
}

cmd_tool() {
    [ ${#ARGS[@]} -ge 1 ] || die "usage: $0 tool CLASS [ARGS...]"
    fetch
    local class=${ARGS[0]}
    [[ $class == *.* ]] || class=org.apache.kafka.tools.$class
    local conf="$CACHE_ROOT/tools-log4j2.properties" # tools log warnings to stderr; stdout is theirs
    [ -f "$conf" ] || { printf '%s\n' 'appender.err.type = Console' 'appender.err.name = err' \
        'appender.err.target = SYSTEM_ERR' 'appender.err.layout.type = PatternLayout' \
        'appender.err.layout.pattern = %p %m (%c)%n' 'rootLogger.level = WARN' 'rootLogger.appenderRef.err.ref = err' \
        >"$conf.$$" && mv "$conf.$$" "$conf"; }
    # shellcheck disable=SC2086
    exec "$JAVA" $TOOL_OPTS -Dlog4j2.configurationFile="$conf" -cp "$CP" "$class" "${ARGS[@]:1}"
}

command=${1:-}
[ $# -gt 0 ] && shift
case $command in
    tool) # everything after CLASS belongs to the tool
        ARGS=("$@"); cmd_tool ;;
    start | stop | status | kill-node | start-node | restart | fetch)
        parse "$@"
        case $command in
            start) [ ${#ARGS[@]} -eq 0 ] || die "unexpected arguments: ${ARGS[*]}"; cmd_start ;;
            stop) cmd_stop ;;
            status) cmd_status ;;
            kill-node) cmd_kill_node ;;
            start-node) cmd_start_node ;;
            restart) cmd_restart ;;
            fetch) fetch; echo "$CP" ;;
        esac ;;
    -h | --help | help) usage 0 ;;
    *) usage 2 ;;
esac
