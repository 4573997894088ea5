//! `satellite`: the server and its administrative commands.

fn main() -> std::process::ExitCode {
    satellite::cli::run()
}
