//! Sync schedules: cron expressions evaluated in UTC, 6 fields with seconds or the usual
//! 5 fields (read with seconds 0, CONTRACT section 6).

use super::DomainError;
use chrono::{DateTime, Utc};
use std::str::FromStr;

pub const DEFAULT_CRON: &str = "0 0 2 * * *";

/// Parses a cron expression: 6 fields (`sec min hour day-of-month month day-of-week`) or 5
/// (`min hour day-of-month month day-of-week`, seconds 0).
pub fn parse(expr: &str) -> Result<cron::Schedule, DomainError> {
    let expr = normalize(expr)?;
    cron::Schedule::from_str(&expr).map_err(|e| {
        DomainError::invalid(
            "invalid_cron",
            "cron",
            format!("Not a valid cron expression: {e}"),
        )
    })
}

/// The 6-field form of an expression, as stored: a 5-field one gains seconds 0 and has
/// its numeric weekdays moved from crontab's (0 or 7 = Sunday, 1 = Monday) to the 6-field
/// reading (1 = Sunday, 2 = Monday), so `0 2 * * 1` still means Mondays at 02:00.
pub fn normalize(expr: &str) -> Result<String, DomainError> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    match fields.len() {
        6 => Ok(fields.join(" ")),
        5 => {
            let weekday = crontab_weekdays(fields[4]).ok_or_else(|| {
                DomainError::invalid(
                    "invalid_cron",
                    "cron",
                    format!(
                        "The weekday field '{}' is not valid (0-7 or SUN-SAT).",
                        fields[4]
                    ),
                )
            })?;
            Ok(format!("0 {} {weekday}", fields[..4].join(" ")))
        }
        _ => Err(DomainError::invalid(
            "invalid_cron",
            "cron",
            "Use 5 fields (minute hour day month weekday, e.g. 0 2 * * * for 02:00 UTC daily) \
             or 6 with seconds first (e.g. 0 0 2 * * *).",
        )),
    }
}

/// Crontab weekday numbers to the 6-field reading; names, `*` and `?` stay as they are.
fn crontab_weekdays(field: &str) -> Option<String> {
    let day = |s: &str| -> Option<String> {
        match s.parse::<u32>() {
            Ok(n) if n <= 7 => Some(((n % 7) + 1).to_string()),
            Ok(_) => None,
            Err(_) => Some(s.to_string()),
        }
    };
    let mut items = Vec::new();
    for item in field.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((b, s)) => (b, Some(s)),
            None => (item, None),
        };
        let with_step = |b: String| match step {
            Some(s) => format!("{b}/{s}"),
            None => b,
        };
        match base.split_once('-') {
            Some((a, b)) => {
                let (a2, b2) = (day(a)?, day(b)?);
                // 1-7 (Monday to Sunday) becomes 2-1: split it where the week wraps.
                match (a2.parse::<u32>(), b2.parse::<u32>()) {
                    (Ok(x), Ok(y)) if y < x && step.is_none() => {
                        items.push(format!("{x}-7"));
                        items.push(format!("1-{y}"));
                    }
                    _ => items.push(with_step(format!("{a2}-{b2}"))),
                }
            }
            None => items.push(with_step(day(base)?)),
        }
    }
    Some(items.join(","))
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
        // Five fields: seconds 0, crontab weekdays.
        let five = parse("0 2 * * *").unwrap();
        assert_eq!(next_runs(&five, t, 2), runs, "0 2 * * * is 0 0 2 * * *");
        assert_eq!(normalize("0 2 * * *").unwrap(), "0 0 2 * * *");
        assert_eq!(normalize("30 6 * * 1-5").unwrap(), "0 30 6 * * 2-6");
        assert_eq!(normalize("0 0 * * 0,7").unwrap(), "0 0 0 * * 1,1");
        assert_eq!(normalize("0 0 * * 1-7").unwrap(), "0 0 0 * * 2-7,1-1");
        assert_eq!(normalize("0 0 * * MON").unwrap(), "0 0 0 * * MON");
        // 2026-11-23 is a Monday: `* * 1` in crontab means Mondays.
        let monday = parse("0 2 * * 1").unwrap();
        let next = next_runs(&monday, t, 1)[0];
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 11, 30, 2, 0, 0).unwrap());
        assert!(parse("0 2 * *").is_err(), "4 fields");
        assert!(parse("0 2 * * 9").is_err(), "weekday 9");
        assert!(parse("0 0 25 * * *").is_err(), "hour 25");
        assert!(parse("*/5 * * * * *").is_ok());
    }
}
