//! Alerts as listed and acknowledged: the live alerts (`alert_rules::collect`) joined
//! with what is remembered of each (`store::notifications`): when it was first seen (its
//! stable `raised_at`) and who acknowledged it. The notification job calls `sweep`, which
//! records new alerts and forgets cleared ones.

use super::access::{Editable, Visible};
use super::Result;
use crate::domain::alerts::Alert;
use crate::domain::DomainError;
use crate::store::events::{self, NewEvent};
use crate::store::{accounts, notifications, StoreError};

pub use super::alert_rules::collect;
use chrono::NaiveDate;
use rusqlite::Connection;
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;

/// What decides which alerts exist now (the clock and the overdue setting).
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub now: i64,
    pub today: NaiveDate,
    pub overdue_days: i64,
}

/// An alert as the API shows it (CONTRACT section 3).
#[derive(Clone, Debug, Serialize)]
pub struct AlertOut {
    pub id: String,
    pub kind: &'static str,
    pub severity: &'static str,
    pub account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtual_account: Option<String>,
    pub subject: String,
    pub message: String,
    pub raised_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<String>,
    #[serde(skip)]
    pub alert: Alert,
    #[serde(skip)]
    pub raised_unix: i64,
}

/// `from=`/`to=`: days (UTC) the alert was raised on, both ends included.
#[derive(Clone, Copy, Debug, Default)]
pub struct DateFilter {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

impl DateFilter {
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<DateFilter> {
        Ok(DateFilter {
            from: parse_day("from", from)?,
            to: parse_day("to", to)?,
        })
    }

    fn keeps(&self, raised_at: i64) -> bool {
        let day = chrono::DateTime::from_timestamp(raised_at, 0).map(|t| t.date_naive());
        self.from.is_none_or(|f| day.is_some_and(|d| d >= f))
            && self.to.is_none_or(|t| day.is_some_and(|d| d <= t))
    }
}

fn parse_day(field: &'static str, raw: Option<&str>) -> Result<Option<NaiveDate>> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| {
                DomainError::invalid(
                    "invalid_date",
                    field,
                    format!("'{s}' is not a date; write it as YYYY-MM-DD."),
                )
                .into()
            }),
    }
}

fn out(alert: Alert, state: Option<&notifications::AlertState>, now: i64) -> AlertOut {
    let raised_unix = state.map_or(now, |s| s.raised_at);
    AlertOut {
        id: alert.id(),
        kind: alert.kind.as_str(),
        severity: alert.severity.as_str(),
        account: alert.account.clone(),
        virtual_account: alert.virtual_account.clone(),
        subject: alert.subject.clone(),
        message: alert.message.clone(),
        raised_at: crate::clock::rfc3339(raised_unix),
        acknowledged_at: state
            .and_then(|s| s.acknowledged_at)
            .map(crate::clock::rfc3339),
        acknowledged_by: state.and_then(|s| s.acknowledged_by.clone()),
        alert,
        raised_unix,
    }
}

fn account_ids(conn: &Connection) -> Result<HashMap<String, i64>> {
    Ok(accounts::all_names(conn)?
        .into_iter()
        .map(|(id, name)| (name, id))
        .collect())
}

/// The caller's alerts, first-seen times recorded for any not seen before (so `raised_at`
/// holds from the first look on).
pub fn list(
    tx: &Connection,
    visible: Visible,
    at: Now,
    filter: DateFilter,
) -> Result<Vec<AlertOut>> {
    let live = collect(tx, visible, at)?;
    let ids = account_ids(tx)?;
    for a in &live {
        if let Some(account_id) = ids.get(&a.account) {
            notifications::insert_state(tx, &a.id(), *account_id, a.kind.as_str(), at.now)?;
        }
    }
    let states = notifications::states(tx)?;
    Ok(live
        .into_iter()
        .map(|a| {
            let id = a.id();
            out(a, states.get(&id), at.now)
        })
        .filter(|a| filter.keeps(a.raised_unix))
        .collect())
}

/// Acknowledges one of the caller's alerts (kept listed, marked, until its cause clears);
/// acknowledging twice keeps the first.
pub fn acknowledge(
    tx: &Connection,
    visible: Visible,
    editor: &Editable,
    at: Now,
    id: &str,
) -> Result<AlertOut> {
    let alert = list(tx, visible, at, DateFilter::default())?
        .into_iter()
        .find(|a| a.id == id)
        .ok_or_else(|| StoreError::NotFound(format!("alert '{id}'")))?;
    if !editor.may_edit(account_ids(tx)?.get(&alert.account).copied().unwrap_or(-1)) {
        return Err(DomainError::Forbidden(format!(
            "Your role may not acknowledge alerts of account '{}'.",
            alert.account
        ))
        .into());
    }
    if alert.acknowledged_at.is_none() {
        notifications::acknowledge(tx, id, at.now, &editor.actor)?;
        let account_id = account_ids(tx)?.get(&alert.account).copied().unwrap_or(-1);
        events::record(
            tx,
            at.now,
            NewEvent {
                actor: &editor.actor,
                action: "alert.acknowledged",
                account: Some((account_id, &alert.account)),
                target: id,
                detail: json!({"kind": alert.kind, "subject": alert.subject}),
            },
        )?;
    }
    let states = notifications::states(tx)?;
    Ok(out(alert.alert, states.get(id), at.now))
}

/// Every alert of the server now; new ones are recorded (and returned, to be notified),
/// cleared ones forgotten.
pub fn sweep(tx: &Connection, at: Now) -> Result<Vec<(AlertOut, i64)>> {
    let live = collect(tx, Visible::EVERYTHING, at)?;
    let ids = account_ids(tx)?;
    let mut fresh = vec![];
    let mut seen = std::collections::HashSet::new();
    for a in &live {
        if let Some(account_id) = ids.get(&a.account) {
            notifications::insert_state(tx, &a.id(), *account_id, a.kind.as_str(), at.now)?;
        }
    }
    let states = notifications::states(tx)?;
    for a in live {
        let id = a.id();
        seen.insert(id.clone());
        let Some(account_id) = ids.get(&a.account).copied() else {
            continue;
        };
        // A listing may have recorded it first; what counts is whether it was notified.
        if notifications::mark_notified(tx, &id)? {
            fresh.push((out(a, states.get(&id), at.now), account_id));
        }
    }
    for id in states.into_keys() {
        if !seen.contains(&id) {
            notifications::delete_state(tx, &id)?;
        }
    }
    Ok(fresh)
}
