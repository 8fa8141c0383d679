//! Example programs the tests run as child processes, built on demand.
//!
//! `cargo test` does not leave example binaries where a test can find them
//! (and an old one may be lying there), so the first use in a test process
//! runs `cargo build --example NAME` for the profile and target directory of
//! the running test. Cargo releases its build lock before it runs tests, so
//! this does not wait on the `cargo test` that started us.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

static BUILT: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// The path of example `name`, freshly built.
pub fn example_bin(name: &str) -> PathBuf {
    let bin = cargo_build_once(&["--example", name])
        .join("examples")
        .join(name);
    assert!(bin.exists(), "example {name} not at {}", bin.display());
    bin
}

/// Runs `cargo build ARGS` once per test process for the running test's profile and target
/// directory; returns `target/<profile>`.
pub fn cargo_build_once(args: &[&str]) -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    // target/<profile>/deps/<test> → target/<profile>
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile> dir")
        .to_path_buf();
    let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    let set = built.get_or_insert_with(HashSet::new);
    if set.insert(args.join(" ")) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet"])
            .args(args)
            .arg("--target-dir")
            .arg(&target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("running cargo build");
        assert!(status.success(), "cargo build {} failed", args.join(" "));
    }
    profile_dir
}
