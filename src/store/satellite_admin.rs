//! Upstream side: the satellite tokens an account issued and the satellites registered
//! with it, as the admin sees and revokes them; and the satellite side's link removal.
//! A deregistered satellite is remembered so its later bundles are refused by name.

use super::page::{self, Page};
use super::sync_state::{self, Satellite};
use super::{Result, StoreError};
use rusqlite::{params, Connection, OptionalExtension, Row};
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
pub struct TokenRow {
    pub id: String,
    pub account_id: i64,
    pub account: String,
    pub description: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

const TOKEN_COLUMNS: &str = "t.id, t.account_id, a.name, t.description, t.created_at, t.expires_at,
    t.used_at, t.revoked_at";

fn token_row(r: &Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok(TokenRow {
        id: r.get(0)?,
        account_id: r.get(1)?,
        account: r.get(2)?,
        description: r.get(3)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        used_at: r.get(6)?,
        revoked_at: r.get(7)?,
    })
}

/// Satellite tokens, newest first; keyset-paged on (created_at, id).
pub fn tokens(
    conn: &Connection,
    account_filter: Option<i64>,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<TokenRow>> {
    let (after_at, after_id) = match after.and_then(|c| c.split_once(':')) {
        Some((at, id)) => (at.parse::<i64>().ok(), Some(id.to_string())),
        None => (None, None),
    };
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM satellite_tokens t JOIN accounts a ON a.id = t.account_id
         WHERE (?1 IS NULL OR t.account_id = ?1)
           AND (?2 IS NULL OR t.created_at < ?2 OR (t.created_at = ?2 AND t.id < ?3))
         ORDER BY t.created_at DESC, t.id DESC LIMIT ?4"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(
            params![account_filter, after_at, after_id, limit + 1],
            token_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(page::from_rows(rows, limit, |t| {
        format!("{}:{}", t.created_at, t.id)
    }))
}

pub fn token(conn: &Connection, account_id: i64, id: &str) -> Result<TokenRow> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM satellite_tokens t JOIN accounts a ON a.id = t.account_id
         WHERE t.account_id = ?1 AND t.id = ?2"
    );
    conn.prepare_cached(&sql)?
        .query_row(params![account_id, id], token_row)
        .optional()?
        .ok_or_else(|| StoreError::not_found(format!("satellite token '{id}'")))
}

pub fn revoke_token(tx: &Connection, id: &str, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE satellite_tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, now],
    )?;
    Ok(())
}

/// A registered satellite of the account by its row id.
pub fn satellite(conn: &Connection, account_id: i64, id: i64) -> Result<Satellite> {
    let found = sync_state::satellites(conn, Some(account_id))?
        .into_iter()
        .find(|s| s.id == id);
    found.ok_or_else(|| StoreError::not_found(format!("satellite {id}")))
}

/// Forgets a satellite: its reported instances, usage, export keys and reservation holds
/// go (the pools' counters with them), and its later bundles are refused by name until it
/// registers again with a new token.
pub fn revoke_satellite(tx: &Connection, sat: &Satellite, now: i64) -> Result<()> {
    super::reservations::replace_satellite_held(tx, sat.id, &BTreeMap::new())?;
    tx.execute(
        "DELETE FROM satellite_instances WHERE satellite_id = ?1",
        [sat.id],
    )?;
    tx.execute("DELETE FROM satellites WHERE id = ?1", [sat.id])?;
    super::synced::rebuild_demand(tx, sat.account_id)?;
    tx.execute(
        "INSERT INTO revoked_satellites (authority_id, local_account, account_id, revoked_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (authority_id, local_account) DO UPDATE SET account_id = ?3, revoked_at = ?4",
        params![sat.authority_id, sat.local_account, sat.account_id, now],
    )?;
    Ok(())
}

/// When this satellite account was deregistered here, if it was (and has not registered
/// again since).
pub fn revoked_at(
    conn: &Connection,
    authority_id: &str,
    local_account: &str,
) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "SELECT revoked_at FROM revoked_satellites WHERE authority_id = ?1 AND local_account = ?2",
        )?
        .query_row([authority_id, local_account], |r| r.get(0))
        .optional()?)
}

/// A new registration lifts an earlier deregistration.
pub fn clear_revoked(tx: &Connection, authority_id: &str, local_account: &str) -> Result<()> {
    tx.prepare_cached(
        "DELETE FROM revoked_satellites WHERE authority_id = ?1 AND local_account = ?2",
    )?
    .execute([authority_id, local_account])?;
    Ok(())
}

/// Why a sync request from a satellite not registered here is refused, in words.
pub fn unregistered_reason(
    conn: &Connection,
    authority_id: &str,
    local_account: &str,
) -> Result<String> {
    Ok(match revoked_at(conn, authority_id, local_account)? {
        Some(at) => format!(
            "this satellite (authority {authority_id}, account '{local_account}') was deregistered by the upstream's admin on {}; register it again with a new satellite token",
            crate::clock::human(at)
        ),
        None => format!(
            "foreign satellite: authority {authority_id} account '{local_account}' is not registered here"
        ),
    })
}

// ---- satellite side ----

/// Switches a registered link between connected and disconnected mode.
pub fn set_mode(
    tx: &Connection,
    account_id: i64,
    mode: &str,
    url: Option<&str>,
    ca_cert_pem: Option<&str>,
) -> Result<()> {
    tx.execute(
        "UPDATE upstream_links SET mode = ?2, url = coalesce(?3, url), ca_cert_pem = coalesce(?4, ca_cert_pem)
         WHERE account_id = ?1",
        params![account_id, mode, url, ca_cert_pem],
    )?;
    Ok(())
}

/// Removes the account's link to its upstream; what came by sync stays as it is.
pub fn remove_link(tx: &Connection, account_id: i64) -> Result<()> {
    tx.execute(
        "DELETE FROM upstream_links WHERE account_id = ?1",
        [account_id],
    )?;
    Ok(())
}

/// Marks this account's outgoing bundles written since history row `since` as failed: a
/// connected attempt that did not reach the upstream sent nothing.
pub fn mark_failed_since(tx: &Connection, account_id: i64, since: i64, why: &str) -> Result<()> {
    tx.execute(
        "UPDATE sync_history SET result = 'failed', detail = ?3
         WHERE account_id = ?1 AND id > ?2 AND direction = 'out' AND result = 'written'",
        params![account_id, since, why],
    )?;
    Ok(())
}

/// The newest history row's id (0 when none): the mark before a connected attempt.
pub fn last_history_id(conn: &Connection) -> Result<i64> {
    Ok(
        conn.query_row("SELECT coalesce(max(id), 0) FROM sync_history", [], |r| {
            r.get(0)
        })?,
    )
}
