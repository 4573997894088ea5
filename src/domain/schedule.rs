//! Sync schedules: 6-field cron expressions with seconds, evaluated in UTC.

use super::DomainError;
use chrono::{DateTime, Utc};
use std::str::FromStr;

pub const DEFAULT_CRON: &str = "0 0 2 * * *";

/// Parses a 6-field cron expression (`sec min hour day-of-month month day-of-week`).
pub fn parse(expr: &str) -> Result<cron::Schedule, DomainError> {
    let expr = expr.trim();
    let invalid = |why: String| DomainError::invalid("invalid_cron", "cron", why);
    if expr.split_whitespace().count() != 6 {
        return Err(invalid(
            "Use 6 fields with seconds: sec min hour day month weekday, e.g. 0 0 2 * * *".into(),
        ));
    }
    cron::Schedule::from_str(expr).map_err(|e| invalid(format!("Not a valid cron expression: {e}")))
}

/// The next `n` run times strictly after `after`.
pub fn next_runs(schedule: &cron::Schedule, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
    schedule.after(&after).take(n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn daily_at_two_and_validation() {
        let s = parse(DEFAULT_CRON).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 11, 23, 3, 0, 0).unwrap();
        let runs = next_runs(&s, t, 2);
        assert_eq!(
            runs[0],
            Utc.with_ymd_and_hms(2026, 11, 24, 2, 0, 0).unwrap()
        );
        assert_eq!(
            runs[1],
            Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0).unwrap()
        );
        assert!(parse("0 2 * * *").is_err(), "5 fields");
        assert!(parse("0 0 25 * * *").is_err(), "hour 25");
        assert!(parse("*/5 * * * * *").is_ok());
    }
}
