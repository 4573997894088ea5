//! Accounts and their virtual accounts. Visibility and edit rights come from
//! `domain::roles`; an account a caller may not see is reported as not found.

use super::events::{self, NewEvent};
use super::page::{self, Page};
use super::{is_unique_violation, Result, StoreError};
use crate::domain::{names, DomainError, Principal};
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::json;

#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub created_at: i64,
    pub va_count: i64,
}

#[derive(Debug, Clone)]
pub struct VirtualAccount {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub description: String,
    pub synced: bool,
    pub license_count: i64,
    pub instance_count: i64,
    pub created_at: i64,
}

const ACCOUNT_COLUMNS: &str = "a.id, a.name, a.description, a.created_at,
    (SELECT count(*) FROM virtual_accounts v WHERE v.account_id = a.id)";

fn account_row(r: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        created_at: r.get(3)?,
        va_count: r.get(4)?,
    })
}

const VA_COLUMNS: &str =
    "id, account_id, name, description, synced, license_count, instance_count, created_at";

fn va_row(r: &Row<'_>) -> rusqlite::Result<VirtualAccount> {
    Ok(VirtualAccount {
        id: r.get(0)?,
        account_id: r.get(1)?,
        name: r.get(2)?,
        description: r.get(3)?,
        synced: r.get(4)?,
        license_count: r.get(5)?,
        instance_count: r.get(6)?,
        created_at: r.get(7)?,
    })
}

fn duplicate(kind: &str, name: &str) -> StoreError {
    // The unique indexes ignore case (migration 0015), so say so: 'ACME' clashes with 'Acme'.
    DomainError::duplicate(
        "name",
        format!("{kind} '{name}' already exists (names are compared ignoring case)."),
    )
    .into()
}

fn map_unique(kind: &'static str, name: String) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| {
        if is_unique_violation(&e) {
            duplicate(kind, &name)
        } else {
            e.into()
        }
    }
}

pub fn list(
    conn: &Connection,
    who: &Principal,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<Account>> {
    let sql = format!(
        "SELECT {ACCOUNT_COLUMNS} FROM accounts a
         WHERE (?1 IS NULL OR a.name > ?1) AND (?2 IS NULL OR a.id = ?2)
         ORDER BY a.name LIMIT ?3"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![after, who.account_filter(), limit + 1], account_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(page::from_rows(rows, limit, |a| a.name.clone()))
}

/// The account named `name`, if the caller may see it.
pub fn find(conn: &Connection, who: &Principal, name: &str) -> Result<Account> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.name = ?1");
    conn.prepare_cached(&sql)?
        .query_row([name], account_row)
        .optional()?
        .filter(|a| who.can_see_account(a.id))
        .ok_or_else(|| StoreError::not_found(format!("account '{name}'")))
}

/// An account's id by name, for system-level callers (no visibility check).
pub fn id_by_name(conn: &Connection, name: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT id FROM accounts WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?)
}

/// Refuses callers whose role may not change this account's contents.
pub fn require_edit(who: &Principal, account: &Account) -> Result<()> {
    if who.can_edit_account(account.id) {
        Ok(())
    } else {
        Err(DomainError::Forbidden(format!(
            "Your role may not change account '{}'.",
            account.name
        ))
        .into())
    }
}

/// Like `find`, and the caller must be allowed to change the account's contents.
pub fn find_editable(conn: &Connection, who: &Principal, name: &str) -> Result<Account> {
    let account = find(conn, who, name)?;
    require_edit(who, &account)?;
    Ok(account)
}

