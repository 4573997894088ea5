//! People who log in to the pages. Password hashes are computed by the caller (off the
//! async executor) and only stored here.

use super::events::{self, NewEvent};
use super::{is_unique_violation, Result, StoreError};
use crate::domain::{DomainError, Role};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::json;

#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub account_id: Option<i64>,
    pub account_name: Option<String>,
    pub must_change_password: bool,
    pub created_at: i64,
}

pub(crate) const USER_COLUMNS: &str = "u.id, u.username, u.password_hash, u.role, u.account_id,
    (SELECT name FROM accounts a WHERE a.id = u.account_id), u.must_change_password, u.created_at";

pub(crate) fn user_row(r: &Row<'_>) -> rusqlite::Result<User> {
    let role: String = r.get(3)?;
    Ok(User {
        id: r.get(0)?,
        username: r.get(1)?,
        password_hash: r.get(2)?,
        role: role.parse().unwrap_or(Role::Viewer),
        account_id: r.get(4)?,
        account_name: r.get(5)?,
        must_change_password: r.get(6)?,
        created_at: r.get(7)?,
    })
}

pub fn find_by_username(conn: &Connection, username: &str) -> Result<Option<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u WHERE u.username = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([username], user_row)
        .optional()?)
}

pub fn list(conn: &Connection) -> Result<Vec<User>> {
    let sql = format!("SELECT {USER_COLUMNS} FROM users u ORDER BY u.username");
    let rows = conn
        .prepare_cached(&sql)?
        .query_map([], user_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT count(*) FROM users", [], |r| r.get(0))?)
}

/// Looks an account up by name for scoping a new user or client.
pub(crate) fn account_id_by_name(conn: &Connection, name: Option<&str>) -> Result<Option<i64>> {
    match name.map(str::trim).filter(|n| !n.is_empty()) {
        None => Ok(None),
        Some(n) => super::accounts::id_by_name(conn, n)?
            .map(Some)
            .ok_or_else(|| {
                DomainError::invalid("unknown_account", "account", format!("No account '{n}'."))
                    .into()
            }),
    }
}

/// A user to insert: the username already checked and the account resolved
/// (`service::users::create`).
pub struct UserRow<'a> {
    pub username: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
    pub account_id: Option<i64>,
    pub must_change_password: bool,
}

pub fn insert(tx: &Connection, now: i64, row: UserRow<'_>) -> Result<User> {
    let username = row.username;
    tx.execute(
        "INSERT INTO users (username, password_hash, role, account_id, must_change_password, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            username,
            row.password_hash,
            row.role.as_str(),
            row.account_id,
            row.must_change_password,
            now
        ],
    )
    .map_err(|e| {
        if is_unique_violation(&e) {
            StoreError::from(DomainError::duplicate("username", format!("User '{username}' already exists (names are compared ignoring case).")))
        } else {
            e.into()
        }
    })?;
    find_by_username(tx, username)?.ok_or_else(|| StoreError::not_found("user"))
}

/// Sets a new password hash and ends every other session of the user.
pub fn set_password(
    tx: &Connection,
    user: &User,
    now: i64,
    password_hash: &str,
    keep_session_hash: Option<&str>,
) -> Result<()> {
    tx.execute(
        "UPDATE users SET password_hash = ?1, must_change_password = 0 WHERE id = ?2",
        params![password_hash, user.id],
    )?;
    tx.execute(
        "DELETE FROM sessions WHERE user_id = ?1 AND (?2 IS NULL OR token_hash <> ?2)",
        params![user.id, keep_session_hash],
    )?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: &format!("user:{}", user.username),
            action: "user.password_changed",
            account: None,
            target: &user.username,
            detail: json!({}),
        },
    )
}

/// System admins, enabled or not.
pub fn admin_count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT count(*) FROM users WHERE role = ?1",
        [Role::SystemAdmin.as_str()],
        |r| r.get(0),
    )?)
}

pub fn delete(tx: &Connection, id: i64) -> Result<()> {
    tx.execute("DELETE FROM users WHERE id = ?1", [id])?;
    Ok(())
}
