//! One produced record set through Produce's validation (batch framing, CRC, codecs with a
//! capped streaming decompression, every record) under several topic policies, and the
//! readers of stored batches over what it accepts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(bug) = brook_broker::fuzzing::records(data) {
        panic!("{bug}");
    }
});
