//! Removing a person (system admins only): nobody removes themselves, and the last
//! system admin stays. The rest of user management is `service::user_admin`.

use super::access::SystemAdmin;
use super::Result;
use crate::domain::{DomainError, Role};
use crate::store::events::{self, NewEvent};
use crate::store::users;
use crate::store::StoreError;
use rusqlite::Connection;
use serde_json::json;

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
