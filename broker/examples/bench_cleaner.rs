//! Log-cleaner benchmark: builds a compacted partition on disk (1 KiB values, many keys written
//! more than once), compacts it with a given `log.cleaner.dedupe.buffer.size`, and prints wall
//! time, throughput and the process's peak RSS (VmHWM) during compaction.
//!
//! ```text
//! cargo run -p brook-broker --release --example bench_cleaner -- \
//!     --dir /tmp/brook-cleaner --gib 2 --keys 1500000 --dedupe-mib 64
//! ```
//!
//! `--phase build` only writes the log, `--phase compact` only compacts an existing one (its
//! own process, so the peak RSS is the cleaner's alone), `--phase all` (default) does both,
//! resetting the peak between them. `--keep` leaves the data in place.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use brook_broker::bench::BenchLog;
use bytes::Bytes;

const DAY_MS: i64 = 86_400_000;

fn status(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

struct Args {
    dir: PathBuf,
    gib: f64,
    keys: u64,
    value_bytes: usize,
    batch_records: usize,
    segment_mib: u64,
    dedupe_mib: f64,
    io_kib: u64,
    phase: String,
    keep: bool,
}

fn args() -> Args {
    let mut flags: HashMap<String, String> = HashMap::new();
    let mut it = std::env::args().skip(1);
    let mut keep = false;
    while let Some(a) = it.next() {
        if a == "--keep" {
            keep = true;
        } else if let Some(name) = a.strip_prefix("--") {
            flags.insert(name.to_string(), it.next().expect("a value after the flag"));
        }
    }
    let get = |k: &str, d: &str| flags.get(k).cloned().unwrap_or_else(|| d.to_string());
    Args {
        dir: PathBuf::from(get("dir", "/tmp/brook-bench-cleaner")),
        gib: get("gib", "2").parse().unwrap(),
        keys: get("keys", "1500000").parse().unwrap(),
        value_bytes: get("value-bytes", "1024").parse().unwrap(),
        batch_records: get("batch-records", "16").parse().unwrap(),
        segment_mib: get("segment-mib", "256").parse().unwrap(),
        dedupe_mib: get("dedupe-mib", "64").parse().unwrap(),
        io_kib: get("io-kib", "512").parse().unwrap(),
        phase: get("phase", "all"),
        keep,
    }
}

fn open(a: &Args, now: i64) -> BenchLog {
    let segment = (a.segment_mib << 20).to_string();
    let dedupe = ((a.dedupe_mib * (1 << 20) as f64) as u64).to_string();
    let io = (a.io_kib << 10).to_string();
    BenchLog::open(
        &a.dir,
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", &segment),
            ("min.cleanable.dirty.ratio", "0"),
        ],
        &[
            ("log.cleaner.dedupe.buffer.size", &dedupe),
            ("log.cleaner.io.buffer.size", &io),
        ],
        now,
    )
    .expect("open the log")
}

/// Every key once in order, then random overwrites until the size is reached.
fn build(a: &Args, now: i64) {
    let log = open(a, now);
    let target = (a.gib * (1u64 << 30) as f64) as u64;
    let value = Bytes::from(vec![b'v'; a.value_bytes]);
    let started = Instant::now();
    let (mut n, mut rng) = (0u64, 0x9e37_79b9_7f4a_7c15u64);
    let mut batch = Vec::with_capacity(a.batch_records);
    while log.size_bytes() < target {
        for _ in 0..a.batch_records {
            let key = if n < a.keys {
                n
            } else {
                // xorshift: deterministic, spread over all keys.
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng % a.keys
            };
            n += 1;
            batch.push((Bytes::from(format!("key-{key:012}")), value.clone()));
        }
        log.append(&batch, now - DAY_MS, now).expect("append");
        batch.clear();
    }
    log.roll(now).expect("roll");
    log.shutdown().expect("shutdown");
    println!(
        "built {:.0} MiB, {} records over {} keys in {:.1} s",
        mib(log.size_bytes()),
        log.next_offset(),
        a.keys.min(n),
        started.elapsed().as_secs_f64()
    );
}

fn compact(a: &Args, now: i64) {
    let open_started = Instant::now();
    let log = open(a, now);
    let before = log.size_bytes();
    println!(
        "opened {:.0} MiB in {:.2} s; VmRSS {} kB, VmHWM {} kB before compaction",
        mib(before),
        open_started.elapsed().as_secs_f64(),
        status("VmRSS:"),
        status("VmHWM:")
    );
    let started = Instant::now();
    let mut pass = 0;
    let (mut read, mut written) = (0, 0);
    loop {
        pass += 1;
        let t = Instant::now();
        let s = log.compact(now).expect("compact");
        read += s.bytes_read;
        written += s.bytes_written;
        println!(
            "pass {pass}: {:.2} s, map {:.1} MiB with {} keys{}, {} segments rewritten, {} records removed, read {:.0} MiB, wrote {:.0} MiB",
            t.elapsed().as_secs_f64(),
            mib(s.map_bytes),
            s.keys_indexed,
            if s.map_full { " (full)" } else { "" },
            s.segments_rewritten,
            s.records_removed,
            mib(s.bytes_read),
            mib(s.bytes_written),
        );
        if !s.map_full {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "compacted {:.0} MiB -> {:.0} MiB in {pass} passes, {secs:.2} s: {:.0} MiB/s of log, {:.0} MiB/s read; \
         dedupe buffer {} MiB, io buffer {} KiB; peak RSS (VmHWM) {} kB, VmRSS after {} kB",
        mib(before),
        mib(log.size_bytes()),
        mib(before) / secs,
        mib(read) / secs,
        a.dedupe_mib,
        a.io_kib,
        status("VmHWM:"),
        status("VmRSS:"),
    );
    let _ = written;
}

fn main() {
    let a = args();
    let now = now_ms();
    if a.phase == "build" || a.phase == "all" {
        let _ = std::fs::remove_dir_all(&a.dir);
        build(&a, now);
        // Reset the peak so the compaction figure is the cleaner's own.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
    }
    if a.phase == "compact" || a.phase == "all" {
        compact(&a, now);
    }
    if !a.keep && a.phase != "build" {
        std::fs::remove_dir_all(&a.dir).expect("delete the data");
    }
}
