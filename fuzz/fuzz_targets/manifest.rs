//! cargo-fuzz target `manifest`: the same entry point the stable corpus replay runs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    satellite::fuzzing::fuzz_manifest(data);
});
