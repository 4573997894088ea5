//! `satellite-agent run`: the agent as a product runs it, staying up. It reports the counts
//! of a usage file (`TAG=COUNT` lines) every interval and as soon as the file changes
//! (which also renews the 30-day authorization), renews the id certificate once
//! `renew_after` has passed (the 6-month registration renewal), retries failed calls with
//! capped exponential backoff and jitter, and logs one line per action on stderr. It stops
//! when `stop` delivers (the binary sends SIGTERM and SIGINT there) and then exits 0.

use super::lifecycle::{licensing_state, LicensingState};
use super::ops;
use super::state::StateDir;
use super::AgentError;
use crate::clock::{rfc3339, Clock};
use crate::domain::timers::days_left;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub struct RunArgs {
    pub usage_file: PathBuf,
    pub interval: Duration,
}

/// First retry after a second, doubling up to five minutes (never beyond the interval).
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// How often the usage file is looked at between reports.
const FILE_POLL: Duration = Duration::from_millis(500);

fn log(line: &str) {
    eprintln!("satellite-agent: {line}");
}

/// The delay before retry number `failures` (1, 2, ...): doubling, capped, with up to
/// ±25 % jitter so that a fleet restarted together does not retry in step.
pub fn backoff(failures: u32, cap: Duration, jitter: f64) -> Duration {
    let exp = BACKOFF_FIRST.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let base = exp.min(cap).as_secs_f64();
    Duration::from_secs_f64((base * (1.0 + 0.25 * jitter.clamp(-1.0, 1.0))).max(0.1))
}

fn jitter() -> f64 {
    // A value in [-1, 1] from the OS random source; no extra dependency for it.
    let mut b = [0u8; 2];
    let _ = getrandom_fill(&mut b);
    f64::from(u16::from_le_bytes(b)) / f64::from(u16::MAX) * 2.0 - 1.0
}

fn getrandom_fill(buf: &mut [u8]) -> Result<(), rand_core::Error> {
    use rand_core::RngCore;
    rand_core::OsRng.try_fill_bytes(buf)
}

/// How long to wait after a good round: the interval, or less when the authorization
/// (30 days) or the registration (6 months) is due for renewal sooner, so a long interval
/// never lets them lapse. A deadline already past is left out: the round just done acted
/// on it if it could (an expired registration waits for a new `register`).
pub fn next_wait(interval: Duration, now: i64, due: &[Option<i64>]) -> Duration {
    due.iter()
        .flatten()
        .filter(|&&at| at > now)
        .map(|&at| Duration::from_secs(u64::try_from(at - now).unwrap_or(1)))
        .fold(interval, Duration::min)
}

/// The usage file's counts; `#` comments and blank lines are skipped.
pub fn parse_usage(text: &str) -> Result<Vec<(String, i64)>, AgentError> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(ops::parse_license)
        .collect()
}

/// What identifies a version of the usage file without reading it.
fn file_stamp(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Is this a failure worth retrying soon (the server unreachable or failing), rather than
/// a refusal that repeating will not change?
fn transient(e: &AgentError) -> bool {
    match e {
        AgentError::Network { .. } => true,
        AgentError::Refused { status, .. } => *status >= 500 || *status == 429,
        _ => false,
    }
}

enum Wake {
    Stop,
    Due,
    FileChanged,
}

/// Waits up to `wait`, waking early on a stop request or a change of the usage file.
fn sleep(
    stop: &Receiver<()>,
    wait: Duration,
    file: &Path,
    seen: &mut Option<(std::time::SystemTime, u64)>,
) -> Wake {
    let until = Instant::now() + wait;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Wake::Due;
        }
        match stop.recv_timeout(left.min(FILE_POLL)) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return Wake::Stop,
            Err(RecvTimeoutError::Timeout) => {}
        }
        let now_stamp = file_stamp(file);
        if now_stamp != *seen {
            *seen = now_stamp;
            return Wake::FileChanged;
        }
    }
}

