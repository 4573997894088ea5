//! The `satellite` command line. Exit codes: 0 ok, 1 operation failed, 2 usage.

mod admin;
mod bundle;
mod keys;
mod ledger;
mod output;
mod serve;

use crate::config::{ConfigError, ServerRole, Settings, SettingsLayer};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

pub use output::Output;

#[derive(Parser)]
#[command(name = "satellite", version, about = "On-prem license authority")]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct GlobalArgs {
    /// Data directory (database, keys, TLS). Env: SATELLITE_DATA_DIR. Default ./data
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// TOML settings file. Env: SATELLITE_CONFIG
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Print one JSON object instead of key=value lines.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(serve::ServeArgs),
    /// Manage people who log in to the pages.
    #[command(subcommand)]
    User(admin::UserCommand),
    /// Manage machine clients of the admin API.
    #[command(subcommand, name = "api-client")]
    ApiClient(admin::ApiClientCommand),
    /// Sync bundles for disconnected mode.
    #[command(subcommand)]
    Bundle(bundle::BundleCommand),
    /// Write one file holding a consistent copy of the database, keys/ and tls/ (safe
    /// while the server runs; the file is 0600: it holds the authority's private key).
    Backup { file: PathBuf },
    /// Create --data-dir from the backup in FILE, or replace a stopped server's data;
    /// refuses a data dir that a running server uses.
    Restore { file: PathBuf },
    /// Recount every counter from the rows it summarizes; exit 1 on any mismatch.
    Check,
    /// The authority key: rotate it with an overlap period.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// The tamper-evident ledger: verify it, show its signed head.
    #[command(subcommand)]
    Ledger(ledger::LedgerCommand),
}

/// A command that failed: the message says what and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CliError(pub String);

impl CliError {
    pub fn from_display(e: impl std::fmt::Display) -> Self {
        CliError(e.to_string())
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError::from_display(e)
    }
}

impl From<crate::store::StoreError> for CliError {
    fn from(e: crate::store::StoreError) -> Self {
        CliError::from_display(e)
    }
}

impl From<crate::crypto::CryptoError> for CliError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        CliError::from_display(e)
    }
}

/// Flags that feed the settings' top layer.
#[derive(Default)]
pub(crate) struct FlagLayer {
    pub listen: Option<String>,
    pub role: Option<ServerRole>,
    pub bundle_dir: Option<PathBuf>,
    pub insecure_http: bool,
    pub metrics_listen: Option<String>,
    pub log_format: Option<crate::config::LogFormat>,
}

fn settings(global: &GlobalArgs, flags: FlagLayer) -> Result<Settings, CliError> {
    let config_path = global
        .config
        .clone()
        .or_else(|| std::env::var_os("SATELLITE_CONFIG").map(PathBuf::from));
    let file = match config_path {
        Some(p) => SettingsLayer::from_toml_file(&p)?,
        None => SettingsLayer::default(),
    };
    let env = SettingsLayer::from_env(|k| std::env::var(k).ok())?;
    let flags = SettingsLayer {
        data_dir: global.data_dir.clone(),
        listen: flags.listen,
        role: flags.role,
        bundle_dir: flags.bundle_dir,
        insecure_http: flags.insecure_http.then_some(true),
        metrics_listen: flags.metrics_listen,
        log_format: flags.log_format,
        ..Default::default()
    };
    Ok(Settings::resolve(file, env, flags))
}

/// Parses the command line and runs it; the binary only calls this.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let out = Output::new(cli.global.json);
    let no_flags = FlagLayer::default;
    let result = match cli.command {
        Command::Serve(args) => {
            let flags = FlagLayer {
                listen: args.listen.clone(),
                role: args.role,
                bundle_dir: args.bundle_dir.clone(),
                insecure_http: args.insecure_http,
                metrics_listen: args.metrics_listen.clone(),
                log_format: args.log_format,
            };
            settings(&cli.global, flags).and_then(|s| serve::run(s, &out))
        }
        Command::User(cmd) => {
            settings(&cli.global, no_flags()).and_then(|s| admin::user(s, cmd, &out))
        }
        Command::ApiClient(cmd) => {
            settings(&cli.global, no_flags()).and_then(|s| admin::api_client(s, cmd, &out))
        }
        Command::Backup { file } => {
            settings(&cli.global, no_flags()).and_then(|s| admin::backup(s, &file, &out))
        }
        Command::Restore { file } => {
            settings(&cli.global, no_flags()).and_then(|s| admin::restore(s, &file, &out))
        }
        Command::Bundle(cmd) => {
            settings(&cli.global, no_flags()).and_then(|s| bundle::run(s, cmd, &out))
        }
        Command::Check => settings(&cli.global, no_flags()).and_then(|s| admin::check(s, &out)),
        Command::Keys(cmd) => {
            settings(&cli.global, no_flags()).and_then(|s| keys::run(s, cmd, &out))
        }
        Command::Ledger(cmd) => {
            settings(&cli.global, no_flags()).and_then(|s| ledger::run(s, cmd, &out))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
