//! Alerts: conditions an admin should act on. Computed from the current state on demand,
//! so an alert disappears by itself when its cause is gone.

use super::timers::DAY;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub severity: Severity,
    /// `sync_overdue`, `registration_expiring`, `licenses_short`, `license_expiring`,
    /// `token_expiring`.
    pub kind: &'static str,
    pub account: String,
    pub subject: String,
    pub message: String,
}

pub const LICENSE_EXPIRY_WINDOW: i64 = 30 * DAY;
pub const TOKEN_EXPIRY_WINDOW: i64 = 7 * DAY;
pub const REGISTRATION_EXPIRY_WINDOW: i64 = 30 * DAY;

/// An account registered with the upstream that has not synced for `overdue_days`.
pub fn sync_overdue(
    account: &str,
    last_sync: Option<i64>,
    registered_at: i64,
    now: i64,
    overdue_days: i64,
) -> Option<Alert> {
    let since = last_sync.unwrap_or(registered_at);
    let days = (now - since) / DAY;
    (days >= overdue_days).then(|| Alert {
        severity: Severity::Critical,
        kind: "sync_overdue",
        account: account.to_string(),
        subject: account.to_string(),
        message: format!("Not synced with the upstream for {days} days (limit {overdue_days})."),
    })
}

pub fn registration_expiring(account: &str, expires_at: i64, now: i64) -> Option<Alert> {
    (expires_at - now <= REGISTRATION_EXPIRY_WINDOW).then(|| Alert {
        severity: if expires_at <= now {
            Severity::Critical
        } else {
            Severity::Warning
        },
        kind: "registration_expiring",
        account: account.to_string(),
        subject: account.to_string(),
        message: format!(
            "The upstream registration expires in {} day(s); sync to renew it.",
            ((expires_at - now).max(0) + DAY - 1) / DAY
        ),
    })
}

pub fn licenses_short(account: &str, va: &str, license: &str, in_use: i64, quantity: i64) -> Alert {
    Alert {
        severity: Severity::Critical,
        kind: "licenses_short",
        account: account.to_string(),
        subject: format!("{va} / {license}"),
        message: format!("{in_use} in use of {quantity}."),
    }
}

/// A term or subscription license ending within 30 days (`end` is the last valid day's
/// start, unix seconds).
pub fn license_expiring(
    account: &str,
    va: &str,
    license: &str,
    end_day: i64,
    now: i64,
) -> Option<Alert> {
    let left = end_day + DAY - now;
    (left > 0 && left <= LICENSE_EXPIRY_WINDOW).then(|| Alert {
        severity: Severity::Warning,
        kind: "license_expiring",
        account: account.to_string(),
        subject: format!("{va} / {license}"),
        message: format!("Expires in {} day(s).", (left + DAY - 1) / DAY),
    })
}

/// An active registration token that will expire within 7 days.
pub fn token_expiring(
    account: &str,
    va: &str,
    token_id: &str,
    expires_at: i64,
    now: i64,
) -> Option<Alert> {
    let left = expires_at - now;
    (left > 0 && left <= TOKEN_EXPIRY_WINDOW).then(|| Alert {
        severity: Severity::Info,
        kind: "token_expiring",
        account: account.to_string(),
        subject: format!("{va} / {token_id}"),
        message: format!(
            "Registration token expires in {} day(s).",
            (left + DAY - 1) / DAY
        ),
    })
}

/// An export key request waiting for an admin's approval.
pub fn export_key_pending(
    account: &str,
    va: &str,
    instance_id: &str,
    tag: &str,
    requested_at: i64,
    now: i64,
) -> Alert {
    Alert {
        severity: Severity::Warning,
        kind: "export_key_pending",
        account: account.to_string(),
        subject: format!("{va} / {instance_id} / {tag}"),
        message: format!(
            "An export key request has waited {} day(s) for approval.",
            (now - requested_at).max(0) / DAY
        ),
    }
}

/// An instance whose authorization lapsed (no accepted usage report for 90 days): it holds
/// no licenses until it reports again.
pub fn authorization_lapsed(account: &str, va: &str, instance_id: &str, udi: &str) -> Alert {
    Alert {
        severity: Severity::Critical,
        kind: "authorization_lapsed",
        account: account.to_string(),
        subject: format!("{va} / {instance_id}"),
        message: format!(
            "Product {udi} has not reported for 90 days; its authorization expired and its licenses were released."
        ),
    }
}

pub const RESERVATION_PENDING_AFTER: i64 = 7 * DAY;

/// A reservation `pending` or `updating` for 7 days: its confirmation code never came.
pub fn reservation_pending(
    account: &str,
    va: &str,
    reservation_id: &str,
    udi: &str,
    waiting_since: i64,
    now: i64,
) -> Option<Alert> {
    let waited = now - waiting_since;
    (waited >= RESERVATION_PENDING_AFTER).then(|| Alert {
        severity: Severity::Warning,
        kind: "reservation_pending",
        account: account.to_string(),
        subject: format!("{va} / {reservation_id}"),
        message: format!(
            "Reservation for {udi} has waited {} days for its confirmation code.",
            waited / DAY
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_fire_inside_their_windows_only() {
        assert!(sync_overdue("a", Some(0), 0, 29 * DAY, 30).is_none());
        assert_eq!(
            sync_overdue("a", Some(0), 0, 30 * DAY, 30).unwrap().kind,
            "sync_overdue"
        );
        assert!(
            sync_overdue("a", None, 10 * DAY, 30 * DAY, 30).is_none(),
            "counts from registration"
        );
        assert!(license_expiring("a", "v", "l", 40 * DAY, 0).is_none());
        assert!(license_expiring("a", "v", "l", 20 * DAY, 0).is_some());
        assert!(
            license_expiring("a", "v", "l", 0, 2 * DAY).is_none(),
            "already expired"
        );
        assert!(token_expiring("a", "v", "t", 3 * DAY, 0).is_some());
        assert!(token_expiring("a", "v", "t", 30 * DAY, 0).is_none());
        assert_eq!(
            registration_expiring("a", DAY, 2 * DAY).unwrap().severity,
            Severity::Critical
        );
        assert!(registration_expiring("a", 100 * DAY, 0).is_none());
        assert!(reservation_pending("a", "v", "r", "P:x,S:y", 0, 7 * DAY - 1).is_none());
        assert!(reservation_pending("a", "v", "r", "P:x,S:y", 0, 7 * DAY).is_some());
    }
}
