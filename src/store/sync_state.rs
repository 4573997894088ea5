//! Sync bookkeeping on the satellite side: each account's link to its upstream, and the
//! history of every bundle in or out. The upstream's side (registered satellites, their
//! tokens) is `satellite_registry.rs`, re-exported here.

use super::page::{self, Page};
use super::{Result, StoreError};
use crate::domain::sync::{BundleKind, BundleResult, Direction, LinkMode, LinkState};
use rusqlite::{params, Connection, OptionalExtension, Row};

pub use super::satellite_registry::{
    create_satellite_token, redeem_satellite_token, register_satellite, repin_satellite, satellite,
    satellites, set_response_sequence, Satellite, TokenRefusal,
};

#[derive(Clone, Debug)]
pub struct Link {
    pub account_id: i64,
    pub account: String,
    pub mode: LinkMode,
    pub state: LinkState,
    pub url: Option<String>,
    pub ca_cert_pem: Option<String>,
    pub pending_request_id: Option<String>,
    pub upstream_authority_id: Option<String>,
    pub upstream_public_key: Option<Vec<u8>>,
    pub upstream_account: Option<String>,
    pub registration_expires_at: Option<i64>,
    pub last_sequence: i64,
    pub last_acked_sequence: i64,
    pub last_response_sequence: i64,
    pub last_sync: Option<i64>,
    pub cron: String,
    pub created_at: i64,
}

const LINK_COLUMNS: &str = "l.account_id, a.name, l.mode, l.state, l.url, l.ca_cert_pem, l.pending_request_id,
    l.upstream_authority_id, l.upstream_public_key, l.upstream_account, l.registration_expires_at,
    l.last_sequence, l.last_acked_sequence, l.last_response_sequence, l.last_sync, l.cron, l.created_at";

fn link_row(r: &Row<'_>) -> rusqlite::Result<Link> {
    Ok(Link {
        account_id: r.get(0)?,
        account: r.get(1)?,
        mode: super::columns::enum_column(r, 2)?,
        state: super::columns::enum_column(r, 3)?,
        url: r.get(4)?,
        ca_cert_pem: r.get(5)?,
        pending_request_id: r.get(6)?,
        upstream_authority_id: r.get(7)?,
        upstream_public_key: r.get(8)?,
        upstream_account: r.get(9)?,
        registration_expires_at: r.get(10)?,
        last_sequence: r.get(11)?,
        last_acked_sequence: r.get(12)?,
        last_response_sequence: r.get(13)?,
        last_sync: r.get(14)?,
        cron: r.get(15)?,
        created_at: r.get(16)?,
    })
}

pub fn link(conn: &Connection, account_id: i64) -> Result<Option<Link>> {
    let sql = format!("SELECT {LINK_COLUMNS} FROM upstream_links l JOIN accounts a ON a.id = l.account_id WHERE l.account_id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([account_id], link_row)
        .optional()?)
}

pub fn link_by_account(conn: &Connection, account: &str) -> Result<Option<Link>> {
    let sql = format!("SELECT {LINK_COLUMNS} FROM upstream_links l JOIN accounts a ON a.id = l.account_id WHERE a.name = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([account], link_row)
        .optional()?)
}

pub fn links(conn: &Connection) -> Result<Vec<Link>> {
    let sql = format!("SELECT {LINK_COLUMNS} FROM upstream_links l JOIN accounts a ON a.id = l.account_id ORDER BY a.name");
    Ok(conn
        .prepare_cached(&sql)?
        .query_map([], link_row)?
        .collect::<rusqlite::Result<_>>()?)
}

/// Starts (or restarts) a registration: the link is pending until the response arrives.
pub fn start_link(
    tx: &Connection,
    account_id: i64,
    mode: LinkMode,
    url: Option<&str>,
    ca_cert_pem: Option<&str>,
    request_id: &str,
    now: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO upstream_links (account_id, mode, state, url, ca_cert_pem, pending_request_id, created_at)
         VALUES (?1, ?2, ?7, ?3, ?4, ?5, ?6)
         ON CONFLICT (account_id) DO UPDATE SET mode = ?2, state = ?7, url = ?3, ca_cert_pem = ?4,
           pending_request_id = ?5, upstream_authority_id = NULL, upstream_public_key = NULL,
           last_sequence = 0, last_acked_sequence = 0, last_response_sequence = 0",
        params![account_id, mode.as_str(), url, ca_cert_pem, request_id, now, LinkState::Pending.as_str()],
    )?;
    Ok(())
}

/// Puts a link back as it was before `start_link` (a re-registration that failed keeps
/// the registration it replaced).
pub fn restore_link(tx: &Connection, l: &Link) -> Result<()> {
    tx.execute(
        "UPDATE upstream_links SET mode = ?2, state = ?3, url = ?4, ca_cert_pem = ?5,
           pending_request_id = ?6, upstream_authority_id = ?7, upstream_public_key = ?8,
           last_sequence = ?9, last_acked_sequence = ?10, last_response_sequence = ?11
         WHERE account_id = ?1",
        params![
            l.account_id,
            l.mode.as_str(),
            l.state.as_str(),
            l.url,
            l.ca_cert_pem,
            l.pending_request_id,
            l.upstream_authority_id,
            l.upstream_public_key,
            l.last_sequence,
            l.last_acked_sequence,
            l.last_response_sequence
        ],
    )?;
    Ok(())
}

pub fn set_cron(tx: &Connection, account_id: i64, cron: &str) -> Result<()> {
    let n = tx.execute(
        "UPDATE upstream_links SET cron = ?2 WHERE account_id = ?1",
        params![account_id, cron],
    )?;
    if n == 0 {
        return Err(StoreError::not_found(
            "upstream registration for this account",
        ));
    }
    Ok(())
}

