//! Alerts: conditions an admin should act on. Computed from the current state on demand,
//! so an alert disappears by itself when its cause is gone. Each has a stable id (its kind
//! and what it is about), so first-seen times, acknowledgements and notifications can be
//! kept against it while the cause lasts.

use super::string_enum::string_enum;
use super::timers::DAY;
use serde::Serialize;
use sha2::{Digest, Sha256};

string_enum! {
    /// The contract's two severities (CONTRACT section 3); each kind has exactly one.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Severity {
        Major => "major",
        Minor => "minor",
    }
}

string_enum! {
    /// Every alert kind of the contract, with its one string and its severity.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum AlertKind {
        SyncOverdue => "sync_overdue",
        RegistrationExpiring => "registration_expiring",
        LicenseShort => "license_short",
        LicenseExpiring => "license_expiring",
        TokenExpiring => "token_expiring",
        AuthorizationLapsed => "authorization_lapsed",
        ReservationPending => "reservation_pending",
        ExportKeyPending => "export_key_pending",
    }
    unknown(s) -> String {
        format!("'{s}' is not an alert kind")
    }
}

impl AlertKind {
    /// The contract's table: what stops licensing now is major, what is coming is minor.
    pub fn severity(self) -> Severity {
        match self {
            AlertKind::SyncOverdue | AlertKind::LicenseShort | AlertKind::AuthorizationLapsed => {
                Severity::Major
            }
            _ => Severity::Minor,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub severity: Severity,
    pub kind: AlertKind,
    pub account: String,
    /// The VA it is about, when it is about one (pages link to it).
    pub virtual_account: Option<String>,
    /// The instance it is about, when it is about one (pages link to it).
    pub instance: Option<String>,
    pub subject: String,
    pub message: String,
}

impl Alert {
    fn new(kind: AlertKind, account: &str, subject: String, message: String) -> Alert {
        Alert {
            severity: kind.severity(),
            kind,
            account: account.to_string(),
            virtual_account: None,
            instance: None,
            subject,
            message,
        }
    }

    fn in_va(mut self, va: &str) -> Alert {
        self.virtual_account = Some(va.to_string());
        self
    }

    /// Stable while the cause lasts: the same kind about the same thing has the same id.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        for part in [self.kind.as_str(), &self.account, &self.subject] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        hex::encode(&h.finalize()[..8])
    }
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
    (days >= overdue_days).then(|| {
        Alert::new(
            AlertKind::SyncOverdue,
            account,
            account.to_string(),
            format!("Not synced with the upstream for {days} days (limit {overdue_days})."),
        )
    })
}

pub fn registration_expiring(account: &str, expires_at: i64, now: i64) -> Option<Alert> {
    (expires_at - now <= REGISTRATION_EXPIRY_WINDOW).then(|| {
        Alert::new(
            AlertKind::RegistrationExpiring,
            account,
            account.to_string(),
            format!(
                "The upstream registration expires in {} day(s); sync to renew it.",
                ((expires_at - now).max(0) + DAY - 1) / DAY
            ),
        )
    })
}

pub fn license_short(account: &str, va: &str, license: &str, in_use: i64, quantity: i64) -> Alert {
    Alert::new(
        AlertKind::LicenseShort,
        account,
        format!("{va} / {license}"),
        format!("{in_use} in use of {quantity}."),
    )
    .in_va(va)
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
    (left > 0 && left <= LICENSE_EXPIRY_WINDOW).then(|| {
        Alert::new(
            AlertKind::LicenseExpiring,
            account,
            format!("{va} / {license}"),
            format!("Expires in {} day(s).", (left + DAY - 1) / DAY),
        )
        .in_va(va)
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
    (left > 0 && left <= TOKEN_EXPIRY_WINDOW).then(|| {
        Alert::new(
            AlertKind::TokenExpiring,
            account,
            format!("{va} / {token_id}"),
            format!(
                "Registration token expires in {} day(s).",
                (left + DAY - 1) / DAY
            ),
        )
        .in_va(va)
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
    let mut alert = Alert::new(
        AlertKind::ExportKeyPending,
        account,
        format!("{va} / {instance_id} / {tag}"),
        format!(
            "An export key request has waited {} day(s) for approval.",
            (now - requested_at).max(0) / DAY
        ),
    )
    .in_va(va);
    alert.instance = Some(instance_id.to_string());
    alert
}

/// An instance whose authorization lapsed (no accepted usage report for 90 days): it holds
/// no licenses until it reports again.
pub fn authorization_lapsed(account: &str, va: &str, instance_id: &str, udi: &str) -> Alert {
    let mut alert = Alert::new(
        AlertKind::AuthorizationLapsed,
        account,
        format!("{va} / {instance_id}"),
        format!(
            "Product {udi} has not reported for 90 days; its authorization expired and its licenses were released."
        ),
    )
    .in_va(va);
    alert.instance = Some(instance_id.to_string());
    alert
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
    (waited >= RESERVATION_PENDING_AFTER).then(|| {
        Alert::new(
            AlertKind::ReservationPending,
            account,
            format!("{va} / {reservation_id}"),
            format!(
                "Reservation for {udi} has waited {} days for its confirmation code.",
                waited / DAY
            ),
        )
        .in_va(va)
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
            AlertKind::SyncOverdue
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
            Severity::Minor
        );
        assert!(registration_expiring("a", 100 * DAY, 0).is_none());
        assert!(reservation_pending("a", "v", "r", "P:x,S:y", 0, 7 * DAY - 1).is_none());
        assert!(reservation_pending("a", "v", "r", "P:x,S:y", 0, 7 * DAY).is_some());
    }

    #[test]
    fn ids_are_stable_and_kinds_round_trip() {
        let a = license_short("acme", "va", "L", 3, 2);
        let b = license_short("acme", "va", "L", 4, 2);
        assert_eq!(a.id(), b.id(), "the message may change, the id does not");
        assert_ne!(a.id(), license_short("acme", "va", "M", 3, 2).id());
        assert_eq!(a.severity, Severity::Major);
        for k in AlertKind::ALL {
            assert_eq!(k.as_str().parse::<AlertKind>(), Ok(k));
        }
    }
}
