//! Registration tokens of a virtual account. The secret is shown once; only its hash is kept.

use super::page::{self, Page};
use super::Result;
use crate::crypto::secrets;
use crate::domain::token::{self, TokenState};
use crate::domain::DomainError;
use rusqlite::{params, Connection, OptionalExtension, Row};

#[derive(Clone, Debug)]
pub struct Token {
    pub id: String,
    pub va_id: i64,
    pub description: String,
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub max_uses: Option<i64>,
    pub uses: i64,
    pub export_controlled: bool,
    pub revoked_at: Option<i64>,
}

impl Token {
    pub fn state(&self, now: i64) -> TokenState {
        token::state(
            self.revoked_at,
            self.expires_at,
            self.max_uses,
            self.uses,
            now,
        )
    }
}

const COLUMNS: &str = "id, va_id, description, created_by, created_at, expires_at, max_uses, uses,
    export_controlled, revoked_at";

fn row(r: &Row<'_>) -> rusqlite::Result<Token> {
    Ok(Token {
        id: r.get(0)?,
        va_id: r.get(1)?,
        description: r.get(2)?,
        created_by: r.get(3)?,
        created_at: r.get(4)?,
        expires_at: r.get(5)?,
        max_uses: r.get(6)?,
        uses: r.get(7)?,
        export_controlled: r.get(8)?,
        revoked_at: r.get(9)?,
    })
}

/// A token to insert: its terms already checked (`service::tokens`), its secret made.
pub struct TokenRow<'a> {
    pub id: &'a str,
    pub va_id: i64,
    pub secret_hash: &'a str,
    pub description: &'a str,
    pub created_by: &'a str,
    pub created_at: i64,
    pub expires_at: i64,
    pub max_uses: Option<i64>,
    pub export_controlled: bool,
}

pub fn insert(tx: &Connection, t: TokenRow<'_>) -> Result<()> {
    tx.execute(
        "INSERT INTO tokens (id, va_id, secret_hash, description, created_by, created_at, expires_at,
                             max_uses, export_controlled)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            t.id,
            t.va_id,
            t.secret_hash,
            t.description,
            t.created_by,
            t.created_at,
            t.expires_at,
            t.max_uses,
            t.export_controlled
        ],
    )?;
    Ok(())
}

pub fn find(conn: &Connection, va_id: i64, id: &str) -> Result<Option<Token>> {
    let sql = format!("SELECT {COLUMNS} FROM tokens WHERE va_id = ?1 AND id = ?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![va_id, id], row)
        .optional()?)
}

pub fn find_by_secret(conn: &Connection, secret: &str) -> Result<Option<Token>> {
    // Made once: every registration runs it (the statement cache is keyed by its text).
    static SQL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("SELECT {COLUMNS} FROM tokens WHERE secret_hash = ?1"));
    Ok(conn
        .prepare_cached(&SQL)?
        .query_row([secrets::secret_hash(secret)], row)
        .optional()?)
}

/// Newest first.
pub fn list(conn: &Connection, va_id: i64, after: Option<&str>, limit: u32) -> Result<Page<Token>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tokens WHERE va_id = ?1
           AND (?2 IS NULL OR (created_at, id) < (SELECT created_at, id FROM tokens WHERE id = ?2))
         ORDER BY created_at DESC, id DESC LIMIT ?3"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![va_id, after, limit + 1], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(page::from_rows(rows, limit, |t| t.id.clone()))
}

pub fn set_revoked(tx: &Connection, id: &str, now: i64) -> Result<()> {
    tx.execute(
        "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

/// The token presented at registration, when it can register one more instance now (the
/// refusal codes are those of CONTRACT.md section 4); nothing written: `spend` takes the
/// use once every other check passed.
pub fn usable(tx: &Connection, secret: &str, now: i64) -> Result<Token> {
    let token = find_by_secret(tx, secret)?.ok_or_else(|| DomainError::Unauthorized {
        code: "token_invalid",
        message: "The registration token is not known here.".into(),
    })?;
    match token.state(now) {
        TokenState::Active => {}
        TokenState::Revoked => {
            return Err(DomainError::Unauthorized {
                code: "token_revoked",
                message: "The registration token was revoked.".into(),
            }
            .into())
        }
        TokenState::Expired => {
            return Err(DomainError::Unauthorized {
                code: "token_expired",
                message: "The registration token has expired.".into(),
            }
            .into())
        }
        TokenState::Exhausted => {
            return Err(DomainError::conflict(
                "token_exhausted",
                "The registration token has been used as often as allowed.",
            )
            .into())
        }
    }
    Ok(token)
}

/// Spends one use of a token `usable` returned.
pub fn spend(tx: &Connection, token: Token) -> Result<Token> {
    tx.prepare_cached("UPDATE tokens SET uses = uses + 1 WHERE id = ?1")?
        .execute([&token.id])?;
    Ok(Token {
        uses: token.uses + 1,
        ..token
    })
}
