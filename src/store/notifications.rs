//! Alert state (first seen, acknowledgement), per-account notification settings and the
//! delivery queue. Plain SQL; what to send and when is decided in `service::notify`.

use super::Result;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertState {
    pub raised_at: i64,
    pub acknowledged_at: Option<i64>,
    pub acknowledged_by: Option<String>,
}

/// Every recorded alert state, by alert id.
pub fn states(conn: &Connection) -> Result<HashMap<String, AlertState>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, raised_at, acknowledged_at, acknowledged_by FROM alert_state",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            AlertState {
                raised_at: r.get(1)?,
                acknowledged_at: r.get(2)?,
                acknowledged_by: r.get(3)?,
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Records an alert as first seen at `now`; true when it was new.
pub fn insert_state(
    tx: &Connection,
    id: &str,
    account_id: i64,
    kind: &str,
    now: i64,
) -> Result<bool> {
    let n = tx
        .prepare_cached(
            "INSERT OR IGNORE INTO alert_state (id, account_id, kind, raised_at)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![id, account_id, kind, now])?;
    Ok(n > 0)
}

/// Marks an alert as handed to notifications; true the first time only.
pub fn mark_notified(tx: &Connection, id: &str) -> Result<bool> {
    let n = tx
        .prepare_cached("UPDATE alert_state SET notified = 1 WHERE id = ?1 AND notified = 0")?
        .execute(params![id])?;
    Ok(n > 0)
}

/// Forgets a cleared alert, and what of it was still to be sent.
pub fn delete_state(tx: &Connection, id: &str) -> Result<()> {
    tx.prepare_cached("DELETE FROM alert_state WHERE id = ?1")?
        .execute(params![id])?;
    tx.prepare_cached(
        "DELETE FROM notification_deliveries WHERE alert_id = ?1 AND state = 'pending'",
    )?
    .execute(params![id])?;
    Ok(())
}

pub fn acknowledge(tx: &Connection, id: &str, now: i64, by: &str) -> Result<()> {
    tx.prepare_cached(
        "UPDATE alert_state SET acknowledged_at = ?2, acknowledged_by = ?3
         WHERE id = ?1 AND acknowledged_at IS NULL",
    )?
    .execute(params![id, now, by])?;
    Ok(())
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub emails: Vec<String>,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
    pub kinds: Vec<String>,
}

pub fn settings(conn: &Connection, account_id: i64) -> Result<Settings> {
    let row = conn
        .prepare_cached(
            "SELECT emails, webhook_url, webhook_secret, kinds FROM notification_settings
             WHERE account_id = ?1",
        )?
        .query_row(params![account_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .optional()?;
    Ok(match row {
        None => Settings::default(),
        Some((emails, webhook_url, webhook_secret, kinds)) => Settings {
            emails: serde_json::from_str(&emails).unwrap_or_default(),
            webhook_url,
            webhook_secret,
            kinds: serde_json::from_str(&kinds).unwrap_or_default(),
        },
    })
}

pub fn set_settings(tx: &Connection, account_id: i64, s: &Settings) -> Result<()> {
    let emails = serde_json::Value::from(s.emails.clone()).to_string();
    let kinds = serde_json::Value::from(s.kinds.clone()).to_string();
    tx.prepare_cached(
        "INSERT INTO notification_settings (account_id, emails, webhook_url, webhook_secret, kinds)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (account_id) DO UPDATE SET emails = ?2, webhook_url = ?3,
             webhook_secret = ?4, kinds = ?5",
    )?
    .execute(params![
        account_id,
        emails,
        s.webhook_url,
        s.webhook_secret,
        kinds
    ])?;
    Ok(())
}

/// Queues one notification (`target` is `email` or `webhook`) for an alert.
pub fn enqueue(
    tx: &Connection,
    alert_id: &str,
    account_id: i64,
    target: &str,
    payload: &str,
    now: i64,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO notification_deliveries (alert_id, account_id, target, payload, next_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![alert_id, account_id, target, payload, now])?;
    Ok(())
}

#[derive(Clone, Debug)]
pub struct Delivery {
    pub id: i64,
    pub alert_id: String,
    pub account_id: i64,
    pub target: String,
    pub payload: String,
    pub attempts: i64,
}

/// Pending deliveries whose time has come, oldest first.
pub fn due(conn: &Connection, now: i64, limit: u32) -> Result<Vec<Delivery>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, alert_id, account_id, target, payload, attempts FROM notification_deliveries
         WHERE state = 'pending' AND next_at <= ?1 ORDER BY next_at, id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now, limit], |r| {
        Ok(Delivery {
            id: r.get(0)?,
            alert_id: r.get(1)?,
            account_id: r.get(2)?,
            target: r.get(3)?,
            payload: r.get(4)?,
            attempts: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn mark_sent(tx: &Connection, id: i64, now: i64) -> Result<()> {
    tx.prepare_cached(
        "UPDATE notification_deliveries SET state = 'sent', sent_at = ?2, attempts = attempts + 1,
             last_error = NULL WHERE id = ?1",
    )?
    .execute(params![id, now])?;
    Ok(())
}

/// A failed attempt: tried again at `next_at`, or given up (`state = 'failed'`) when
/// `next_at` is none.
pub fn mark_failed(tx: &Connection, id: i64, error: &str, next_at: Option<i64>) -> Result<()> {
    tx.prepare_cached(
        "UPDATE notification_deliveries SET attempts = attempts + 1, last_error = ?2,
             state = CASE WHEN ?3 IS NULL THEN 'failed' ELSE 'pending' END,
             next_at = coalesce(?3, next_at)
         WHERE id = ?1",
    )?
    .execute(params![id, error, next_at])?;
    Ok(())
}
