//! `satellite-agent`: the reference product agent (CONTRACT.md section 4).
//! Exit codes: 0 ok, 1 operation failed, 2 usage.

use clap::{Parser, Subcommand};
use satellite::agent::export;
use satellite::agent::ops::{self, Lines, RegisterArgs};
use satellite::agent::run;
use satellite::agent::state::StateDir;
use satellite::agent::AgentError;
use satellite::cli::Output;
use satellite::clock::Clock;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "satellite-agent",
    version,
    about = "Reference product agent for satellite"
)]
struct Cli {
    /// Where the agent keeps its key, id certificate and last authorization.
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
    /// Print one JSON object instead of key=value lines.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register with a satellite (or upstream) using a registration token.
    Register {
        #[arg(long)]
        url: String,
        #[arg(long)]
        token: String,
        #[arg(long)]
        pid: String,
        #[arg(long)]
        sn: String,
        /// PEM file of the CA (or the server's self-signed certificate) to trust.
        #[arg(long, conflicts_with = "insecure")]
        ca_cert: Option<PathBuf>,
        /// Do not verify the server's TLS certificate (responses are still signature-checked).
        #[arg(long)]
        insecure: bool,
        #[arg(long, default_value = "satellite-agent")]
        product: String,
        #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
        product_version: String,
        #[arg(long)]
        hostname: Option<String>,
        /// Move this product here from another virtual account of the same account.
        #[arg(long)]
        reregister: bool,
        /// HTTP CONNECT proxy (`http://[user:pass@]host:port`), kept for later commands.
        #[arg(long)]
        proxy: Option<String>,
    },
    /// Report current usage: --license TAG=COUNT, repeated.
    Report {
        #[arg(long = "license", required = true)]
        licenses: Vec<String>,
    },
    /// Renew the id certificate.
    Renew {
        /// The product's hostname now (recorded by the server when it changed).
        #[arg(long)]
        hostname: Option<String>,
    },
    /// Show the licensing state, offline.
    Status,
    /// Deregister; the server releases this instance's licenses at once.
    Deregister,
    /// Stay up: report the usage file's TAG=COUNT lines every interval, renew on time.
    Run {
        #[arg(long)]
        usage_file: PathBuf,
        /// Seconds between reports.
        #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
        interval: u64,
    },
    /// Export keys: request, return or cancel, for --license TAG (repeatable).
    Export {
        #[arg(value_enum)]
        action: ExportVerb,
        #[arg(long = "license", required = true)]
        licenses: Vec<String>,
    },
    /// License reservation for a product that never reaches the server (SLR/PLR).
    #[command(subcommand)]
    Reserve(Reserve),
}

#[derive(Subcommand)]
enum Reserve {
    /// Print a request code (the UDI comes from the registration, else from the flags).
    Request {
        #[arg(long)]
        universal: bool,
        #[arg(long, requires = "sn")]
        pid: Option<String>,
        #[arg(long, requires = "pid")]
        sn: Option<String>,
    },
    /// Verify and install an authorization code file; print the confirmation code.
    Install {
        file: PathBuf,
        /// The authority's SPKI PEM (`/agent/v1/authority.pem`), for an agent never registered.
        #[arg(long)]
        authority_key: Option<PathBuf>,
    },
    /// Print a return code for the installed reservation and drop it.
    Return,
    /// Print a return code for an authorization code never installed.
    ReturnAuthorization { file: PathBuf },
    /// Drop a pending request.
    Cancel,
}

/// A code, printed alone on its line.
fn code(c: String) -> Lines {
    vec![("", c)]
}

