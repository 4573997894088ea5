//! `satellite-bench`: load generator and benchmark (see docs/benchmarks.md). Its own
//! module tree under the binary, so the shipped library carries none of it; it drives the
//! library only through the public modules a tool may use (store and service to seed,
//! crypto to sign, sync to time the bundle round trip).

// The same rule as the library: errors are values.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod bundles;
mod estate;
mod floor;
mod load;
mod metrics;
mod phase;
mod procstat;
mod report;
mod run;
mod sample;
mod seed;

use clap::Parser;
use run::{run, Args};
use sample::Sample;
use std::process::ExitCode;

// The floor server runs in this binary: same allocator as the product it is compared with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: some requests failed (see the errors column)");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
