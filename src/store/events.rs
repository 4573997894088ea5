//! The event log: every admin change, written in the transaction that makes the change.

use super::page::{self, Page};
use super::Result;
use rusqlite::{params, Connection, OptionalExtension};

/// What an event is about: the account it belongs to (if any) and the thing changed.
pub struct NewEvent<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub account: Option<(i64, &'a str)>,
    pub target: &'a str,
    pub detail: serde_json::Value,
}

pub fn record(conn: &Connection, now: i64, event: NewEvent<'_>) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO events (at, actor, action, account_id, account, target, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        now,
        event.actor,
        event.action,
        event.account.map(|a| a.0),
        event.account.map(|a| a.1),
        event.target,
        event.detail.to_string()
    ])?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct EventRow {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub account: Option<String>,
    pub target: String,
    pub detail: String,
}

#[derive(Debug, Default, Clone)]
pub struct EventFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub account: Option<String>,
    /// Unix seconds: events at or after.
    pub from: Option<i64>,
    /// Unix seconds: events before.
    pub until: Option<i64>,
}

/// Newest first; `scope` (an account id) keeps that account's events only.
pub fn list(
    conn: &Connection,
    scope: Option<i64>,
    filter: &EventFilter,
    after: Option<i64>,
    limit: u32,
) -> Result<Page<EventRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, actor, action, account, target, detail FROM events
         WHERE (?1 IS NULL OR id < ?1)
           AND (?2 IS NULL OR account_id = ?2)
           AND (?3 IS NULL OR actor = ?3)
           AND (?4 IS NULL OR action = ?4)
           AND (?5 IS NULL OR account = ?5)
           AND (?7 IS NULL OR at >= ?7)
           AND (?8 IS NULL OR at < ?8)
         ORDER BY id DESC LIMIT ?6",
    )?;
    let rows = stmt
        .query_map(
            params![
                after,
                scope,
                filter.actor,
                filter.action,
                filter.account,
                limit + 1,
                filter.from,
                filter.until
            ],
            |r| {
                Ok(EventRow {
                    id: r.get(0)?,
                    at: r.get(1)?,
                    actor: r.get(2)?,
                    action: r.get(3)?,
                    account: r.get(4)?,
                    target: r.get(5)?,
                    detail: r.get(6)?,
                })
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(page::from_rows(rows, limit, |e| e.id.to_string()))
}

/// The distinct actions logged so far, for the filter menu.
pub fn actions(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT DISTINCT action FROM events ORDER BY action")?;
    let rows = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(rows)
}

pub fn latest_id(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn
        .query_row("SELECT max(id) FROM events", [], |r| r.get(0))
        .optional()?
        .flatten())
}

/// Every event the filter selects, newest first, handed to `each` one at a time until it
/// answers false; for exports, which must not hold the whole log in memory.
pub fn for_each(
    conn: &Connection,
    scope: Option<i64>,
    filter: &EventFilter,
    mut each: impl FnMut(EventRow) -> bool,
) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, actor, action, account, target, detail FROM events
         WHERE (?1 IS NULL OR account_id = ?1)
           AND (?2 IS NULL OR actor = ?2)
           AND (?3 IS NULL OR action = ?3)
           AND (?4 IS NULL OR account = ?4)
           AND (?5 IS NULL OR at >= ?5)
           AND (?6 IS NULL OR at < ?6)
         ORDER BY id DESC",
    )?;
    let mut rows = stmt.query(params![
        scope,
        filter.actor,
        filter.action,
        filter.account,
        filter.from,
        filter.until
    ])?;
    while let Some(r) = rows.next()? {
        let row = EventRow {
            id: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            account: r.get(4)?,
            target: r.get(5)?,
            detail: r.get(6)?,
        };
        if !each(row) {
            break;
        }
    }
    Ok(())
}