fn reserve(
    dir: &StateDir,
    state_dir: &std::path::Path,
    now: i64,
    r: Reserve,
) -> Result<Lines, AgentError> {
    use satellite::agent::reserve as res;
    match r {
        Reserve::Request { universal, pid, sn } => res::request(
            dir,
            state_dir,
            now,
            universal,
            pid.as_deref(),
            sn.as_deref(),
        )
        .map(code),
        Reserve::Install {
            file,
            authority_key,
        } => res::install(dir, state_dir, now, &file, authority_key.as_deref()).map(code),
        Reserve::Return => res::return_installed(state_dir).map(code),
        Reserve::ReturnAuthorization { file } => {
            res::return_authorization(state_dir, &file).map(code)
        }
        Reserve::Cancel => res::cancel(state_dir),
    }
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportVerb {
    Request,
    Return,
    Cancel,
}

fn run(cli: Cli) -> Result<Lines, AgentError> {
    let state_dir = cli
        .state_dir
        .or_else(|| std::env::var_os("SATELLITE_AGENT_STATE_DIR").map(PathBuf::from))
        .ok_or_else(|| AgentError::Usage("--state-dir DIR is required".into()))?;
    let dir = StateDir::new(&state_dir);
    // The same drill-only clock offset as the server, so timers can be exercised end to end.
    let offset = std::env::var("SATELLITE_CLOCK_OFFSET_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let now = Clock::with_offset(offset).unix();
    match cli.command {
        Command::Register {
            url,
            token,
            pid,
            sn,
            ca_cert,
            insecure,
            product,
            product_version,
            hostname,
            reregister,
            proxy,
        } => {
            let ca_cert_pem = ca_cert
                .map(|p| {
                    std::fs::read_to_string(&p)
                        .map_err(|e| AgentError::Usage(format!("cannot read {}: {e}", p.display())))
                })
                .transpose()?;
            ops::register(
                &dir,
                now,
                RegisterArgs {
                    url: &url,
                    token: &token,
                    pid: &pid,
                    sn: &sn,
                    ca_cert_pem,
                    insecure,
                    product_name: &product,
                    product_version: &product_version,
                    hostname,
                    reregister,
                    proxy,
                },
            )
        }
        Command::Report { licenses } => {
            let parsed = licenses
                .iter()
                .map(|l| ops::parse_license(l))
                .collect::<Result<Vec<_>, _>>()?;
            ops::report(&dir, now, Clock::with_offset(offset).unix_millis(), &parsed)
        }
        Command::Renew { hostname } => ops::renew_with_hostname(&dir, now, hostname.as_deref()),
        Command::Status => ops::status(&dir, now)
            .and_then(|l| satellite::agent::reserve::amend_status(&state_dir, l)),
        Command::Deregister => ops::deregister(&dir, now),
        Command::Run {
            usage_file,
            interval,
        } => {
            let stop = on_termination()?;
            let args = run::RunArgs {
                usage_file,
                interval: std::time::Duration::from_secs(interval),
            };
            run::run(&dir, &Clock::with_offset(offset), &args, &stop)
        }
        Command::Export { action, licenses } => {
            let action = match action {
                ExportVerb::Request => export::ExportAction::Request,
                ExportVerb::Return => export::ExportAction::Return,
                ExportVerb::Cancel => export::ExportAction::Cancel,
            };
            export::run(&dir, now, action, &licenses)
        }
        Command::Reserve(r) => reserve(&dir, &state_dir, now, r),
    }
}

/// A channel that delivers once SIGTERM or SIGINT arrives (a small runtime on its own
/// thread waits for them; the run loop itself stays blocking).
fn on_termination() -> Result<std::sync::mpsc::Receiver<()>, AgentError> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = std::sync::mpsc::channel();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| AgentError::State(format!("cannot start the signal watcher: {e}")))?;
    // Install the handlers before returning, so a signal sent right after start counts.
    let (mut term, mut int) = runtime
        .block_on(async {
            Ok::<_, std::io::Error>((
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
            ))
        })
        .map_err(|e| AgentError::State(format!("cannot watch for signals: {e}")))?;
    std::thread::spawn(move || {
        runtime.block_on(async {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        });
        let _ = tx.send(());
    });
    Ok(rx)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let (out, json) = (Output::new(cli.json), cli.json);
    match run(cli) {
        Ok(lines) => {
            match lines.as_slice() {
                [("", c)] if !json => println!("{c}"),
                [("", c)] => out.emit(&[("code", c.clone())]),
                _ => out.emit(&lines),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(if matches!(e, AgentError::Usage(_)) {
                2
            } else {
                1
            })
        }
    }
}
