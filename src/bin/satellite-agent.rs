//! `satellite-agent`: the reference product agent (CONTRACT.md section 4).

const USAGE: &str = "\
satellite-agent --state-dir DIR COMMAND

Commands (CONTRACT.md section 4):
  register --url URL --token T --pid P --sn S [--ca-cert PEM | --insecure]
  report --license TAG=COUNT...
  renew | status | deregister
  reserve request [--universal] | reserve install FILE | reserve return | reserve cancel

The agent protocol is not built yet in this version.";

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return std::process::ExitCode::SUCCESS;
    }
    eprintln!("{USAGE}");
    std::process::ExitCode::from(2)
}
