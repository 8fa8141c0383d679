//! The `brook broker` binary as a child process: what a test kills with -9, restarts, and
//! measures (RSS) from outside.

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `brook` binary: `$BROOK_BIN`, else built on first use (`cargo build -p brook-cli`) for
/// this test's profile and target directory, so no earlier command has to have built it.
pub fn brook_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("BROOK_BIN") {
        return PathBuf::from(p);
    }
    super::example_bin::cargo_build_once(&["-p", "brook-cli"]).join("brook")
}

/// A `brook broker` child process, SIGKILLed when dropped.
pub struct BrokerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// How long the broker took from spawn to listening.
    pub startup: Duration,
}

impl BrokerProcess {
    /// Starts `brook broker` on `data_dir`, port 0, with extra `key=value` broker configs.
    pub fn spawn(data_dir: &Path, configs: &[&str]) -> BrokerProcess {
        Self::spawn_at(data_dir, "127.0.0.1:0", configs)
    }

    /// Starts `brook broker` listening on `listen` (a restart on the address clients know).
    pub fn spawn_at(data_dir: &Path, listen: &str, configs: &[&str]) -> BrokerProcess {
        let bin = brook_bin();
        let started = Instant::now();
        let mut cmd = Command::new(&bin);
        cmd.arg("broker")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", listen])
            .args(["--config", "group.initial.rebalance.delay.ms=0"]);
        for c in configs {
            cmd.args(["--config", c]);
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", bin.display()));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            while let Some(Ok(line)) = lines.next() {
                let addr = line
                    .split_whitespace()
                    .map(|t| t.trim_matches(|c: char| c == '(' || c == ')' || c == ','))
                    .find_map(|t| t.parse::<SocketAddr>().ok());
                if let Some(a) = addr {
                    let _ = tx.send(a);
                    break;
                }
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let addr = match rx.recv_timeout(super::TIMEOUT) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("brook broker did not print its address");
            }
        };
        BrokerProcess {
            child,
            addr,
            startup: started.elapsed(),
        }
    }

    /// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`: the peak RSS).
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("reading the broker's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// SIGKILL, and wait for the process to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
