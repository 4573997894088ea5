//! `satellite keys rotate`: a new authority key, vouched for by the old one for an
//! overlap period (see `crypto::rotation`), so pinned peers move over without
//! re-registering. The server signs with the new key from its next start.

use super::{CliError, Output};
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::rotation;
use crate::store::{events, Store};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make a new authority key; the old key vouches for it during the overlap.
    Rotate {
        /// Days during which peers that pinned the old key accept the new one.
        #[arg(long, default_value_t = 30)]
        overlap_days: i64,
    },
}

pub fn run(settings: Settings, cmd: KeysCommand, out: &Output) -> Result<(), CliError> {
    let KeysCommand::Rotate { overlap_days } = cmd;
    if !(1..=3650).contains(&overlap_days) {
        return Err(CliError(
            "--overlap-days is between 1 and 3650: peers must have time to sync or renew".into(),
        ));
    }
    let now = Clock::with_offset(settings.clock_offset_seconds).unix();
    let db = settings.db_path();
    let store = if db.exists() {
        Some(Store::open_with(&db, settings.ledger_enabled)?)
    } else {
        None
    };
    let r = rotation::rotate(&settings.data_dir, overlap_days, now)?;
    if let Some(store) = store {
        store.write_blocking(|tx| {
            events::record(
                tx,
                now,
                events::NewEvent {
                    actor: "cli",
                    action: "authority.key_rotated",
                    account: None,
                    target: &r.authority_id,
                    detail: serde_json::json!({
                        "old_public_key": r.old_public_key,
                        "new_public_key": r.new_public_key,
                        "overlap_until": r.overlap_until,
                    }),
                },
            )
        })?;
    }
    out.emit(&[
        ("authority_id", r.authority_id.clone()),
        ("public_key", r.new_public_key.clone()),
        ("overlap_until", r.overlap_until.clone()),
        (
            "next",
            "restart the server to sign with the new key".to_string(),
        ),
    ]);
    Ok(())
}