/// One round: renew the registration if due, then report the usage file.
fn round(dir: &StateDir, clock: &Clock, usage_file: &Path) -> Result<(), AgentError> {
    let now = clock.unix();
    let (_, state) = dir.open(now)?;
    let (licensing, deadline) = licensing_state(&state, now);
    let Some(reg) = state.registration else {
        log(&format!(
            "not registered: {}, {} day(s) left; register with a token",
            licensing.as_str(),
            days_left(deadline, now)
        ));
        return Ok(());
    };
    if licensing == LicensingState::RegistrationExpired {
        log(&format!(
            "registration expired at {}; register again with a token",
            rfc3339(deadline)
        ));
        return Ok(());
    }
    if reg.cert_renew_after <= now {
        let lines = ops::renew(dir, now)?;
        let expires = lines
            .iter()
            .find(|(k, _)| *k == "expires_at")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        log(&format!("renewed registration: expires_at={expires}"));
    }
    let text = std::fs::read_to_string(usage_file).map_err(|e| {
        AgentError::Usage(format!(
            "cannot read usage file {}: {e}",
            usage_file.display()
        ))
    })?;
    let counts = parse_usage(&text)?;
    let lines = ops::report(dir, now, clock.unix_millis(), &counts)?;
    let status = lines
        .iter()
        .find(|(k, _)| *k == "status")
        .map(|(_, v)| v.as_str())
        .unwrap_or("unknown");
    let until = lines
        .iter()
        .find(|(k, _)| *k == "authorization_expires_at")
        .map(|(_, v)| v.as_str())
        .unwrap_or("-");
    log(&format!(
        "reported {} license(s): status={status} authorization_expires_at={until}",
        counts.len()
    ));
    Ok(())
}

/// Runs until `stop` delivers; returns the lines to print on the way out.
pub fn run(
    dir: &StateDir,
    clock: &Clock,
    args: &RunArgs,
    stop: &Receiver<()>,
) -> Result<ops::Lines, AgentError> {
    log(&format!(
        "running: usage file {}, interval {} s",
        args.usage_file.display(),
        args.interval.as_secs()
    ));
    let cap = BACKOFF_CAP.min(args.interval.max(BACKOFF_FIRST));
    let mut seen = file_stamp(&args.usage_file);
    let mut failures: u32 = 0;
    loop {
        let wait = match round(dir, clock, &args.usage_file) {
            Ok(()) => {
                failures = 0;
                let now = clock.unix();
                let (_, state) = dir.open(now)?;
                let due = [
                    state.authorization.and_then(|a| a.renew_after),
                    state.registration.map(|r| r.cert_renew_after),
                ];
                next_wait(args.interval, now, &due)
            }
            Err(e) if transient(&e) => {
                failures = failures.saturating_add(1);
                let wait = backoff(failures, cap, jitter());
                log(&format!(
                    "failed: {e}; retry {failures} in {:.1} s",
                    wait.as_secs_f64()
                ));
                wait
            }
            Err(e) => {
                // A refusal (or a bad usage file) will not change by retrying at once.
                failures = 0;
                log(&format!(
                    "failed: {e}; next try in {} s",
                    args.interval.as_secs()
                ));
                args.interval
            }
        };
        match sleep(stop, wait, &args.usage_file, &mut seen) {
            Wake::Stop => {
                log("stopping (signal received)");
                return Ok(vec![("status", "stopped".into())]);
            }
            Wake::FileChanged => log("usage file changed; reporting now"),
            Wake::Due => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let cap = Duration::from_secs(300);
        assert_eq!(backoff(1, cap, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(2, cap, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(5, cap, 0.0), Duration::from_secs(16));
        assert_eq!(backoff(40, cap, 0.0), cap);
        assert_eq!(backoff(40, cap, 1.0), Duration::from_secs(375));
        assert_eq!(backoff(3, cap, -1.0), Duration::from_secs(3));
        assert_eq!(
            backoff(1, Duration::from_millis(500), 0.0),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn a_long_interval_still_renews_on_time() {
        let hour = Duration::from_secs(3600);
        assert_eq!(next_wait(hour, 0, &[None, None]), hour);
        assert_eq!(
            next_wait(hour, 0, &[Some(600), Some(86_400)]),
            Duration::from_secs(600)
        );
        assert_eq!(
            next_wait(hour, 100, &[Some(50)]),
            hour,
            "past deadlines do not spin"
        );
        assert_eq!(next_wait(hour, 100, &[Some(101)]), Duration::from_secs(1));
    }

    #[test]
    fn usage_files_hold_tag_count_lines() {
        let counts = parse_usage("# product usage\nregid.a,1_x=3\n\n  b=0 \n").unwrap();
        assert_eq!(counts, vec![("regid.a,1_x".into(), 3), ("b".into(), 0)]);
        assert!(parse_usage("a=x").is_err());
    }
}
