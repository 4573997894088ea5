//! `satellite ledger verify` and `satellite ledger show-head` (docs/ledger.md). Both only
//! read: the database is opened read-only (never through `Store`, whose open would start
//! a missing chain and so hide a deleted one), and verify trusts the public key alone.

use super::{CliError, Output};
use crate::config::Settings;
use crate::service::ledger;
use ed25519_dalek::pkcs8::DecodePublicKey;
use ed25519_dalek::VerifyingKey;
use indicatif::{ProgressBar, ProgressStyle};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

#[derive(clap::Subcommand)]
pub enum LedgerCommand {
    /// Replay the chain against the database and check every signed head with the public
    /// key; exit 1 naming the first bad entry.
    Verify {
        /// An SPKI public key that may have signed heads; repeat it for keys used before a
        /// rotation (default: keys/authority.pub.pem in the data dir, plus the old key
        /// named in keys/rotation.json after a rotation).
        #[arg(long)]
        public_key: Vec<PathBuf>,
    },
    /// Print the newest signed head as JSON, with the exact message it signs and the
    /// line its entry hash covers.
    ShowHead,
}

fn open(settings: &Settings) -> Result<Connection, CliError> {
    let path = settings.db_path();
    if !path.exists() {
        return Err(CliError(format!(
            "no database at {}; start `satellite serve` once or pass --data-dir",
            path.display()
        )));
    }
    let conn = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(CliError::from_display)?;
    // Read-only: an older schema is not migrated here, and its rows would not read as the
    // ledger's text does now (migration 0019 re-encoded the instance tables).
    let version = crate::store::ledger::schema_version(&conn).map_err(CliError::from_display)?;
    let latest = crate::store::migrations::LATEST as i64;
    if version < latest {
        return Err(CliError(format!(
            "{} is at schema version {version}, this version reads {latest}; start \
             `satellite serve` or run `satellite check` on it once to migrate it",
            path.display()
        )));
    }
    let has = crate::store::ledger::installed(&conn).map_err(CliError::from_display)?;
    if !has {
        return Err(CliError(format!(
            "{} has no ledger yet; start this version's `satellite serve` on it once",
            path.display()
        )));
    }
    Ok(conn)
}

fn read_key(path: &Path) -> Result<VerifyingKey, CliError> {
    let pem = std::fs::read_to_string(path).map_err(|e| {
        CliError(format!(
            "cannot read {}: {e}; pass --public-key",
            path.display()
        ))
    })?;
    VerifyingKey::from_public_key_pem(&pem).map_err(|e| {
        CliError(format!(
            "{} is not an ed25519 SPKI public key: {e}",
            path.display()
        ))
    })
}

/// The keys given, or the data dir's public key and the one it rotated from.
fn public_keys(settings: &Settings, given: Vec<PathBuf>) -> Result<Vec<VerifyingKey>, CliError> {
    if !given.is_empty() {
        return given.iter().map(|p| read_key(p)).collect();
    }
    let keys = settings.data_dir.join("keys");
    let mut found = vec![read_key(&keys.join("authority.pub.pem"))?];
    let old = std::fs::read(keys.join("rotation.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["old_public_key"].as_str().map(str::to_string))
        .and_then(|b64| crate::crypto::agent_sig::decode_public_key(&b64));
    found.extend(old);
    Ok(found)
}

pub fn run(settings: Settings, cmd: LedgerCommand, out: &Output) -> Result<(), CliError> {
    match cmd {
        LedgerCommand::Verify { public_key: path } => {
            let keys = public_keys(&settings, path)?;
            let conn = open(&settings)?;
            let total = crate::store::ledger::entry_count(&conn)?;
            let pb = ProgressBar::new(total.max(0) as u64);
            if let Ok(style) =
                ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} entries ({elapsed})")
            {
                pb.set_style(style.progress_chars("=> "));
            }
            pb.set_message("replaying the ledger");
            let outcome = ledger::verify(&conn, &keys, &|n| pb.set_position(n))
                .map_err(CliError::from_display)?;
            pb.finish_and_clear();
            match outcome {
                Ok(c) => {
                    out.emit(&[
                        ("ledger", "ok".to_string()),
                        ("entries", c.entries.to_string()),
                        ("heads", c.heads.to_string()),
                        ("rows", c.rows.to_string()),
                        ("last_seq", c.last_seq.to_string()),
                    ]);
                    Ok(())
                }
                Err(findings) => {
                    for f in &findings {
                        eprintln!("bad entry {}: {}", f.seq, f.what);
                    }
                    let first = &findings[0];
                    Err(CliError(format!(
                        "ledger verify failed: the first bad entry is {} ({}); {} finding(s) in all",
                        first.seq,
                        first.what,
                        findings.len()
                    )))
                }
            }
        }
        LedgerCommand::ShowHead => {
            let conn = open(&settings)?;
            match ledger::show_head(&conn).map_err(CliError::from_display)? {
                Some(v) => {
                    println!("{v}");
                    Ok(())
                }
                None => Err(CliError(
                    "no signed head yet: the server signs one at start and on every sync".into(),
                )),
            }
        }
    }
}
