//! Adding and removing people (system admins, or whoever runs the CLI on the host): a
//! username is checked and an account given exactly when the role needs one; nobody
//! removes themselves, and the last system admin stays. The rest of user management
//! (roles, resets, disabling) is `service::user_admin`.

use super::access::SystemAdmin;
use super::Result;
use crate::domain::{names, DomainError, Role};
use crate::store::events::{self, NewEvent};
use crate::store::users::{self, User, UserRow};
use crate::store::StoreError;
use rusqlite::Connection;
use serde_json::json;

/// A person to add; the password is hashed by the caller (off the async executor).
pub struct NewUser<'a> {
    pub username: &'a str,
    pub password_hash: &'a str,
    pub role: Role,
    /// The account's name; empty or absent means none.
    pub account: Option<&'a str>,
    pub must_change_password: bool,
}

pub fn create(tx: &Connection, cap: &SystemAdmin, now: i64, new: NewUser<'_>) -> Result<User> {
    let username = names::username(new.username)?;
    let account_id = users::account_id_by_name(tx, new.account)?;
    new.role.check_scope(account_id.is_some())?;
    let user = users::insert(
        tx,
        now,
        UserRow {
            username: &username,
            password_hash: new.password_hash,
            role: new.role,
            account_id,
            must_change_password: new.must_change_password,
        },
    )?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: &cap.actor,
            action: "user.created",
            account: account_id.zip(new.account),
            target: &username,
            detail: json!({ "role": new.role.as_str() }),
        },
    )?;
    Ok(user)
}

pub fn remove(tx: &Connection, cap: &SystemAdmin, now: i64, username: &str) -> Result<()> {
    let user = users::find_by_username(tx, username)?
        .ok_or_else(|| StoreError::not_found(format!("user '{username}'")))?;
    if cap.actor == format!("user:{}", user.username) {
        return Err(
            DomainError::conflict("cannot_remove_self", "You cannot remove yourself.").into(),
        );
    }
    if user.role == Role::SystemAdmin && users::admin_count(tx)? <= 1 {
        return Err(DomainError::conflict(
            "last_system_admin",
            "The last system admin cannot be removed.",
        )
        .into());
    }
    users::delete(tx, user.id)?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: &cap.actor,
            action: "user.removed",
            account: user.account_id.zip(user.account_name.as_deref()),
            target: &user.username,
            detail: json!({ "role": user.role.as_str() }),
        },
    )?;
    Ok(())
}
