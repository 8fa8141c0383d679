#!/usr/bin/env python3
"""Watches offsets over the Kafka protocol (stdlib only) for the benchmark scripts.

Polling with a short-lived client per sample (kcat, `brook group describe`, Kafka's
ConsumerGroupCommand) costs a process start, a bootstrap and, for the JVM tools, a CPU-second
or more; `brook group describe` also takes ~1 s per call. This keeps one connection per broker
and polls every --interval (0.05) seconds, so a benchmark learns that the work is done within ~50 ms
for almost no CPU.

  kafka-offsets.py -b HOST:PORT group GROUP
      prints "TOPIC PARTITION COMMITTED END" for every partition the group committed
  kafka-offsets.py -b HOST:PORT end TOPIC[:PARTITIONS]
      prints the sum of the end offsets (high watermarks) of partitions 0..PARTITIONS-1 (default 1)
  kafka-offsets.py -b HOST:PORT wait-group GROUP --input TOPIC[:PARTITIONS] --expect N
          [--t0 EPOCH_S] [--log FILE --running-regex RE] [--timeout S] [--interval S]
      waits until the group committed offsets summing to >= N on the input topic, and its
      committed offset on every `GROUP-*-repartition` partition equals that partition's end
      offset (so a Streams application's later sub-topologies are done too; at least
      --min-repartition, default 1, such partitions must have a commit: 0 for a plain consumer); then prints
      "done_s=… running_s=… first_commit_s=… cpu_done=… cpu_running=…" (seconds since --t0;
      running_s = when RE first appeared in FILE, e.g. the application's state change to RUNNING;
      cpu_* = CPU seconds of the --pid process at done and at RUNNING) and exits 0
  kafka-offsets.py -b HOST:PORT wait-end TOPIC[:PARTITIONS] --expect N [--t0 …] [--timeout S]
      waits until the topic's end offsets sum to >= N; prints "done_s=… first_record_s=…
      cpu_done=… cpu_first=…" (CPU seconds of the --pid process at done and at the first record)

Exit status 1 on timeout (the last sample goes to stderr). Requests: FindCoordinator v1,
OffsetFetch v3 (all partitions of the group), ListOffsets v2 (latest) — versions both Apache
Kafka 4.x and Brook serve. ListOffsets goes to the bootstrap broker: meant for the one-node
clusters the benchmarks start (any leader elsewhere answers NOT_LEADER, which is reported).
"""

import argparse
import os
import re
import socket
import struct
import sys
import time

RETRIABLE = {7, 14, 15, 16, 3}  # request timed out, coordinator loading/unavailable/not, unknown topic


class Conn:
    def __init__(self, host, port):
        self.addr = (host, int(port))
        self.sock = None
        self.corr = 0

    def request(self, api_key, version, body):
        if self.sock is None:
            self.sock = socket.create_connection(self.addr, timeout=10)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.corr += 1
        client = b"bench-offsets"
        header = struct.pack(">hhih", api_key, version, self.corr, len(client)) + client
        msg = header + body
        try:
            self.sock.sendall(struct.pack(">i", len(msg)) + msg)
            size = struct.unpack(">i", self._read(4))[0]
            data = self._read(size)
        except OSError:
            self.close()
            raise
        corr = struct.unpack(">i", data[:4])[0]
        if corr != self.corr:
            self.close()
            raise OSError(f"correlation id {corr}, expected {self.corr}")
        return Reader(data[4:])

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise OSError("connection closed")
            buf += chunk
        return buf

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v[0]

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s


