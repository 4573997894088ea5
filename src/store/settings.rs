//! Account and virtual-account settings: plain reads and writes of their columns.

use super::Result;
use rusqlite::{params, Connection};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AccountSettings {
    pub reservation_enabled: bool,
    pub export_allowed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct VaSettings {
    pub export_approval: bool,
}

pub fn account(conn: &Connection, account_id: i64) -> Result<AccountSettings> {
    Ok(conn
        .prepare_cached("SELECT reservation_enabled, export_allowed FROM accounts WHERE id = ?1")?
        .query_row([account_id], |r| {
            Ok(AccountSettings {
                reservation_enabled: r.get(0)?,
                export_allowed: r.get(1)?,
            })
        })?)
}

pub fn set_account(conn: &Connection, account_id: i64, s: AccountSettings) -> Result<()> {
    conn.prepare_cached(
        "UPDATE accounts SET reservation_enabled = ?2, export_allowed = ?3 WHERE id = ?1",
    )?
    .execute(params![account_id, s.reservation_enabled, s.export_allowed])?;
    Ok(())
}

pub fn va(conn: &Connection, va_id: i64) -> Result<VaSettings> {
    Ok(conn
        .prepare_cached("SELECT export_approval FROM virtual_accounts WHERE id = ?1")?
        .query_row([va_id], |r| {
            Ok(VaSettings {
                export_approval: r.get(0)?,
            })
        })?)
}

pub fn set_va(conn: &Connection, va_id: i64, s: VaSettings) -> Result<()> {
    conn.prepare_cached("UPDATE virtual_accounts SET export_approval = ?2 WHERE id = ?1")?
        .execute(params![va_id, s.export_approval])?;
    Ok(())
}
