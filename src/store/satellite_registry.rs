//! The upstream's side of sync: the satellites registered with it (pinned keys,
//! sequences) and the one-time satellite tokens they register with.

use super::{Result, StoreError};
use crate::crypto::secrets;
use crate::domain::{names, DomainError};
use rusqlite::{params, Connection, OptionalExtension, Row};

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

/// Pins a satellite's new key after a verified key rotation.
pub fn repin_satellite(tx: &Connection, id: i64, key: &[u8]) -> Result<()> {
    tx.execute(
        "UPDATE satellites SET public_key = ?2 WHERE id = ?1",
        params![id, key],
    )?;
    Ok(())
}

/// Registers (or re-registers, with a new key and fresh sequences) a satellite's account.
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

/// Upstream: the sequence of the last response written for a satellite.
pub fn set_response_sequence(tx: &Connection, satellite_id: i64, sequence: i64) -> Result<()> {
    tx.execute(
        "UPDATE satellites SET response_sequence = ?2 WHERE id = ?1",
        params![satellite_id, sequence],
    )?;
    Ok(())
}
