//! The Quick start pipeline (examples/log_pipeline.rs), shortened: generator →
//! FileTailSource → streams windows with suppress → SqliteSink, across a log
//! rotation; the program itself checks that SQLite's counts equal the lines
//! generated minus the malformed ones, and exits non-zero otherwise.

mod common;

use std::process::Command;

#[test]
fn log_pipeline_totals_match() {
    let bin = common::example_bin("log_pipeline");
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(&bin);
    cmd.args(["--duration", "6", "--rate", "1500", "--quiet", "--data-dir"])
        .arg(dir.path())
        .env("RUST_BACKTRACE", "0");
    // On an external cluster the pipeline's topics must not hold an earlier run's records.
    if let Some(b) = common::cluster::external_bootstrap() {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(common::cluster::wipe(&b))
            .expect("cleaning the external cluster");
        cmd.args(["--bootstrap-server", &b]);
    }
    let out = cmd.output().expect("run log_pipeline");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pipeline failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    if let Some(pause) = stdout.lines().find(|l| l.starts_with("longest pause")) {
        println!("{pause}");
    }
    let ok = stdout
        .lines()
        .find(|l| l.starts_with("OK: "))
        .expect("an OK line");
    // "OK: <requests> requests in SQLite = <generated> lines generated - <malformed> malformed ..."
    let nums: Vec<u64> = ok
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(nums.len(), 3, "{ok}");
    assert_eq!(nums[0], nums[1] - nums[2], "{ok}");
    assert!(nums[2] > 0, "the generator writes malformed lines: {ok}");
    assert!(
        dir.path().join("logs").join("access.log.1").exists(),
        "the log was rotated"
    );
    assert!(stdout.contains("last window in"), "{stdout}");
}