/// The virtual account a transfer goes to: another one of the same account.
pub fn transfer_target(
    conn: &Connection,
    account: &Account,
    from: &VirtualAccount,
    to_name: &str,
) -> Result<VirtualAccount> {
    let to = find_va(conn, account, to_name).map_err(|_| {
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

pub fn create(
    tx: &Connection,
    who: &Principal,
    now: i64,
    name: &str,
    description: &str,
) -> Result<Account> {
    if !who.is_system_admin() {
        return Err(DomainError::Forbidden("Only system admins create accounts.".into()).into());
    }
    let name = names::name("name", name)?;
    let description = names::description(description)?;
    tx.execute(
        "INSERT INTO accounts (name, description, created_at) VALUES (?1, ?2, ?3)",
        params![name, description, now],
    )
    .map_err(map_unique("Account", name.clone()))?;
    let id = tx.last_insert_rowid();
    events::record(
        tx,
        now,
        NewEvent {
            actor: &who.actor,
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

/// Renames (system admins) and/or re-describes (anyone who may edit) an account.
pub fn update(
    tx: &Connection,
    who: &Principal,
    now: i64,
    name: &str,
    new_name: Option<&str>,
    new_description: Option<&str>,
) -> Result<Account> {
    let before = find_editable(tx, who, name)?;
    let new_name = match new_name {
        Some(n) if n.trim() != before.name => {
            if !who.is_system_admin() {
                return Err(
                    DomainError::Forbidden("Only system admins rename accounts.".into()).into(),
                );
            }
            names::name("name", n)?
        }
        _ => before.name.clone(),
    };
    let description = match new_description {
        Some(d) => names::description(d)?,
        None => before.description.clone(),
    };
    tx.execute(
        "UPDATE accounts SET name = ?1, description = ?2 WHERE id = ?3",
        params![new_name, description, before.id],
    )
    .map_err(map_unique("Account", new_name.clone()))?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: &who.actor,
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
        ..before
    })
}

/// Deletes an account and its empty virtual accounts. Refused while any virtual account
/// holds licenses or instances, or while people or API clients belong to the account.
pub fn delete(tx: &Connection, who: &Principal, now: i64, name: &str) -> Result<()> {
    let account = find(tx, who, name)?;
    if !who.is_system_admin() {
        return Err(DomainError::Forbidden("Only system admins delete accounts.".into()).into());
    }
    let (busy_vas, licenses, instances): (i64, i64, i64) = tx.query_row(
        "SELECT count(*), coalesce(sum(license_count), 0), coalesce(sum(instance_count), 0)
         FROM virtual_accounts WHERE account_id = ?1 AND (license_count > 0 OR instance_count > 0)",
        [account.id],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    if busy_vas > 0 {
        return Err(DomainError::conflict(
            "account_in_use",
            format!(
                "Account '{name}' still has {licenses} license(s) and {instances} instance(s) in \
                 {busy_vas} virtual account(s). Remove or transfer them first."
            ),
        )
        .into());
    }
    let members: i64 = tx.query_row(
        "SELECT (SELECT count(*) FROM users WHERE account_id = ?1)
              + (SELECT count(*) FROM api_clients WHERE account_id = ?1)",
        [account.id],
        |r| r.get(0),
    )?;
    if members > 0 {
        return Err(DomainError::conflict(
            "account_in_use",
            format!(
                "Account '{name}' still has {members} user(s) or API client(s). Remove them first."
            ),
        )
        .into());
    }
    tx.execute("DELETE FROM accounts WHERE id = ?1", [account.id])?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: &who.actor,
            action: "account.deleted",
            account: Some((account.id, &account.name)),
            target: &account.name,
            detail: json!({ "description": account.description, "virtual_accounts": account.va_count }),
        },
    )?;
    Ok(())
}

/// Number of accounts and virtual accounts the caller can see, for the dashboard.
pub fn totals(conn: &Connection, who: &Principal) -> Result<(i64, i64)> {
    Ok(conn.query_row(
        "SELECT (SELECT count(*) FROM accounts WHERE ?1 IS NULL OR id = ?1),
                (SELECT count(*) FROM virtual_accounts WHERE ?1 IS NULL OR account_id = ?1)",
        [who.account_filter()],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// Every account's name and id, for select menus (system admins only see this).
pub fn all_names(conn: &Connection) -> Result<Vec<(i64, String)>> {
    let rows = conn
        .prepare_cached("SELECT id, name FROM accounts ORDER BY name")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub fn list_vas(
    conn: &Connection,
    account: &Account,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<VirtualAccount>> {
    let sql = format!(
        "SELECT {VA_COLUMNS} FROM virtual_accounts
         WHERE account_id = ?1 AND (?2 IS NULL OR name > ?2) ORDER BY name LIMIT ?3"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![account.id, after, limit + 1], va_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(page::from_rows(rows, limit, |v| v.name.clone()))
}

pub fn find_va(conn: &Connection, account: &Account, name: &str) -> Result<VirtualAccount> {
    let sql =
        format!("SELECT {VA_COLUMNS} FROM virtual_accounts WHERE account_id = ?1 AND name = ?2");
    conn.prepare_cached(&sql)?
        .query_row(params![account.id, name], va_row)
        .optional()?
        .ok_or_else(|| {
            StoreError::not_found(format!(
                "virtual account '{name}' in account '{}'",
                account.name
            ))
        })
}

pub fn create_va(
    tx: &Connection,
    who: &Principal,
    now: i64,
    account: &Account,
    name: &str,
    description: &str,
) -> Result<VirtualAccount> {
    require_edit(who, account)?;
    let name = names::name("name", name)?;
    let description = names::description(description)?;
    tx.execute(
        "INSERT INTO virtual_accounts (account_id, name, description, created_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![account.id, name, description, now],
    )
    .map_err(map_unique("Virtual account", name.clone()))?;
    let id = tx.last_insert_rowid();
    events::record(
        tx,
        now,
        NewEvent {
            actor: &who.actor,
            action: "virtual_account.created",
            account: Some((account.id, &account.name)),
            target: &name,
            detail: json!({ "description": description }),
        },
    )?;
    Ok(VirtualAccount {
        id,
        account_id: account.id,
        name,
        description,
        synced: false,
        license_count: 0,
        instance_count: 0,
        created_at: now,
    })
}

pub fn update_va(
    tx: &Connection,
    who: &Principal,
    now: i64,
    account: &Account,
    name: &str,
    new_name: Option<&str>,
    new_description: Option<&str>,
) -> Result<VirtualAccount> {
    let before = find_va(tx, account, name)?;
    require_edit(who, account)?;
    let new_name = match new_name {
        Some(n) => names::name("name", n)?,
        None => before.name.clone(),
    };
    let description = match new_description {
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
    tx.execute(
        "UPDATE virtual_accounts SET name = ?1, description = ?2 WHERE id = ?3",
        params![new_name, description, before.id],
    )
    .map_err(map_unique("Virtual account", new_name.clone()))?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: &who.actor,
            action: "virtual_account.updated",
            account: Some((account.id, &account.name)),
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
        ..before
    })
}

pub fn delete_va(
    tx: &Connection,
    who: &Principal,
    now: i64,
    account: &Account,
    name: &str,
) -> Result<()> {
    let va = find_va(tx, account, name)?;
    require_edit(who, account)?;
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
                "Virtual account '{name}' still holds {} license(s) and {} instance(s). \
                 Remove or transfer them first.",
                va.license_count, va.instance_count
            ),
        )
        .into());
    }
    tx.execute("DELETE FROM virtual_accounts WHERE id = ?1", [va.id])?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: &who.actor,
            action: "virtual_account.deleted",
            account: Some((account.id, &account.name)),
            target: &va.name,
            detail: json!({ "description": va.description }),
        },
    )?;
    Ok(())
}

/// The account `a` (if visible to the caller) and its virtual account `va`.
pub fn find_with_va(
    conn: &Connection,
    who: &Principal,
    a: &str,
    va: &str,
) -> Result<(Account, VirtualAccount)> {
    let account = find(conn, who, a)?;
    let va = find_va(conn, &account, va)?;
    Ok((account, va))
}

/// The visible virtual accounts that hold licenses, with their account's name.
pub fn vas_with_licenses(
    conn: &Connection,
    who: &Principal,
) -> Result<Vec<(String, VirtualAccount)>> {
    let sql = format!(
        "SELECT a.name, {} FROM virtual_accounts v JOIN accounts a ON a.id = v.account_id
         WHERE v.license_count > 0 AND (?1 IS NULL OR a.id = ?1) ORDER BY a.name, v.name",
        VA_COLUMNS
            .split(", ")
            .map(|c| format!("v.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map([who.account_filter()], |r| {
            let name: String = r.get(0)?;
            let va = VirtualAccount {
                id: r.get(1)?,
                account_id: r.get(2)?,
                name: r.get(3)?,
                description: r.get(4)?,
                synced: r.get(5)?,
                license_count: r.get(6)?,
                instance_count: r.get(7)?,
                created_at: r.get(8)?,
            };
            Ok((name, va))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

#[cfg(test)]
mod nocase_tests {
    use crate::store::migrations::{self, MIGRATIONS};
    use rusqlite::Connection;

    /// Migration 0015 keeps the oldest of names that differ only in case and renames the
    /// others by appending their id, then refuses new clashes.
    #[test]
    fn names_differing_in_case_are_renamed_then_refused() {
        let sql = include_str!("migrations/0015_names_nocase.sql");
        let before = migrations::version_before(sql).unwrap();
        let mut conn = Connection::open_in_memory().unwrap();
        MIGRATIONS.to_version(&mut conn, before).unwrap();
        conn.execute_batch(
            "INSERT INTO accounts (id, name, description, created_at) VALUES
                 (1, 'Acme', '', 0), (2, 'ACME', '', 0), (3, 'Other', '', 0);
             INSERT INTO virtual_accounts (id, account_id, name, description, created_at) VALUES
                 (1, 1, 'Lab', '', 0), (2, 1, 'lab', '', 0), (3, 3, 'lab', '', 0);
             INSERT INTO users (id, username, password_hash, role, created_at) VALUES
                 (1, 'peter', 'x', 'viewer', 0), (2, 'Peter', 'x', 'viewer', 0);",
        )
        .unwrap();
        migrations::migrate(&mut conn).unwrap();
        let names: Vec<String> = conn
            .prepare("SELECT name FROM accounts ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(names, ["Acme", "ACME-2", "Other"]);
        let vas: Vec<String> = conn
            .prepare("SELECT name FROM virtual_accounts ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(vas, ["Lab", "lab-2", "lab"], "per account");
        let users: Vec<String> = conn
            .prepare("SELECT username FROM users ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(users, ["peter", "Peter-2"]);
        assert!(conn
            .execute(
                "INSERT INTO accounts (name, description, created_at) VALUES ('aCmE', '', 0)",
                [],
            )
            .is_err());
    }
}
