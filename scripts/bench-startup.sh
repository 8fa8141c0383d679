#!/usr/bin/env bash
# Broker start-up time on a log of many small batches, two `brook` binaries alternating:
#   scripts/bench-startup.sh OLD_BIN NEW_BIN [DATA_DIR]
# Fills DATA_DIR (default /var/tmp/brook-startup-data; kept between runs, delete it to refill)
# once with OLD_BIN: 3,000,000 × 100 B records in ~9-record batches (linger 0, batch.size 1000),
# 64 MiB segments. Then, 3 rounds: each binary starts on it (warm page cache) and stops cleanly
# (SIGTERM), then starts again after `drop_caches` (cold; needs root). Prints ms from launch
# until the broker logs that it listens.
set -euo pipefail
[ $# -ge 2 ] || { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
OLD=$1 NEW=$2 D=${3:-/var/tmp/brook-startup-data}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-startup.XXXXXX")
PID=""
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"' EXIT

start() { # $1 binary; sets PID, BOOT and MS (launch -> listening)
    local t0 t1
    t0=$(date +%s%N)
    "$1" broker --data-dir "$D" --listen 127.0.0.1:0 --config log.segment.bytes=67108864 >"$WORK/broker.log" 2>&1 &
    PID=$!
    until grep -q "listening on" "$WORK/broker.log" 2>/dev/null; do
        kill -0 "$PID" 2>/dev/null || { cat "$WORK/broker.log" >&2; exit 1; }
        sleep 0.005
    done
    t1=$(date +%s%N)
    BOOT=$(sed -n 's/^brook broker listening on \([0-9.:]*\).*/\1/p' "$WORK/broker.log")
    MS=$(((t1 - t0) / 1000000))
}
stop() { kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=""; }

if [ ! -d "$D" ]; then
    start "$OLD"
    "$OLD" bench produce -b "$BOOT" --topic t --num-records 3000000 --record-size 100 --acks 1 \
        --linger-ms 0 --batch-size 1000 | tail -n 2
    stop
fi
echo "log: $(du -sh "$D" | cut -f1), $(ls "$D"/t-0/*.log | wc -l) segments"
for round in 1 2 3; do
    for v in old new; do
        bin=$OLD; [ $v = new ] && bin=$NEW
        start "$bin"; stop; warm=$MS
        sync; echo 3 >/proc/sys/vm/drop_caches
        start "$bin"; stop; cold=$MS
        echo "round $round $v: warm ${warm} ms, cold ${cold} ms"
    done
done
