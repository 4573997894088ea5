//! Accounts: listed by whoever sees them, created, renamed and deleted by system admins,
//! re-described by their editors. Names are checked here (`domain::names`); the SQL is
//! `store::accounts`.

use super::access::{EditAccount, ReadAccount, SystemAdmin, Visible};
use super::Result;
use crate::domain::{names, DomainError};
use crate::store::accounts::{self, Account, VirtualAccount};
use crate::store::events::{self, NewEvent};
use crate::store::page::Page;
use rusqlite::Connection;
use serde_json::json;

/// Fields to change; a left-out field stays as it is. Checked by the operation, after the
/// access checks, so a caller without the right learns nothing about its input.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub name: Option<String>,
    pub description: Option<String>,
}

pub fn list(
    conn: &Connection,
    scope: Visible,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<Account>> {
    Ok(accounts::list(conn, scope.account_filter(), after, limit)?)
}

/// Accounts and virtual accounts the caller sees, for the dashboard.
pub fn totals(conn: &Connection, scope: Visible) -> Result<(i64, i64)> {
    Ok(accounts::totals(conn, scope.account_filter())?)
}

/// The visible virtual accounts that hold licenses, with their account's name.
pub fn vas_with_licenses(
    conn: &Connection,
    scope: Visible,
) -> Result<Vec<(String, VirtualAccount)>> {
    Ok(accounts::vas_with_licenses(conn, scope.account_filter())?)
}

pub fn create(
    tx: &Connection,
    cap: &SystemAdmin,
    now: i64,
    name: &str,
    description: &str,
) -> Result<Account> {
    let name = names::name("name", name)?;
    let description = names::description(description)?;
    let id = accounts::insert(tx, &name, &description, now)?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: &cap.actor,
            action: "account.created",
            account: Some((id, &name)),
            target: &name,
            detail: json!({ "description": description }),
        },
    )?;
    Ok(Account {
        id,
        name,
        description,
        created_at: now,
        va_count: 0,
    })
}

/// Renames (system admins: `admin` is their capability) and/or re-describes (anyone who
/// may edit) an account.
pub fn update(
    tx: &Connection,
    cap: &EditAccount,
    admin: Option<&SystemAdmin>,
    now: i64,
    changes: &Changes,
) -> Result<Account> {
    let before = &cap.account;
    let new_name = match changes.name.as_deref() {
        Some(n) if n.trim() != before.name => {
            if admin.is_none() {
                return Err(
                    DomainError::Forbidden("Only system admins rename accounts.".into()).into(),
                );
            }
            names::name("name", n)?
        }
        _ => before.name.clone(),
    };
    let description = match changes.description.as_deref() {
        Some(d) => names::description(d)?,
        None => before.description.clone(),
    };
    accounts::set_name(tx, before.id, &new_name, &description)?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: &cap.actor,
            action: "account.updated",
            account: Some((before.id, &new_name)),
            target: &new_name,
            detail: json!({
                "before": { "name": before.name, "description": before.description },
                "after": { "name": new_name, "description": description },
            }),
        },
    )?;
    Ok(Account {
        name: new_name,
        description,
        ..before.clone()
    })
}

/// Deletes an account (seen through `seen`, removed by a system admin) and its empty
/// virtual accounts. Refused while any virtual account holds licenses or instances, or
/// while people or API clients belong to the account.
pub fn delete(tx: &Connection, seen: &ReadAccount, cap: &SystemAdmin, now: i64) -> Result<()> {
    let account = &seen.account;
    let name = &account.name;
    let held = accounts::holdings(tx, account.id)?;
    if held.busy_vas > 0 {
        return Err(DomainError::conflict(
            "account_in_use",
            format!(
                "Account '{name}' still has {} license(s) and {} instance(s) in \
                 {} virtual account(s). Remove or transfer them first.",
                held.licenses, held.instances, held.busy_vas
            ),
        )
        .into());
    }
    let members = accounts::members(tx, account.id)?;
    if members > 0 {
        return Err(DomainError::conflict(
            "account_in_use",
            format!(
                "Account '{name}' still has {members} user(s) or API client(s). Remove them first."
            ),
        )
        .into());
    }
    accounts::delete(tx, account.id)?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: &cap.actor,
            action: "account.deleted",
            account: Some((account.id, name)),
            target: name,
            detail: json!({ "description": account.description, "virtual_accounts": account.va_count }),
        },
    )?;
    Ok(())
}
