//! `satellite-bench`: load generator and benchmark (see docs/benchmarks.md).

use clap::Parser;
use satellite::bench::run::{run, Args};
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
