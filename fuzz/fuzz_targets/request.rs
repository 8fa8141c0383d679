//! One request frame (the bytes after its 4-byte size) through what a connection runs on it:
//! header and version checks, the bounded pre-pass, the codec. Run with a memory limit
//! (`-rss_limit_mb`, `-malloc_limit_mb`): a body the pre-pass accepts must decode without
//! allocating out of proportion to its size.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|frame: &[u8]| {
    if let Err(bug) = brook_broker::fuzzing::request(frame) {
        panic!("{bug}");
    }
});
