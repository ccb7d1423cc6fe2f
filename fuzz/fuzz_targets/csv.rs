//! cargo-fuzz target: the csv harness of `timepost_core::sources::fuzzing`
//! (input: one selector byte, then the payload). See ../README.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    timepost_core::sources::fuzzing::csv(data);
});
