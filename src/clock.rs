//! The one place that reads the wall clock. Everything else is handed `now`.

use chrono::{DateTime, TimeZone, Utc};

/// Wall clock, optionally shifted by a fixed offset so that timers can be exercised
/// end to end without waiting (the offset comes from settings and defaults to zero).
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    offset_seconds: i64,
}

impl Clock {
    pub fn with_offset(offset_seconds: i64) -> Self {
        Self { offset_seconds }
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::seconds(self.offset_seconds)
    }

    pub fn unix(&self) -> i64 {
        self.now().timestamp()
    }

    /// Unix milliseconds from one reading of the clock (seconds and their fraction read
    /// apart can step back a whole second when the second ticks in between).
    pub fn unix_millis(&self) -> i64 {
        self.now().timestamp_millis()
    }
}

/// Formats unix seconds as RFC 3339 in UTC (`2026-11-23T00:00:00Z`).
/// RFC 3339 with milliseconds, as agents send `measured_at`.
pub fn rfc3339_millis(unix_ms: i64) -> String {
    Utc.timestamp_millis_opt(unix_ms)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

pub fn rfc3339(unix: i64) -> String {
    Utc.timestamp_opt(unix, 0)
        .single()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Formats unix seconds as a `YYYY-MM-DD` date in UTC.
pub fn date(unix: i64) -> String {
    Utc.timestamp_opt(unix, 0)
        .single()
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// Formats unix seconds for people: `2026-11-23 14:05 UTC`.
pub fn human(unix: i64) -> String {
    Utc.timestamp_opt(unix, 0)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}
