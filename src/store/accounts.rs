//! Accounts and their virtual accounts: plain SQL on typed rows. Who may see or change
//! them, and the rules for changing them, are `service::accounts` and
//! `service::virtual_accounts`.

use super::page::{self, Page};
use super::{is_unique_violation, Result, StoreError};
use crate::domain::DomainError;
use rusqlite::{params, Connection, OptionalExtension, Row};

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

/// Accounts by name, one page; `scope` (an account id) limits the list to that account.
pub fn list(
    conn: &Connection,
    scope: Option<i64>,
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
        .query_map(params![after, scope, limit + 1], account_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(page::from_rows(rows, limit, |a| a.name.clone()))
}

/// The account named `name`, if there is one (who may see it is `service::access`'s call).
pub fn find(conn: &Connection, name: &str) -> Result<Option<Account>> {
    let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts a WHERE a.name = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([name], account_row)
        .optional()?)
}

/// An account's id by name, for system-level callers (no visibility check).
pub fn id_by_name(conn: &Connection, name: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT id FROM accounts WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?)
}

/// Inserts an account (name and description already checked); its id.
pub fn insert(tx: &Connection, name: &str, description: &str, now: i64) -> Result<i64> {
    tx.execute(
        "INSERT INTO accounts (name, description, created_at) VALUES (?1, ?2, ?3)",
        params![name, description, now],
    )
    .map_err(map_unique("Account", name.to_string()))?;
    Ok(tx.last_insert_rowid())
}

pub fn set_name(tx: &Connection, id: i64, name: &str, description: &str) -> Result<()> {
    tx.execute(
        "UPDATE accounts SET name = ?1, description = ?2 WHERE id = ?3",
        params![name, description, id],
    )
    .map_err(map_unique("Account", name.to_string()))?;
    Ok(())
}

/// What still lives in an account's virtual accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holdings {
    /// Virtual accounts holding any license or instance.
    pub busy_vas: i64,
    pub licenses: i64,
    pub instances: i64,
}

/// The account's licenses and instances, from the per-VA counters (no instance is read).
pub fn holdings(conn: &Connection, account_id: i64) -> Result<Holdings> {
    Ok(conn.query_row(
        "SELECT count(*), coalesce(sum(license_count), 0), coalesce(sum(instance_count), 0)
         FROM virtual_accounts WHERE account_id = ?1 AND (license_count > 0 OR instance_count > 0)",
        [account_id],
        |r| {
            Ok(Holdings {
                busy_vas: r.get(0)?,
                licenses: r.get(1)?,
                instances: r.get(2)?,
            })
        },
    )?)
}

/// People and API clients that belong to the account.
pub fn members(conn: &Connection, account_id: i64) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT (SELECT count(*) FROM users WHERE account_id = ?1)
              + (SELECT count(*) FROM api_clients WHERE account_id = ?1)",
        [account_id],
        |r| r.get(0),
    )?)
}

/// Deletes the account row (its empty virtual accounts go with it).
pub fn delete(tx: &Connection, id: i64) -> Result<()> {
    tx.execute("DELETE FROM accounts WHERE id = ?1", [id])?;
    Ok(())
}

/// Number of accounts and virtual accounts in `scope` (all when `None`), for the dashboard.
pub fn totals(conn: &Connection, scope: Option<i64>) -> Result<(i64, i64)> {
    Ok(conn.query_row(
        "SELECT (SELECT count(*) FROM accounts WHERE ?1 IS NULL OR id = ?1),
                (SELECT count(*) FROM virtual_accounts WHERE ?1 IS NULL OR account_id = ?1)",
        [scope],
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

/// Inserts a virtual account (name and description already checked).
pub fn insert_va(
    tx: &Connection,
    account_id: i64,
    name: &str,
    description: &str,
    now: i64,
) -> Result<VirtualAccount> {
    tx.execute(
        "INSERT INTO virtual_accounts (account_id, name, description, created_at)
         VALUES (?1, ?2, ?3, ?4)",
        params![account_id, name, description, now],
    )
    .map_err(map_unique("Virtual account", name.to_string()))?;
    Ok(VirtualAccount {
        id: tx.last_insert_rowid(),
        account_id,
        name: name.to_string(),
        description: description.to_string(),
        synced: false,
        license_count: 0,
        instance_count: 0,
        created_at: now,
    })
}

pub fn set_va_name(tx: &Connection, id: i64, name: &str, description: &str) -> Result<()> {
    tx.execute(
        "UPDATE virtual_accounts SET name = ?1, description = ?2 WHERE id = ?3",
        params![name, description, id],
    )
    .map_err(map_unique("Virtual account", name.to_string()))?;
    Ok(())
}

pub fn delete_va(tx: &Connection, id: i64) -> Result<()> {
    tx.execute("DELETE FROM virtual_accounts WHERE id = ?1", [id])?;
    Ok(())
}

/// The virtual accounts in `scope` (all when `None`) that hold licenses, with their
/// account's name.
pub fn vas_with_licenses(
    conn: &Connection,
    scope: Option<i64>,
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
        .query_map([scope], |r| {
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
