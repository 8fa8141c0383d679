//! Replays the fuzz corpus (`fuzz/corpus/`) through the fuzz entry points, so every input the
//! fuzzers kept, crashes they found included, is checked by `cargo test`. A missing or empty
//! corpus directory fails the test rather than passing it vacuously.

use std::path::PathBuf;
use std::time::Instant;

use brook_broker::fuzzing::{self, Verdict};

/// Every file in `fuzz/corpus/<target>`, in name order.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus directory {} is missing: {e}", dir.display()));
    let mut inputs: Vec<(String, Vec<u8>)> = entries
        .map(|entry| {
            let path = entry.unwrap().path();
            let data =
                std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                data,
            )
        })
        .collect();
    inputs.sort();
    assert!(
        !inputs.is_empty(),
        "corpus directory {} is empty",
        dir.display()
    );
    inputs
}

/// Runs `entry` over the corpus of `target`: no input may break an invariant, and some must be
/// accepted (a corpus of nothing but refusals no longer reaches past the first checks).
fn replay(target: &str, entry: fn(&[u8]) -> Result<Verdict, String>) {
    let started = Instant::now();
    let inputs = corpus(target);
    let mut accepted = 0;
    for (name, data) in &inputs {
        match entry(data) {
            Ok(Verdict::Accepted) => accepted += 1,
            Ok(Verdict::Refused(_)) => {}
            Err(bug) => panic!("fuzz/corpus/{target}/{name}: {bug}"),
        }
    }
    assert!(
        accepted > 0,
        "no input of fuzz/corpus/{target} is accepted ({} inputs)",
        inputs.len()
    );
    eprintln!(
        "fuzz/corpus/{target}: {} inputs, {accepted} accepted, in {:?}",
        inputs.len(),
        started.elapsed()
    );
}

#[test]
fn request_corpus_replays() {
    replay("request", fuzzing::request);
}

#[test]
fn records_corpus_replays() {
    replay("records", fuzzing::records);
}
