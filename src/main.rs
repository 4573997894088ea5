//! `satellite`: the server and its administrative commands.

// glibc's malloc took about 8% of the server's CPU under agent load (perf), most of it
// consolidating free lists; mimalloc's per-thread pages avoid that work.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    satellite::cli::run()
}
