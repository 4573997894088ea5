//! Sync bookkeeping: the satellite's link to its upstream per account, the upstream's
//! registered satellites and satellite tokens, and the history of every bundle.

use super::page::{self, Page};
use super::{Result, StoreError};
use crate::crypto::secrets;
use crate::domain::sync::{LinkMode, LinkState};
use crate::domain::{names, DomainError};
use rusqlite::{params, Connection, OptionalExtension, Row};

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
    pub kind: String,
    pub direction: &'static str,
    pub sequence: i64,
    pub records: i64,
    pub result: String,
    pub duration_ms: i64,
    pub detail: String,
}

pub fn record(tx: &Connection, h: &History) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO sync_history (at, account_id, account, bundle_id, kind, direction, sequence, records, result, duration_ms, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?
    .execute(params![
        h.at, h.account_id, h.account, h.bundle_id, h.kind, h.direction, h.sequence, h.records, h.result,
        h.duration_ms, h.detail
    ])?;
    Ok(())
}

/// True when a bundle with this id was applied here before.
/// How many bundles the sync history holds, by direction and result (metrics).
pub fn result_counts(conn: &Connection) -> Result<Vec<(String, String, i64)>> {
    Ok(conn
        .prepare_cached(
            "SELECT direction, result, count(*) FROM sync_history GROUP BY direction, result",
        )?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

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
            let direction: String = r.get(6)?;
            Ok(History {
                id: r.get(0)?,
                at: r.get(1)?,
                account_id: r.get(2)?,
                account: r.get(3)?,
                bundle_id: r.get(4)?,
                kind: r.get(5)?,
                direction: if direction == "out" { "out" } else { "in" },
                sequence: r.get(7)?,
                records: r.get(8)?,
                result: r.get(9)?,
                duration_ms: r.get(10)?,
                detail: r.get(11)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(page::from_rows(rows, limit, |h| h.id.to_string()))
}

// ---- upstream side ----

/// Creates a token a satellite registers one of its accounts with; returns (expires_at, token).
pub fn create_satellite_token(
    tx: &Connection,
    account_id: i64,
    description: &str,
    days: i64,
    now: i64,
) -> Result<(i64, String)> {
    let description = names::description(description)?;
    let expires_at = crate::domain::token::check_new(days, None, now)?;
    let id = format!("stk_{}", secrets::random_secret(9));
    let secret = format!("sat_{}", secrets::random_secret(32));
    tx.execute(
        "INSERT INTO satellite_tokens (id, account_id, secret_hash, description, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, account_id, secrets::secret_hash(&secret), description, now, expires_at],
    )?;
    Ok((expires_at, secret))
}

/// The account a satellite token is for; each token registers once.
/// Why a satellite token was refused: the sender's fault, a permanent verdict (a database
/// error, by contrast, comes back as the outer `Err` and is not the sender's fault).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenRefusal {
    Unknown,
    Used,
    Expired,
    Revoked,
}

impl TokenRefusal {
    pub fn message(self) -> &'static str {
        match self {
            TokenRefusal::Unknown => "the registration token is not known to this upstream",
            TokenRefusal::Used => "the registration token was used already",
            TokenRefusal::Expired => "the registration token has expired",
            TokenRefusal::Revoked => "the registration token was revoked by the upstream's admin",
        }
    }
}

pub fn redeem_satellite_token(
    tx: &Connection,
    secret: &str,
    now: i64,
) -> Result<std::result::Result<i64, TokenRefusal>> {
    /// id, account, expires_at, used_at, revoked_at.
    type TokenFacts = (String, i64, i64, Option<i64>, Option<i64>);
    let row: Option<TokenFacts> = tx
        .query_row(
            "SELECT id, account_id, expires_at, used_at, revoked_at FROM satellite_tokens WHERE secret_hash = ?1",
            [secrets::secret_hash(secret)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()?;
    let Some((id, account_id, expires_at, used_at, revoked_at)) = row else {
        return Ok(Err(TokenRefusal::Unknown));
    };
    if revoked_at.is_some() {
        return Ok(Err(TokenRefusal::Revoked));
    }
    if used_at.is_some() {
        return Ok(Err(TokenRefusal::Used));
    }
    if now >= expires_at {
        return Ok(Err(TokenRefusal::Expired));
    }
    tx.execute(
        "UPDATE satellite_tokens SET used_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(Ok(account_id))
}

#[derive(Clone, Debug)]
pub struct Satellite {
    pub id: i64,
    pub account_id: i64,
    pub account: String,
    pub authority_id: String,
    pub public_key: Vec<u8>,
    pub local_account: String,
    pub registered_at: i64,
    pub last_sync: Option<i64>,
    pub last_sequence: i64,
    pub response_sequence: i64,
    pub instance_count: i64,
}

const SAT_COLUMNS: &str =
    "s.id, s.account_id, a.name, s.authority_id, s.public_key, s.local_account, s.registered_at,
    s.last_sync, s.last_sequence, s.response_sequence, s.instance_count";

fn sat_row(r: &Row<'_>) -> rusqlite::Result<Satellite> {
    Ok(Satellite {
        id: r.get(0)?,
        account_id: r.get(1)?,
        account: r.get(2)?,
        authority_id: r.get(3)?,
        public_key: r.get(4)?,
        local_account: r.get(5)?,
        registered_at: r.get(6)?,
        last_sync: r.get(7)?,
        last_sequence: r.get(8)?,
        response_sequence: r.get(9)?,
        instance_count: r.get(10)?,
    })
}

pub fn satellite(
    conn: &Connection,
    authority_id: &str,
    local_account: &str,
) -> Result<Option<Satellite>> {
    let sql = format!(
        "SELECT {SAT_COLUMNS} FROM satellites s JOIN accounts a ON a.id = s.account_id
         WHERE s.authority_id = ?1 AND s.local_account = ?2"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([authority_id, local_account], sat_row)
        .optional()?)
}

pub fn satellites(conn: &Connection, account_filter: Option<i64>) -> Result<Vec<Satellite>> {
    let sql = format!(
        "SELECT {SAT_COLUMNS} FROM satellites s JOIN accounts a ON a.id = s.account_id
         WHERE ?1 IS NULL OR s.account_id = ?1 ORDER BY a.name, s.authority_id"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_map([account_filter], sat_row)?
        .collect::<rusqlite::Result<_>>()?)
}

/// Registers (or re-registers, with a new key and fresh sequences) a satellite's account.
/// Pins the upstream's new key after a verified key rotation.
pub fn repin_upstream(tx: &Connection, account_id: i64, key: &[u8]) -> Result<()> {
    tx.execute(
        "UPDATE upstream_links SET upstream_public_key = ?2 WHERE account_id = ?1",
        params![account_id, key],
    )?;
    Ok(())
}

/// Pins a satellite's new key after a verified key rotation.
pub fn repin_satellite(tx: &Connection, id: i64, key: &[u8]) -> Result<()> {
    tx.execute(
        "UPDATE satellites SET public_key = ?2 WHERE id = ?1",
        params![id, key],
    )?;
    Ok(())
}

pub fn register_satellite(
    tx: &Connection,
    account_id: i64,
    authority_id: &str,
    key: &[u8],
    local_account: &str,
    now: i64,
) -> Result<Satellite> {
    if let Some(existing) = satellite(tx, authority_id, local_account)? {
        if existing.account_id != account_id {
            return Err(DomainError::conflict(
                "already_registered",
                "This satellite account is registered with another upstream account.",
            )
            .into());
        }
    }
    tx.execute(
        "INSERT INTO satellites (account_id, authority_id, public_key, local_account, registered_at)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (authority_id, local_account) DO UPDATE SET public_key = ?3, registered_at = ?5,
           last_sequence = 0",
        params![account_id, authority_id, key, local_account, now],
    )?;
    super::satellite_admin::clear_revoked(tx, authority_id, local_account)?;
    satellite(tx, authority_id, local_account)?.ok_or_else(|| StoreError::not_found("satellite"))
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

/// Upstream: the sequence of the last response written for a satellite.
pub fn set_response_sequence(tx: &Connection, satellite_id: i64, sequence: i64) -> Result<()> {
    tx.execute(
        "UPDATE satellites SET response_sequence = ?2 WHERE id = ?1",
        params![satellite_id, sequence],
    )?;
    Ok(())
}
