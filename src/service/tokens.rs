//! Registration tokens of a virtual account: listed by whoever sees the account, created
//! and revoked by its editors. The secret exists only in the answer to `create`.

use super::access::{EditAccount, ReadAccount};
use super::Result;
use crate::crypto::secrets;
use crate::domain::{names, token};
use crate::store::accounts::VirtualAccount;
use crate::store::events::{self, NewEvent};
use crate::store::page::Page;
use crate::store::tokens::{self, Token, TokenRow};
use crate::store::StoreError;
use rusqlite::Connection;
use serde_json::json;

/// A token as asked for; its terms are checked by `create`.
pub struct NewToken<'a> {
    pub description: &'a str,
    pub expires_in_days: i64,
    pub max_uses: Option<i64>,
    pub export_controlled: bool,
}

pub fn list(
    conn: &Connection,
    _cap: &ReadAccount,
    va: &VirtualAccount,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<Token>> {
    Ok(tokens::list(conn, va.id, after, limit)?)
}

/// Creates a token and returns it with its secret (the only time the secret exists).
pub fn create(
    tx: &Connection,
    cap: &EditAccount,
    now: i64,
    va: &VirtualAccount,
    new: NewToken<'_>,
) -> Result<(Token, String)> {
    let description = names::description(new.description)?;
    let expires_at = token::check_new(new.expires_in_days, new.max_uses, now)?;
    let id = format!("tok_{}", secrets::random_secret(9));
    let secret = format!("st_{}", secrets::random_secret(32));
    tokens::insert(
        tx,
        TokenRow {
            id: &id,
            va_id: va.id,
            secret_hash: &secrets::secret_hash(&secret),
            description: &description,
            created_by: &cap.actor,
            created_at: now,
            expires_at,
            max_uses: new.max_uses,
            export_controlled: new.export_controlled,
        },
    )?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: &cap.actor,
            action: "token.created",
            account: Some((cap.account.id, &cap.account.name)),
            target: &format!("{}/{id}", va.name),
            detail: json!({
                "description": description, "expires_in_days": new.expires_in_days,
                "max_uses": new.max_uses, "export_controlled": new.export_controlled,
            }),
        },
    )?;
    let token = tokens::find(tx, va.id, &id)?.ok_or_else(|| StoreError::not_found("token"))?;
    Ok((token, secret))
}

/// Revokes a token; revoking a revoked one changes nothing and logs nothing.
pub fn revoke(
    tx: &Connection,
    cap: &EditAccount,
    now: i64,
    va: &VirtualAccount,
    id: &str,
) -> Result<Token> {
    let token = tokens::find(tx, va.id, id)?
        .ok_or_else(|| StoreError::not_found(format!("token '{id}'")))?;
    if token.revoked_at.is_none() {
        tokens::set_revoked(tx, id, now)?;
        events::record(
            tx,
            now,
            NewEvent {
                actor: &cap.actor,
                action: "token.revoked",
                account: Some((cap.account.id, &cap.account.name)),
                target: &format!("{}/{id}", va.name),
                detail: json!({ "uses": token.uses }),
            },
        )?;
    }
    Ok(Token {
        revoked_at: token.revoked_at.or(Some(now)),
        ..token
    })
}
