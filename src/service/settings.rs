//! Account settings (`reservation_enabled`, `export_allowed`) and VA settings
//! (`export_approval`): read by anyone who sees the account, changed by its editors.

use super::access::{EditAccount, ReadAccount};
use super::Result;
use crate::store::accounts::VirtualAccount;
use crate::store::events::{self, NewEvent};
use crate::store::settings::{self, AccountSettings, VaSettings};
use rusqlite::Connection;
use serde_json::json;

/// A PATCH of account settings: a left-out field stays as it is.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSettingsPatch {
    pub reservation_enabled: Option<bool>,
    pub export_allowed: Option<bool>,
}

#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaSettingsPatch {
    pub export_approval: Option<bool>,
}

pub fn account(conn: &Connection, cap: &ReadAccount) -> Result<AccountSettings> {
    Ok(settings::account(conn, cap.account.id)?)
}

pub fn patch_account(
    tx: &Connection,
    cap: &EditAccount,
    now: i64,
    patch: AccountSettingsPatch,
) -> Result<AccountSettings> {
    let old = settings::account(tx, cap.account.id)?;
    let new = AccountSettings {
        reservation_enabled: patch.reservation_enabled.unwrap_or(old.reservation_enabled),
        export_allowed: patch.export_allowed.unwrap_or(old.export_allowed),
    };
    if new != old {
        settings::set_account(tx, cap.account.id, new)?;
        events::record(
            tx,
            now,
            NewEvent {
                actor: &cap.actor,
                action: "account.settings_changed",
                account: Some((cap.account.id, &cap.account.name)),
                target: &cap.account.name,
                detail: json!(new),
            },
        )?;
    }
    Ok(new)
}

pub fn va(conn: &Connection, _cap: &ReadAccount, va: &VirtualAccount) -> Result<VaSettings> {
    Ok(settings::va(conn, va.id)?)
}

pub fn patch_va(
    tx: &Connection,
    cap: &EditAccount,
    now: i64,
    va: &VirtualAccount,
    patch: VaSettingsPatch,
) -> Result<VaSettings> {
    let old = settings::va(tx, va.id)?;
    let new = VaSettings {
        export_approval: patch.export_approval.unwrap_or(old.export_approval),
    };
    if new != old {
        settings::set_va(tx, va.id, new)?;
        events::record(
            tx,
            now,
            NewEvent {
                actor: &cap.actor,
                action: "virtual_account.settings_changed",
                account: Some((cap.account.id, &cap.account.name)),
                target: &va.name,
                detail: json!(new),
            },
        )?;
    }
    Ok(new)
}
