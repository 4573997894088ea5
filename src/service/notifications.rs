//! Per-account notification settings (CONTRACT section 7): where an account's alerts go
//! (email addresses, a signed webhook) and which kinds. The webhook secret is write-only.
//! Also the queueing half of delivery: new alerts become pending deliveries here, in the
//! same transaction that records them; `crate::notify` sends them.

use super::access::{EditAccount, ReadAccount};
use super::alerts::{self, AlertOut, Now};
use super::Result;
use crate::domain::alerts::AlertKind;
use crate::domain::DomainError;
use crate::store::events::{self, NewEvent};
use crate::store::notifications::{self, Settings};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use serde_json::json;

const MAX_EMAILS: usize = 20;
const MAX_SECRET: usize = 256;

/// The PUT body, as sent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationSettingsInput {
    #[serde(default)]
    pub emails: Vec<String>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    #[serde(default)]
    pub kinds: Vec<String>,
}

/// Parsed and checked settings; `webhook_secret` none keeps the stored one.
#[derive(Debug, Clone)]
pub struct NotificationSettingsChange {
    emails: Vec<String>,
    webhook_url: Option<String>,
    webhook_secret: Option<String>,
    kinds: Vec<AlertKind>,
}

impl TryFrom<NotificationSettingsInput> for NotificationSettingsChange {
    type Error = super::ServiceError;

    fn try_from(i: NotificationSettingsInput) -> Result<Self> {
        if i.emails.len() > MAX_EMAILS {
            return Err(DomainError::invalid(
                "invalid_email",
                "emails",
                format!("At most {MAX_EMAILS} addresses."),
            )
            .into());
        }
        let mut emails = vec![];
        for e in i.emails {
            let e = e.trim().to_string();
            if e.parse::<lettre::Address>().is_err() {
                return Err(DomainError::invalid(
                    "invalid_email",
                    "emails",
                    format!("'{e}' is not an email address."),
                )
                .into());
            }
            if !emails.contains(&e) {
                emails.push(e);
            }
        }
        let webhook_url = match i.webhook_url.map(|u| u.trim().to_string()) {
            Some(u) if !u.is_empty() => {
                let ok = reqwest::Url::parse(&u)
                    .is_ok_and(|p| matches!(p.scheme(), "http" | "https") && p.has_host());
                if !ok {
                    return Err(DomainError::invalid(
                        "invalid_url",
                        "webhook_url",
                        format!("'{u}' is not an http(s) URL."),
                    )
                    .into());
                }
                Some(u)
            }
            _ => None,
        };
        let webhook_secret = match i.webhook_secret {
            Some(s) if s.is_empty() => None,
            Some(s) if s.len() > MAX_SECRET || s.chars().any(char::is_control) => {
                return Err(DomainError::invalid(
                    "invalid_secret",
                    "webhook_secret",
                    format!("A webhook secret is 1-{MAX_SECRET} printable characters."),
                )
                .into())
            }
            other => other,
        };
        let mut kinds = vec![];
        for k in i.kinds {
            let kind = k
                .parse::<AlertKind>()
                .map_err(|m| DomainError::invalid("invalid_kind", "kinds", m))?;
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        Ok(NotificationSettingsChange {
            emails,
            webhook_url,
            webhook_secret,
            kinds,
        })
    }
}

/// The settings as shown: never the secret, only whether one is set.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NotificationSettingsOut {
    pub emails: Vec<String>,
    pub webhook_url: Option<String>,
    pub webhook_secret_set: bool,
    pub kinds: Vec<String>,
}

fn shown(s: &Settings) -> NotificationSettingsOut {
    NotificationSettingsOut {
        emails: s.emails.clone(),
        webhook_url: s.webhook_url.clone(),
        webhook_secret_set: s.webhook_secret.is_some(),
        kinds: s.kinds.clone(),
    }
}

pub fn get(conn: &Connection, cap: &ReadAccount) -> Result<NotificationSettingsOut> {
    Ok(shown(&notifications::settings(conn, cap.account.id)?))
}

/// Replaces the settings. A left-out secret keeps the stored one, so a form can be saved
/// without retyping it; a webhook without any secret is refused (receivers could not
/// verify it). No webhook URL forgets the secret too.
pub fn put(
    tx: &Connection,
    cap: &EditAccount,
    now: i64,
    change: NotificationSettingsChange,
) -> Result<NotificationSettingsOut> {
    let old = notifications::settings(tx, cap.account.id)?;
    let webhook_secret = match &change.webhook_url {
        None => None,
        Some(_) => change.webhook_secret.or(old.webhook_secret.clone()),
    };
    if change.webhook_url.is_some() && webhook_secret.is_none() {
        return Err(DomainError::invalid(
            "invalid_secret",
            "webhook_secret",
            "A webhook needs a secret to sign its requests with.",
        )
        .into());
    }
    let new = Settings {
        emails: change.emails,
        webhook_url: change.webhook_url,
        webhook_secret,
        kinds: change
            .kinds
            .iter()
            .map(|k| k.as_str().to_string())
            .collect(),
    };
    notifications::set_settings(tx, cap.account.id, &new)?;
    let out = shown(&new);
    events::record(
        tx,
        now,
        NewEvent {
            actor: &cap.actor,
            action: "notifications.changed",
            account: Some((cap.account.id, &cap.account.name)),
            target: &cap.account.name,
            detail: json!(out),
        },
    )?;
    Ok(out)
}

/// What a notification carries (the webhook body; the email is written from it).
pub fn payload(a: &AlertOut) -> serde_json::Value {
    json!({
        "id": a.id,
        "kind": a.kind,
        "severity": a.severity,
        "account": a.account,
        "message": format!("{}: {}", a.subject, a.message),
        "raised_at": a.raised_at,
    })
}

/// Records alerts that appeared since the last sweep and queues one delivery per target
/// of each account that wants that kind; answers how many were queued.
pub fn queue_new_alerts(tx: &Connection, at: Now) -> Result<usize> {
    let mut queued = 0;
    for (alert, account_id) in alerts::sweep(tx, at)? {
        let s = notifications::settings(tx, account_id)?;
        if !s.kinds.is_empty() && !s.kinds.iter().any(|k| k == alert.kind) {
            continue;
        }
        let body = payload(&alert).to_string();
        if !s.emails.is_empty() {
            notifications::enqueue(tx, &alert.id, account_id, "email", &body, at.now)?;
            queued += 1;
        }
        if s.webhook_url.is_some() {
            notifications::enqueue(tx, &alert.id, account_id, "webhook", &body, at.now)?;
            queued += 1;
        }
    }
    Ok(queued)
}
