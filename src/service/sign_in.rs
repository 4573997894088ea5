//! What the log keeps of sign-in attempts: a login, a failed login, and the backoff a
//! failure started.
//! These are the one use case with no capability: the caller is, by definition, not yet
//! anyone. The username is the one typed (it may name no user) and is cut to 64 chars.

use super::Result;
use crate::store::events::{self, NewEvent};
use rusqlite::Connection;
use serde_json::json;

/// A failed login from `address`; `wait_seconds` > 0 when it started (or lengthened) the
/// backoff of this (address, username) pair.
pub fn record_failure(
    tx: &Connection,
    now: i64,
    username: &str,
    address: &str,
    failures: u32,
    wait_seconds: i64,
) -> Result<()> {
    let username: String = username.chars().take(64).collect();
    events::record(
        tx,
        now,
        NewEvent {
            actor: &username,
            action: "user.login_failed",
            account: None,
            target: &username,
            detail: json!({ "address": address, "failures": failures }),
        },
    )?;
    if wait_seconds > 0 {
        events::record(
            tx,
            now,
            NewEvent {
                actor: &username,
                action: "user.login_backoff",
                account: None,
                target: &username,
                detail: json!({ "address": address, "failures": failures, "wait_seconds": wait_seconds }),
            },
        )?;
    }
    Ok(())
}

/// A login that succeeded, recorded in the same transaction as its session.
pub fn record_success(tx: &Connection, now: i64, username: &str, address: &str) -> Result<()> {
    events::record(
        tx,
        now,
        NewEvent {
            actor: &format!("user:{username}"),
            action: "user.logged_in",
            account: None,
            target: username,
            detail: json!({ "address": address }),
        },
    )?;
    Ok(())
}