pub fn set_last_sequence(tx: &Connection, account_id: i64, sequence: i64) -> Result<()> {
    tx.execute(
        "UPDATE upstream_links SET last_sequence = ?2 WHERE account_id = ?1",
        params![account_id, sequence],
    )?;
    Ok(())
}

#[derive(Clone, Debug, Default)]
pub struct History {
    pub id: i64,
    pub at: i64,
    pub account_id: Option<i64>,
    pub account: Option<String>,
    pub bundle_id: String,
    /// None when a rejected bundle named no kind this server knows.
    pub kind: Option<BundleKind>,
    pub direction: Direction,
    pub sequence: i64,
    pub records: i64,
    pub result: BundleResult,
    pub duration_ms: i64,
    pub detail: String,
}

pub fn record(tx: &Connection, h: &History) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO sync_history (at, account_id, account, bundle_id, kind, direction, sequence, records, result, duration_ms, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        h.at, h.account_id, h.account, h.bundle_id, h.kind.map_or("unknown", BundleKind::as_str),
        h.direction.as_str(), h.sequence, h.records, h.result.as_str(),
        h.duration_ms, h.detail
    ])?;
    Ok(())
}

/// How many bundles the sync history holds, by direction and result (metrics).
pub fn result_counts(conn: &Connection) -> Result<Vec<(String, String, i64)>> {
    Ok(conn
        .prepare_cached(
            "SELECT direction, result, count(*) FROM sync_history GROUP BY direction, result",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// True when a bundle with this id was applied here before.
pub fn applied_before(conn: &Connection, bundle_id: &str) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM sync_history WHERE bundle_id = ?1 AND direction = 'in' AND result = 'applied'")?
        .exists([bundle_id])?)
}

/// True when this server wrote a bundle with this id (a response must answer one).
pub fn sent(conn: &Connection, bundle_id: &str, account_id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM sync_history WHERE bundle_id = ?1 AND direction = 'out' AND account_id = ?2")?
        .exists(params![bundle_id, account_id])?)
}

pub fn history(
    conn: &Connection,
    account_filter: Option<i64>,
    after: Option<i64>,
    limit: u32,
) -> Result<Page<History>> {
    let rows = conn
        .prepare_cached(
            "SELECT id, at, account_id, account, bundle_id, kind, direction, sequence, records, result, duration_ms, detail
             FROM sync_history WHERE (?1 IS NULL OR account_id = ?1) AND (?2 IS NULL OR id < ?2)
             ORDER BY id DESC LIMIT ?3",
        )?
        .query_map(params![account_filter, after, limit + 1], |r| {
            // The columns hold only what `record` wrote; an unknown word reads as its default.
            let kind: String = r.get(5)?;
            let direction: String = r.get(6)?;
            let result: String = r.get(9)?;
            Ok(History {
                id: r.get(0)?,
                at: r.get(1)?,
                account_id: r.get(2)?,
                account: r.get(3)?,
                bundle_id: r.get(4)?,
                kind: kind.parse().ok(),
                direction: direction.parse().unwrap_or_default(),
                sequence: r.get(7)?,
                records: r.get(8)?,
                result: result.parse().unwrap_or_default(),
                duration_ms: r.get(10)?,
                detail: r.get(11)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(page::from_rows(rows, limit, |h| h.id.to_string()))
}

/// Pins the upstream's new key after a verified key rotation.
pub fn repin_upstream(tx: &Connection, account_id: i64, key: &[u8]) -> Result<()> {
    tx.execute(
        "UPDATE upstream_links SET upstream_public_key = ?2 WHERE account_id = ?1",
        params![account_id, key],
    )?;
    Ok(())
}

pub fn set_meta(tx: &Connection, key: &str, value: &str) -> Result<()> {
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET value = ?2",
        params![key, value],
    )?;
    Ok(())
}

pub fn meta(conn: &Connection, key: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

/// What a registration response pins on the satellite's link.
pub struct Registered<'a> {
    pub upstream_authority_id: &'a str,
    pub upstream_public_key: &'a [u8],
    pub upstream_account: Option<&'a str>,
    pub registration_expires_at: Option<i64>,
    pub response_sequence: i64,
}

/// The satellite's link becomes registered: the upstream's key is pinned, the pending
/// request is answered.
pub fn complete_registration(
    tx: &Connection,
    account_id: i64,
    r: &Registered<'_>,
    now: i64,
) -> Result<()> {
    tx.execute(
        "UPDATE upstream_links SET state = ?8, pending_request_id = NULL, upstream_authority_id = ?2,
           upstream_public_key = ?3, upstream_account = ?4, registration_expires_at = ?5,
           last_response_sequence = ?6, last_sync = ?7 WHERE account_id = ?1",
        params![
            account_id,
            r.upstream_authority_id,
            r.upstream_public_key,
            r.upstream_account,
            r.registration_expires_at,
            r.response_sequence,
            now,
            LinkState::Registered.as_str()
        ],
    )?;
    Ok(())
}

/// A sync response applied on the satellite: what it acknowledged, its sequence, when.
pub fn record_response(
    tx: &Connection,
    account_id: i64,
    acked: i64,
    response_sequence: i64,
    registration_expires_at: Option<i64>,
    now: i64,
) -> Result<()> {
    tx.execute(
        "UPDATE upstream_links SET last_acked_sequence = ?2, last_response_sequence = ?3, last_sync = ?4,
           registration_expires_at = ?5 WHERE account_id = ?1",
        params![account_id, acked, response_sequence, now, registration_expires_at],
    )?;
    Ok(())
}
