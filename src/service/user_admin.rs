//! User management by system admins (issue #16): change a user's role and account (scope
//! rules as on creation), reset a password (the caller generates and hashes it; the user
//! must change it at the next login), disable and enable. Nobody changes, resets or
//! disables themselves here, and the last enabled system admin stays one. Each change
//! ends what it must (sessions) and records its event in the same transaction.

use super::access::SystemAdmin;
use super::Result;
use crate::domain::{DomainError, Role};
use crate::store::events::{self, NewEvent};
use crate::store::users::{self, User};
use crate::store::{user_admin, StoreError};
use rusqlite::Connection;
use serde_json::json;

/// A role and account change, parsed at the edge.
#[derive(Debug, Clone)]
pub struct RoleChange {
    pub role: Role,
    pub account: Option<String>,
}

impl RoleChange {
    pub fn parse(role: &str, account: &str) -> Result<Self> {
        Ok(RoleChange {
            role: role.parse::<Role>()?,
            account: Some(account.trim())
                .filter(|a| !a.is_empty())
                .map(String::from),
        })
    }
}

fn target(tx: &Connection, cap: &SystemAdmin, username: &str) -> Result<User> {
    let user = users::find_by_username(tx, username)?
        .ok_or_else(|| StoreError::not_found(format!("user '{username}'")))?;
    if cap.actor == format!("user:{}", user.username) {
        return Err(DomainError::conflict(
            "cannot_change_self",
            "You cannot change, reset or disable yourself here; use your own password page.",
        )
        .into());
    }
    Ok(user)
}

/// Refuses to take the last enabled system admin away.
fn keep_an_admin(tx: &Connection, user: &User) -> Result<()> {
    if user.role == Role::SystemAdmin
        && !user_admin::is_disabled(tx, user.id)?
        && user_admin::enabled_admins(tx)? <= 1
    {
        return Err(DomainError::conflict(
            "last_system_admin",
            "The last enabled system admin must stay one.",
        )
        .into());
    }
    Ok(())
}

fn record(
    tx: &Connection,
    cap: &SystemAdmin,
    now: i64,
    action: &str,
    user: &User,
    detail: serde_json::Value,
) -> Result<()> {
    events::record(
        tx,
        now,
        NewEvent {
            actor: &cap.actor,
            action,
            account: user.account_id.zip(user.account_name.as_deref()),
            target: &user.username,
            detail,
        },
    )?;
    Ok(())
}

/// Sets role and account. The new principal applies from the user's next request.
pub fn change_role(
    tx: &Connection,
    cap: &SystemAdmin,
    now: i64,
    username: &str,
    change: &RoleChange,
) -> Result<()> {
    let user = target(tx, cap, username)?;
    let account_id = users::account_id_by_name(tx, change.account.as_deref())?;
    change.role.check_scope(account_id.is_some())?;
    if change.role == user.role && account_id == user.account_id {
        return Ok(());
    }
    if change.role != Role::SystemAdmin {
        keep_an_admin(tx, &user)?;
    }
    user_admin::set_role(tx, user.id, change.role, account_id)?;
    record(
        tx,
        cap,
        now,
        "user.updated",
        &user,
        json!({
            "role": change.role.as_str(),
            "account": change.account,
            "old_role": user.role.as_str(),
            "old_account": user.account_name,
        }),
    )
}

/// Sets a new password (hashed by the caller) that must be changed at the next login, and
/// ends the user's sessions.
pub fn reset_password(
    tx: &Connection,
    cap: &SystemAdmin,
    now: i64,
    username: &str,
    password_hash: &str,
) -> Result<()> {
    let user = target(tx, cap, username)?;
    user_admin::reset_password(tx, user.id, password_hash)?;
    let ended = user_admin::end_sessions(tx, user.id)?;
    record(
        tx,
        cap,
        now,
        "user.password_reset",
        &user,
        json!({ "sessions_ended": ended }),
    )
}

/// Disables (ending every session at once) or enables a user.
pub fn set_disabled(
    tx: &Connection,
    cap: &SystemAdmin,
    now: i64,
    username: &str,
    disabled: bool,
) -> Result<()> {
    let user = target(tx, cap, username)?;
    if disabled == user_admin::is_disabled(tx, user.id)? {
        return Ok(());
    }
    if disabled {
        keep_an_admin(tx, &user)?;
        user_admin::set_disabled(tx, user.id, Some(now))?;
        let ended = user_admin::end_sessions(tx, user.id)?;
        record(
            tx,
            cap,
            now,
            "user.disabled",
            &user,
            json!({ "sessions_ended": ended }),
        )
    } else {
        user_admin::set_disabled(tx, user.id, None)?;
        record(tx, cap, now, "user.enabled", &user, json!({}))
    }
}
