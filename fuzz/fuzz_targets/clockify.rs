//! cargo-fuzz target: the clockify harness of `timepost::sources::fuzzing`
//! (input: one selector byte, then the payload). See ../README.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    timepost::sources::fuzzing::clockify(data);
});
