//! Access control as capabilities: a service operation asks here once for proof that the
//! caller may read or change an account, and passes the proof on. Store functions called
//! with a proof never see a `Principal`, so they cannot forget a check.

use super::Result;
use crate::domain::{DomainError, Principal};
use crate::store::accounts::{self, Account};
use rusqlite::Connection;

/// The caller may see this account (and everything in it).
#[derive(Debug, Clone)]
pub struct ReadAccount {
    pub account: Account,
    pub actor: String,
}

/// The caller may change this account's contents (VAs, tokens, instances, reservations,
/// settings).
#[derive(Debug, Clone)]
pub struct EditAccount {
    pub account: Account,
    pub actor: String,
}

/// The caller is a system admin (users, API clients, reservation removal).
#[derive(Debug, Clone)]
pub struct SystemAdmin {
    pub actor: String,
}

/// The account named `name`, if the caller may see it; an account it may not see is
/// reported as not found, exactly as an unknown one.
pub fn read_account(conn: &Connection, who: &Principal, name: &str) -> Result<ReadAccount> {
    let account = accounts::find(conn, who, name)?;
    Ok(ReadAccount {
        account,
        actor: who.actor.clone(),
    })
}

/// The account named `name`, if the caller may change it (403 when it may only see it).
pub fn edit_account(conn: &Connection, who: &Principal, name: &str) -> Result<EditAccount> {
    let ReadAccount { account, actor } = read_account(conn, who, name)?;
    if !who.can_edit_account(account.id) {
        return Err(DomainError::Forbidden(format!(
            "Your role may not change account '{}'.",
            account.name
        ))
        .into());
    }
    Ok(EditAccount { account, actor })
}

pub fn system_admin(who: &Principal) -> Result<SystemAdmin> {
    if who.is_system_admin() {
        Ok(SystemAdmin {
            actor: who.actor.clone(),
        })
    } else {
        Err(DomainError::Forbidden("Only a system admin may do this.".into()).into())
    }
}
