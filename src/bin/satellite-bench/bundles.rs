//! Disconnected sync of the whole seeded account, timed as an operator runs it: the
//! satellite's `bundle export`, the upstream's `bundle import` (which writes the answer),
//! and the satellite's `bundle import` of that answer, each a `satellite` process.

use super::seed::ACCOUNT;
use satellite::clock::Clock;
use satellite::config::Settings;
use satellite::crypto::AuthorityKey;
use satellite::service::{access, accounts as service_accounts};
use satellite::store::{accounts, sync_state, Store};
use satellite::sync::{outbound, SyncContext};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One timed CLI step.
pub struct Step {
    pub name: &'static str,
    pub took: Duration,
    pub bundle_mib: f64,
}

/// Runs `satellite <args>` and returns the `bundle=` path it printed, if any.
fn cli(
    bin: &Path,
    args: &[&str],
    data: &Path,
    env: &[(&str, &str)],
) -> Result<Option<PathBuf>, String> {
    let out = Command::new(bin)
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .envs(env.iter().copied())
        .env("SATELLITE_LOG", "warn")
        .output()
        .map_err(|e| format!("cannot run satellite: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "satellite {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("bundle=").map(PathBuf::from)))
}

fn written(bundle: Option<PathBuf>, what: &str) -> Result<PathBuf, String> {
    bundle.ok_or_else(|| format!("{what} wrote no bundle"))
}

/// An upstream data dir (no server needed) holding the bench account; returns a fresh
/// satellite token for it.
fn upstream(dir: &Path, now: i64) -> Result<String, String> {
    let store = Store::open(&dir.join("satellite.db")).map_err(|e| e.to_string())?;
    AuthorityKey::load_or_create(dir).map_err(|e| e.to_string())?;
    let admin = access::system_principal("bench");
    store
        .write_blocking(|tx| {
            let id = match accounts::id_by_name(tx, ACCOUNT)? {
                Some(id) => id,
                None => {
                    let cap = access::system_admin(&admin)?;
                    service_accounts::create(tx, &cap, now, ACCOUNT, "bench upstream")?.id
                }
            };
            sync_state::create_satellite_token(tx, id, "bench", 30, now).map(|(_, t)| t)
        })
        .map_err(|e| e.to_string())
}

/// Registers the satellite's bench account with the upstream by files, unless it is.
fn register(
    bin: &Path,
    (sat, sat_bundles): (&Path, &Path),
    up: &Path,
    up_env: &[(&str, &str)],
    now: i64,
) -> Result<(), String> {
    let store = Store::open(&sat.join("satellite.db")).map_err(|e| e.to_string())?;
    let registered = store
        .read_blocking(|c| sync_state::link_by_account(c, ACCOUNT))
        .map_err(|e| e.to_string())?
        .is_some_and(|l| l.state == satellite::domain::sync::LinkState::Registered);
    if registered {
        return Ok(());
    }
    let token = upstream(up, now)?;
    let settings = Settings {
        data_dir: sat.to_path_buf(),
        bundle_dir: sat_bundles.to_path_buf(),
        ..Settings::default()
    };
    let authority = Arc::new(AuthorityKey::load_or_create(sat).map_err(|e| e.to_string())?);
    let ctx = SyncContext::new(store, authority, &settings, Clock::with_offset(0));
    let request = outbound::registration_request(
        &ctx,
        ACCOUNT,
        satellite::domain::sync::LinkMode::Disconnected,
        &token,
        None,
        None,
    )
    .map_err(|e| e.to_string())?;
    let answer = written(
        cli(
            bin,
            &["bundle", "import", &request.path.to_string_lossy()],
            up,
            up_env,
        )?,
        "the upstream's import of the registration",
    )?;
    cli(
        bin,
        &["bundle", "import", &answer.to_string_lossy()],
        sat,
        &[],
    )?;
    Ok(())
}

fn mib(p: &Path) -> f64 {
    std::fs::metadata(p).map_or(0.0, |m| m.len() as f64 / (1 << 20) as f64)
}

/// Registers if needed, then times one full round trip of the account.
pub fn round_trip(
    bin: &Path,
    (sat, sat_bundles): (&Path, &Path),
    root: &Path,
    now: i64,
) -> Result<Vec<Step>, String> {
    let up = root.join("upstream");
    let up_bundles = up.join("bundles");
    let up_bundles = up_bundles.to_string_lossy();
    let up_env = [
        ("SATELLITE_ROLE", "upstream"),
        ("SATELLITE_BUNDLE_DIR", up_bundles.as_ref()),
    ];
    register(bin, (sat, sat_bundles), &up, &up_env, now)?;
    let mut steps = vec![];
    let mut timed = |name, args: &[&str], data: &Path, env: &[(&str, &str)], size_of: &Path| {
        let started = Instant::now();
        let bundle = cli(bin, args, data, env)?;
        let took = started.elapsed();
        steps.push(Step {
            name,
            took,
            bundle_mib: mib(bundle.as_deref().unwrap_or(size_of)),
        });
        Ok::<_, String>(bundle)
    };
    let request = written(
        timed(
            "bundle export (satellite)",
            &["bundle", "export", "--account", ACCOUNT],
            sat,
            &[],
            sat,
        )?,
        "bundle export",
    )?;
    let answer = written(
        timed(
            "bundle import (upstream)",
            &["bundle", "import", &request.to_string_lossy()],
            &up,
            &up_env,
            &request,
        )?,
        "the upstream's import",
    )?;
    timed(
        "bundle import (satellite)",
        &["bundle", "import", &answer.to_string_lossy()],
        sat,
        &[],
        &answer,
    )?;
    Ok(steps)
}
