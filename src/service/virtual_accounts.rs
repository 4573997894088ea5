//! Virtual accounts of an account: listed by whoever sees the account, created, changed
//! and deleted by its editors. Those synced from the upstream keep their name and stay.

use super::access::{EditAccount, ReadAccount};
use super::Result;
use crate::domain::{names, DomainError};
use crate::store::accounts::{self, Account, VirtualAccount};
use crate::store::events::{self, NewEvent};
use crate::store::page::Page;
use rusqlite::Connection;
use serde_json::json;

pub use super::accounts::Changes;

pub fn list(
    conn: &Connection,
    cap: &ReadAccount,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<VirtualAccount>> {
    Ok(accounts::list_vas(conn, &cap.account, after, limit)?)
}

pub fn create(
    tx: &Connection,
    cap: &EditAccount,
    now: i64,
    name: &str,
    description: &str,
) -> Result<VirtualAccount> {
    let name = names::name("name", name)?;
    let description = names::description(description)?;
    let va = accounts::insert_va(tx, cap.account.id, &name, &description, now)?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: &cap.actor,
            action: "virtual_account.created",
            account: Some((cap.account.id, &cap.account.name)),
            target: &name,
            detail: json!({ "description": description }),
        },
    )?;
    Ok(va)
}

pub fn update(
    tx: &Connection,
    cap: &EditAccount,
    now: i64,
    before: &VirtualAccount,
    changes: &Changes,
) -> Result<VirtualAccount> {
    let new_name = match changes.name.as_deref() {
        Some(n) => names::name("name", n)?,
        None => before.name.clone(),
    };
    let description = match changes.description.as_deref() {
        Some(d) => names::description(d)?,
        None => before.description.clone(),
    };
    if before.synced && new_name != before.name {
        return Err(DomainError::conflict(
            "synced_read_only",
            "This virtual account comes from the upstream; rename it there.",
        )
        .into());
    }
    accounts::set_va_name(tx, before.id, &new_name, &description)?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: &cap.actor,
            action: "virtual_account.updated",
            account: Some((cap.account.id, &cap.account.name)),
            target: &new_name,
            detail: json!({
                "before": { "name": before.name, "description": before.description },
                "after": { "name": new_name, "description": description },
            }),
        },
    )?;
    Ok(VirtualAccount {
        name: new_name,
        description,
        ..before.clone()
    })
}

pub fn delete(tx: &Connection, cap: &EditAccount, now: i64, va: &VirtualAccount) -> Result<()> {
    if va.synced {
        return Err(DomainError::conflict(
            "synced_read_only",
            "This virtual account comes from the upstream and cannot be deleted here.",
        )
        .into());
    }
    if va.license_count > 0 || va.instance_count > 0 {
        return Err(DomainError::conflict(
            "virtual_account_in_use",
            format!(
                "Virtual account '{}' still holds {} license(s) and {} instance(s). \
                 Remove or transfer them first.",
                va.name, va.license_count, va.instance_count
            ),
        )
        .into());
    }
    accounts::delete_va(tx, va.id)?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: &cap.actor,
            action: "virtual_account.deleted",
            account: Some((cap.account.id, &cap.account.name)),
            target: &va.name,
            detail: json!({ "description": va.description }),
        },
    )?;
    Ok(())
}

/// The virtual account a transfer goes to: another one of the same account.
pub fn transfer_target(
    conn: &Connection,
    account: &Account,
    from: &VirtualAccount,
    to_name: &str,
) -> Result<VirtualAccount> {
    let to = accounts::find_va(conn, account, to_name).map_err(|_| {
        DomainError::invalid(
            "unknown_virtual_account",
            "to_virtual_account",
            format!(
                "No virtual account '{to_name}' in account '{}'.",
                account.name
            ),
        )
    })?;
    if to.id == from.id {
        return Err(DomainError::invalid(
            "invalid_transfer",
            "to_virtual_account",
            "Source and destination are the same virtual account.",
        )
        .into());
    }
    Ok(to)
}
