//! Machine clients of the admin API: OAuth2 client credentials and bearer tokens.
//! Secrets are 256-bit random strings, so a SHA-256 of them is a safe stored form.

use super::events::{self, NewEvent};
use super::users::account_id_by_name;
use super::{is_unique_violation, Result, StoreError};
use crate::crypto::secrets;
use crate::domain::{names, DomainError, Role};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;

pub const ACCESS_TOKEN_TTL_SECONDS: i64 = 3600;

pub struct NewClientSecret {
    pub id: i64,
    pub client_id: String,
    pub client_secret: String,
}

pub fn create(
    tx: &Connection,
    actor: &str,
    now: i64,
    name: &str,
    role: Role,
    account: Option<&str>,
) -> Result<NewClientSecret> {
    let name = names::name("name", name)?;
    let account_id = account_id_by_name(tx, account)?;
    role.check_scope(account_id.is_some())?;
    let client_id = format!("sc_{}", secrets::random_secret(12));
    let client_secret = secrets::random_secret(32);
    tx.execute(
        "INSERT INTO api_clients (client_id, secret_hash, name, role, account_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            client_id,
            secrets::secret_hash(&client_secret),
            name,
            role.as_str(),
            account_id,
            now
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::from(DomainError::duplicate(
                "name",
                format!("API client '{name}' already exists."),
            ))
        } else {
            e.into()
        }
    })?;
    let id = tx.last_insert_rowid();
    events::record(
        tx,
        now,
        NewEvent {
            actor,
            action: "api_client.created",
            account: account_id.zip(account),
            target: &name,
            detail: json!({ "role": role.as_str(), "client_id": client_id }),
        },
    )?;
    Ok(NewClientSecret {
        id,
        client_id,
        client_secret,
    })
}

/// Exchanges client credentials for a bearer token; `None` when they do not match.
pub fn issue_token(
    tx: &Connection,
    client_id: &str,
    client_secret: &str,
    now: i64,
) -> Result<Option<(String, i64)>> {
    let row: Option<(i64, String)> = tx
        .query_row(
            "SELECT id, secret_hash FROM api_clients WHERE client_id = ?1",
            [client_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((id, stored)) = row else {
        return Ok(None);
    };
    if !secrets::constant_time_eq(&stored, &secrets::secret_hash(client_secret)) {
        return Ok(None);
    }
    tx.execute("DELETE FROM api_tokens WHERE expires_at <= ?1", [now])?;
    tx.execute(
        "UPDATE api_clients SET last_used_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    let token = secrets::random_secret(32);
    tx.execute(
        "INSERT INTO api_tokens (token_hash, client_id, expires_at) VALUES (?1, ?2, ?3)",
        params![
            secrets::secret_hash(&token),
            id,
            now + ACCESS_TOKEN_TTL_SECONDS
        ],
    )?;
    Ok(Some((token, ACCESS_TOKEN_TTL_SECONDS)))
}

/// The client behind a bearer token, as the access check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClient {
    pub name: String,
    pub role: Role,
    pub account_id: Option<i64>,
}

/// The client behind a bearer token, if the token is known and not expired.
pub fn client_for_token(conn: &Connection, token: &str, now: i64) -> Result<Option<TokenClient>> {
    let row: Option<(String, String, Option<i64>)> = conn
        .prepare_cached(
            "SELECT c.name, c.role, c.account_id FROM api_tokens t
             JOIN api_clients c ON c.id = t.client_id
             WHERE t.token_hash = ?1 AND t.expires_at > ?2",
        )?
        .query_row(params![secrets::secret_hash(token), now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .optional()?;
    Ok(row.and_then(|(name, role, account_id)| {
        Some(TokenClient {
            name,
            role: role.parse().ok()?,
            account_id,
        })
    }))
}

/// An API client as admins see it (never its secret).
#[derive(Debug, Clone)]
pub struct ApiClient {
    pub id: i64,
    pub client_id: String,
    pub name: String,
    pub role: Role,
    pub account: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

const CLIENT_COLUMNS: &str =
    "c.id, c.client_id, c.name, c.role, a.name, c.created_at, c.last_used_at
    FROM api_clients c LEFT JOIN accounts a ON a.id = c.account_id";

fn client_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiClient> {
    let role: String = r.get(3)?;
    Ok(ApiClient {
        id: r.get(0)?,
        client_id: r.get(1)?,
        name: r.get(2)?,
        role: role.parse().map_err(|e: DomainError| {
            rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e))
        })?,
        account: r.get(4)?,
        created_at: r.get(5)?,
        last_used_at: r.get(6)?,
    })
}

pub fn list(conn: &Connection) -> Result<Vec<ApiClient>> {
    let sql = format!("SELECT {CLIENT_COLUMNS} ORDER BY c.name");
    Ok(conn
        .prepare_cached(&sql)?
        .query_map([], client_row)?
        .collect::<rusqlite::Result<_>>()?)
}

pub fn find(conn: &Connection, id: i64) -> Result<Option<ApiClient>> {
    let sql = format!("SELECT {CLIENT_COLUMNS} WHERE c.id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], client_row)
        .optional()?)
}

/// Deletes a client; its bearer tokens go with it (ON DELETE CASCADE), so they stop
/// working at once.
pub fn delete(tx: &Connection, id: i64) -> Result<()> {
    tx.execute("DELETE FROM api_clients WHERE id = ?1", [id])?;
    Ok(())
}
