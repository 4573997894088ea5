//! cargo-fuzz target `bundle_reader`: the same entry point the stable corpus replay runs.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    satellite::fuzzing::fuzz_bundle(data);
});
