//! Browser sessions. The cookie carries a random token; only its hash is stored.
//! `expires_at` is the idle deadline: each use pushes it out by the idle timeout, never
//! past `created_at + SESSION_TTL_SECONDS` (the absolute lifetime).

use super::users::{user_row, User, USER_COLUMNS};
use super::Result;
use rusqlite::{params, Connection, OptionalExtension};

pub const SESSION_TTL_SECONDS: i64 = 12 * 3600;

pub struct Session {
    pub user: User,
    pub csrf_token: String,
    pub token_hash: String,
    /// The idle deadline in force.
    pub expires_at: i64,
}

pub fn create(
    tx: &Connection,
    user_id: i64,
    token_hash: &str,
    csrf: &str,
    now: i64,
    idle_seconds: i64,
) -> Result<()> {
    // Expired sessions are swept here, where a write happens anyway.
    tx.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?;
    tx.execute(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            token_hash,
            user_id,
            csrf,
            now,
            now + idle_seconds.min(SESSION_TTL_SECONDS)
        ],
    )?;
    Ok(())
}

pub fn find(conn: &Connection, token_hash: &str, now: i64) -> Result<Option<Session>> {
    let sql = format!(
        "SELECT {USER_COLUMNS}, s.csrf_token, s.expires_at FROM sessions s
         JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = ?1 AND s.expires_at > ?2 AND s.created_at + ?3 > ?2"
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![token_hash, now, SESSION_TTL_SECONDS], |r| {
            Ok(Session {
                user: user_row(r)?,
                csrf_token: r.get(8)?,
                token_hash: token_hash.to_string(),
                expires_at: r.get(9)?,
            })
        })
        .optional()?)
}

/// The session was used at `now`: its idle deadline moves to `now + idle_seconds`, capped
/// by the absolute lifetime.
pub fn touch(tx: &Connection, token_hash: &str, now: i64, idle_seconds: i64) -> Result<()> {
    tx.prepare_cached(
        "UPDATE sessions SET expires_at = min(?2 + ?3, created_at + ?4) WHERE token_hash = ?1",
    )?
    .execute(params![token_hash, now, idle_seconds, SESSION_TTL_SECONDS])?;
    Ok(())
}

pub fn delete(tx: &Connection, token_hash: &str) -> Result<()> {
    tx.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
    Ok(())
}
