//! Administrative commands that work on the data dir, also while the server runs.

use super::{CliError, Output};
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::{password, secrets};
use crate::domain::{names, Role};
use crate::service::access;
use crate::service::users as service_users;
use crate::store::{api_clients, counters, Store};
use clap::Subcommand;
use std::io::BufRead;
use std::path::Path;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a person. Without --password-stdin a password is generated and printed once.
    Add {
        #[arg(long)]
        username: String,
        #[arg(long)]
        role: String,
        /// Required for account-admin and viewer.
        #[arg(long)]
        account: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

#[derive(Subcommand)]
pub enum ApiClientCommand {
    /// Add a machine client; prints client_id and client_secret once.
    Add {
        #[arg(long)]
        name: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        account: Option<String>,
    },
}

fn open(settings: &Settings) -> Result<Store, CliError> {
    let path = settings.db_path();
    if !path.exists() {
        return Err(CliError(format!(
            "no database at {}; start `satellite serve` once or pass --data-dir",
            path.display()
        )));
    }
    Ok(Store::open_with(&path, settings.ledger_enabled)?)
}

fn parse_role(role: &str) -> Result<Role, CliError> {
    role.parse::<Role>().map_err(CliError::from_display)
}

pub fn user(settings: Settings, cmd: UserCommand, out: &Output) -> Result<(), CliError> {
    let UserCommand::Add {
        username,
        role,
        account,
        password_stdin,
    } = cmd;
    let role = parse_role(&role)?;
    let (password, generated) = if password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError(format!("cannot read password from stdin: {e}")))?;
        let line = line.trim_end_matches(['\n', '\r']).to_string();
        names::password_for("password", &line, &username).map_err(CliError::from_display)?;
        (line, false)
    } else {
        (secrets::random_password(), true)
    };
    let store = open(&settings)?;
    let hash = password::hash(&password)?;
    let now = Clock::with_offset(settings.clock_offset_seconds).unix();
    let user = store.write_blocking(|tx| {
        let new = service_users::NewUser {
            username: &username,
            password_hash: &hash,
            role,
            account: account.as_deref(),
            must_change_password: generated,
        };
        let cap = access::local_operator("cli");
        service_users::create(tx, &cap, now, new).map_err(crate::store::StoreError::from)
    })?;
    let mut lines = vec![
        ("username", user.username),
        ("role", role.as_str().to_string()),
    ];
    if generated {
        lines.push(("password", password));
    }
    out.emit(&lines);
    Ok(())
}

pub fn api_client(settings: Settings, cmd: ApiClientCommand, out: &Output) -> Result<(), CliError> {
    let ApiClientCommand::Add {
        name,
        role,
        account,
    } = cmd;
    let role = parse_role(&role)?;
    let store = open(&settings)?;
    let now = Clock::with_offset(settings.clock_offset_seconds).unix();
    let created = store.write_blocking(|tx| {
        api_clients::create(tx, "cli", now, &name, role, account.as_deref())
    })?;
    out.emit(&[
        ("client_id", created.client_id),
        ("client_secret", created.client_secret),
    ]);
    Ok(())
}

pub fn backup(settings: Settings, file: &Path, out: &Output) -> Result<(), CliError> {
    if file.exists() {
        return Err(CliError(format!(
            "{} exists; choose a new file name",
            file.display()
        )));
    }
    let store = open(&settings)?;
    let now = crate::clock::Clock::with_offset(settings.clock_offset_seconds).unix();
    crate::backup::create(&store, &settings.data_dir, file, now).map_err(CliError::from_display)?;
    out.emit(&[("backup", file.display().to_string())]);
    Ok(())
}

pub fn restore(settings: Settings, file: &Path, out: &Output) -> Result<(), CliError> {
    let restored =
        crate::backup::restore(file, &settings.data_dir).map_err(CliError::from_display)?;
    out.emit(&[
        ("restored", file.display().to_string()),
        ("data_dir", settings.data_dir.display().to_string()),
        ("files", restored.files.to_string()),
    ]);
    Ok(())
}

pub fn check(settings: Settings, out: &Output) -> Result<(), CliError> {
    let store = open(&settings)?;
    let problems = store.read_blocking(counters::recount)?;
    if problems.is_empty() {
        out.emit(&[("counters", "ok".to_string())]);
        Ok(())
    } else {
        for p in &problems {
            eprintln!("mismatch: {p}");
        }
        Err(CliError(format!(
            "{} counter(s) differ from a recount",
            problems.len()
        )))
    }
}
