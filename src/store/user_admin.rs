//! Managing existing users (issue #16): role and account, password resets, disabling.
//! Plain SQL on `users` and `sessions`; the rules are in `service::user_admin`.

use super::users::{self, User};
use super::Result;
use crate::domain::Role;
use rusqlite::{params, Connection, OptionalExtension};

/// The user, unless unknown or disabled: what logging in may use.
pub fn find_enabled(conn: &Connection, username: &str) -> Result<Option<User>> {
    match users::find_by_username(conn, username)? {
        Some(u) if !is_disabled(conn, u.id)? => Ok(Some(u)),
        _ => Ok(None),
    }
}

pub fn is_disabled(conn: &Connection, user_id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT disabled_at IS NOT NULL FROM users WHERE id = ?1")?
        .query_row([user_id], |r| r.get(0))
        .optional()?
        .unwrap_or(false))
}

/// Usernames of disabled users, for the list page.
pub fn disabled_usernames(conn: &Connection) -> Result<Vec<String>> {
    Ok(conn
        .prepare_cached("SELECT username FROM users WHERE disabled_at IS NOT NULL")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Enabled system admins: there must always be one.
pub fn enabled_admins(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT count(*) FROM users WHERE role = 'system-admin' AND disabled_at IS NULL",
        [],
        |r| r.get(0),
    )?)
}

pub fn set_role(tx: &Connection, user_id: i64, role: Role, account_id: Option<i64>) -> Result<()> {
    tx.execute(
        "UPDATE users SET role = ?2, account_id = ?3 WHERE id = ?1",
        params![user_id, role.as_str(), account_id],
    )?;
    Ok(())
}

/// A new password the user must change at the next login.
pub fn reset_password(tx: &Connection, user_id: i64, password_hash: &str) -> Result<()> {
    tx.execute(
        "UPDATE users SET password_hash = ?2, must_change_password = 1 WHERE id = ?1",
        params![user_id, password_hash],
    )?;
    Ok(())
}

pub fn set_disabled(tx: &Connection, user_id: i64, disabled_at: Option<i64>) -> Result<()> {
    tx.execute(
        "UPDATE users SET disabled_at = ?2 WHERE id = ?1",
        params![user_id, disabled_at],
    )?;
    Ok(())
}

/// Ends every session of the user at once.
pub fn end_sessions(tx: &Connection, user_id: i64) -> Result<usize> {
    Ok(tx.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?)
}