def kstr(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


class Client:
    def __init__(self, bootstrap):
        host, port = bootstrap.split(",")[0].rsplit(":", 1)
        self.boot = Conn(host, port)
        self.coords = {}

    def coordinator(self, group):
        if group not in self.coords:
            r = self.boot.request(10, 1, kstr(group) + b"\x00")  # FindCoordinator v1, key_type group
            r.take(">i")
            err = r.take(">h")
            r.string()
            _node, host, port = r.take(">i"), r.string(), r.take(">i")
            if err:
                raise RetryError(f"FindCoordinator error {err}")
            self.coords[group] = Conn(host, port)
        return self.coords[group]

    def committed(self, group):
        """{(topic, partition): offset} of every partition the group committed."""
        conn = self.coordinator(group)
        try:
            r = conn.request(9, 3, kstr(group) + struct.pack(">i", -1))  # OffsetFetch v3, all topics
        except OSError:
            self.coords.pop(group, None)
            raise
        r.take(">i")
        out = {}
        for _ in range(r.take(">i")):
            topic = r.string()
            for _ in range(r.take(">i")):
                p, off = r.take(">i"), r.take(">q")
                r.string()
                err = r.take(">h")
                if err == 0 and off >= 0:
                    out[(topic, p)] = off
        err = r.take(">h")
        if err:
            self.coords.pop(group, None)
            raise RetryError(f"OffsetFetch error {err}")
        return out

    def ends(self, tps):
        """{(topic, partition): end offset} (ListOffsets v2, latest, read_uncommitted)."""
        by_topic = {}
        for t, p in tps:
            by_topic.setdefault(t, []).append(p)
        body = struct.pack(">ib", -1, 0) + struct.pack(">i", len(by_topic))
        for t, ps in by_topic.items():
            body += kstr(t) + struct.pack(">i", len(ps))
            for p in ps:
                body += struct.pack(">iq", p, -1)
        r = self.boot.request(2, 2, body)
        r.take(">i")
        out = {}
        for _ in range(r.take(">i")):
            topic = r.string()
            for _ in range(r.take(">i")):
                p, err, _ts, off = r.take(">i"), r.take(">h"), r.take(">q"), r.take(">q")
                if err:
                    raise RetryError(f"ListOffsets {topic}-{p} error {err}")
                out[(topic, p)] = off
        return out


class RetryError(Exception):
    pass


def cpu_secs(pid):
    """utime + stime of process pid (all its threads) in seconds, or None."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def fmt_cpu(v):
    return "?" if v is None else f"{v:.2f}"


def topic_arg(s):
    topic, _, n = s.partition(":")
    return [(topic, p) for p in range(int(n or 1))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-b", "--bootstrap", required=True)
    ap.add_argument("command", choices=["group", "end", "wait-group", "wait-end"])
    ap.add_argument("name", help="group id or TOPIC[:PARTITIONS]")
    ap.add_argument("--input", help="wait-group: TOPIC[:PARTITIONS] the group reads")
    ap.add_argument("--expect", type=int, default=0)
    ap.add_argument("--t0", type=float, default=None, help="epoch seconds the timings count from")
    ap.add_argument("--log", help="wait-group: the application's log")
    ap.add_argument("--running-regex", default=r"-> (RUNNING|Running)\b")
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--pid", type=int, help="give up when this process exits")
    ap.add_argument("--min-repartition", type=int, default=1,
                    help="wait-group: repartition partitions that must have a committed offset (default 1)")
    a = ap.parse_args()
    c = Client(a.bootstrap)
    t0 = a.t0 if a.t0 is not None else time.time()

    if a.command == "group":
        com = c.committed(a.name)
        ends = c.ends(list(com)) if com else {}
        for (t, p), off in sorted(com.items()):
            print(t, p, off, ends.get((t, p)))
        return 0
    if a.command == "end":
        print(sum(c.ends(topic_arg(a.name)).values()))
        return 0

    deadline = time.time() + a.timeout
    running_at = first_at = None
    cpu_running = cpu_first = None  # the --pid process's CPU seconds at those moments
    log_pos, log_re = 0, re.compile(a.running_regex)
    last = "no sample yet"
    while True:
        now = time.time()
        if a.log and running_at is None:
            try:
                with open(a.log, "rb") as f:
                    f.seek(log_pos)
                    chunk = f.read()
                    # Only whole lines: a line written in two pieces is read next time.
                    cut = chunk.rfind(b"\n") + 1
                    log_pos += cut
                    if log_re.search(chunk[:cut].decode(errors="replace")):
                        running_at, cpu_running = now, cpu_secs(a.pid)
            except FileNotFoundError:
                pass
        try:
            if a.command == "wait-end":
                total = sum(c.ends(topic_arg(a.name)).values())
                last = f"end offsets {total} of {a.expect}"
                if total > 0 and first_at is None:
                    first_at, cpu_first = now, cpu_secs(a.pid)
                if total >= a.expect:
                    cpu = cpu_secs(a.pid)
                    print(f"done_s={now - t0:.3f} first_record_s={(first_at or now) - t0:.3f} "
                          f"cpu_done={fmt_cpu(cpu)} cpu_first={fmt_cpu(cpu_first if first_at else cpu)}")
                    return 0
            else:
                inputs = topic_arg(a.input)
                com = c.committed(a.name)
                rep = [tp for tp in com if tp[0].startswith(a.name + "-") and tp[0].endswith("-repartition")]
                ends = c.ends(inputs + rep)
                got = sum(com.get(tp, 0) for tp in inputs)
                if got > 0 and first_at is None:
                    first_at = now
                lagging = [f"{t}-{p} {com.get((t, p), 0)}/{ends[(t, p)]}" for t, p in rep if com.get((t, p), 0) < ends[(t, p)]]
                last = f"input committed {got} of {a.expect} (end {sum(ends[tp] for tp in inputs)}); lagging: {lagging}"
                if got >= a.expect and not lagging and len(rep) >= a.min_repartition:
                    cpu = cpu_secs(a.pid)
                    print(f"done_s={now - t0:.3f} running_s={(running_at or now) - t0:.3f} "
                          f"first_commit_s={(first_at or now) - t0:.3f} repartition_topics={len(rep)} "
                          f"cpu_done={fmt_cpu(cpu)} cpu_running={fmt_cpu(cpu_running if running_at else cpu)}")
                    return 0
        except (OSError, RetryError, struct.error) as e:
            last = f"{type(e).__name__}: {e}"
        if now > deadline:
            print(f"timeout after {a.timeout:.0f}s; last: {last}", file=sys.stderr)
            return 1
        if a.pid:
            try:
                with open(f"/proc/{a.pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                        raise FileNotFoundError
            except FileNotFoundError:
                print(f"process {a.pid} exited; last: {last}", file=sys.stderr)
                return 1
        time.sleep(a.interval)


if __name__ == "__main__":
    sys.exit(main())
