//! `satellite bundle export | import | verify`: disconnected sync by hand, with progress.

use super::{CliError, Output};
use crate::clock::Clock;
use crate::config::{ServerRole, Settings};
use crate::crypto::AuthorityKey;
use crate::domain::sync::LinkState;
use crate::store::{sync_state, synced, Store};
use crate::sync::import::{self, preview, Source};
use crate::sync::{outbound, SyncContext, SyncError};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Subcommand)]
pub enum BundleCommand {
    /// Write the next sync-request bundle (to outbox/, or --out DIR).
    Export {
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Verify and apply a bundle, then archive it; an upstream writes its answer.
    Import { file: PathBuf },
    /// Verify a bundle only; exit 0 when valid, 1 when not.
    Verify { file: PathBuf },
}

fn context(settings: &Settings) -> Result<SyncContext, CliError> {
    let path = settings.db_path();
    if !path.exists() {
        return Err(CliError(format!(
            "no database at {}; start `satellite serve` once or pass --data-dir",
            path.display()
        )));
    }
    let store = Store::open_with(&path, settings.ledger_enabled)?;
    let mut settings = settings.clone();
    // The role the server runs as, recorded at its start, unless set explicitly.
    if std::env::var_os("SATELLITE_ROLE").is_none() {
        if let Some(role) = store.read_blocking(|c| sync_state::meta(c, "role"))? {
            settings.role = if role == "upstream" {
                ServerRole::Upstream
            } else {
                ServerRole::Satellite
            };
        }
    }
    if std::env::var_os("SATELLITE_BUNDLE_DIR").is_none() {
        if let Some(dir) = store.read_blocking(|c| sync_state::meta(c, "bundle_dir"))? {
            settings.bundle_dir = PathBuf::from(dir);
        }
    }
    let authority = Arc::new(AuthorityKey::load_or_create(&settings.data_dir)?);
    Ok(SyncContext::new(
        store,
        authority,
        &settings,
        Clock::with_offset(settings.clock_offset_seconds),
    ))
}

fn bar(total: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} records ({elapsed})")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_message(what.to_string());
    pb
}

fn sync_err(e: SyncError) -> CliError {
    match e {
        SyncError::Rejected(reason) => CliError(format!("bundle rejected: {reason}")),
        other => CliError::from_display(other),
    }
}

pub fn run(settings: Settings, cmd: BundleCommand, out: &Output) -> Result<(), CliError> {
    let ctx = context(&settings)?;
    match cmd {
        BundleCommand::Export { account, out: dir } => {
            let links = ctx.store.read_blocking(sync_state::links)?;
            let account = match account {
                Some(a) => a,
                None => {
                    let registered: Vec<_> = links
                        .iter()
                        .filter(|l| l.state == LinkState::Registered)
                        .collect();
                    match registered.as_slice() {
                        [one] => one.account.clone(),
                        [] => {
                            return Err(CliError(
                                "no account is registered with an upstream; register one first"
                                    .into(),
                            ))
                        }
                        _ => {
                            return Err(CliError(
                                "several accounts are registered; pass --account NAME".into(),
                            ))
                        }
                    }
                }
            };
            let total = ctx
                .store
                .read_blocking(|c| synced::instance_total(c, &account))?;
            let pb = bar(total as u64, "exporting");
            let written = outbound::sync_request(&ctx, &account, &|n| pb.set_position(n))
                .map_err(sync_err)?;
            pb.finish_and_clear();
            let mut path = written.path.clone();
            if let Some(dir) = dir {
                std::fs::create_dir_all(&dir).map_err(CliError::from_display)?;
                let to = dir.join(path.file_name().unwrap_or_default());
                std::fs::copy(&path, &to).map_err(CliError::from_display)?;
                path = to;
            }
            out.emit(&[
                ("bundle", path.display().to_string()),
                ("kind", written.manifest.kind.clone()),
                ("sequence", written.manifest.sequence.to_string()),
                ("records", written.manifest.records().to_string()),
            ]);
            Ok(())
        }
        BundleCommand::Import { file } => {
            let total = import::peek(&file).map(|m| m.records()).unwrap_or(0);
            let pb = bar(total, "importing");
            let result = import::import_file(&ctx, &file, Source::Path, &|n| pb.set_position(n));
            pb.finish_and_clear();
            let outcome = result.map_err(sync_err)?;
            let mut lines = vec![
                ("result", outcome.result.as_str().to_string()),
                ("kind", outcome.kind.as_str().to_string()),
                ("bundle_id", outcome.bundle_id.clone()),
                ("summary", outcome.summary.to_string()),
            ];
            if let Some(answer) = &outcome.answer {
                lines.insert(0, ("bundle", answer.path.display().to_string()));
            }
            out.emit(&lines);
            Ok(())
        }
        BundleCommand::Verify { file } => {
            let (m, pinned) = import::verify_file(&ctx, &file).map_err(sync_err)?;
            let mut pairs = vec![
                ("valid", "true".into()),
                ("kind", m.kind),
                ("bundle_id", m.bundle_id),
                ("account", m.account),
                ("from", m.from.authority_id),
                (
                    "signature",
                    if pinned {
                        "pinned key".into()
                    } else {
                        "bundle's own key (sender not pinned here)".into()
                    },
                ),
                (
                    "records",
                    m.files.iter().map(|f| f.records).sum::<u64>().to_string(),
                ),
            ];
            // Then what importing it here would change; the exit code still says only
            // whether it verifies (a bundle this server would refuse verifies all the same).
            match preview::preview_file(&ctx, &file) {
                Ok(p) => {
                    pairs.push(("import", p.result.as_str().into()));
                    let json = serde_json::to_value(&p).unwrap_or_default();
                    out.emit_report(&pairs, "preview", json, &p.to_string());
                }
                Err(SyncError::Rejected(reason)) => {
                    pairs.push(("import", format!("rejected: {reason}")));
                    out.emit_report(&pairs, "preview", serde_json::Value::Null, "");
                }
                Err(e) => return Err(sync_err(e)),
            }
            Ok(())
        }
    }
}
