//! Moving a reservation on once its code is out: confirm the installed code, and end it
//! by cancel, remove (system admins, with a reason) or a verified return code, each
//! releasing what it holds.

use super::{detail, event, load, Detail};
use crate::domain::reservation::{self as rules, ReturnCode, Transition};
use crate::domain::DomainError;
use crate::service::access::{EditAccount, SystemAdmin};
use crate::service::Result;
use crate::store::reservations::{self as repo, Reservation, StateChange};
use rusqlite::Connection;
use serde_json::json;
use std::collections::BTreeMap;

pub fn confirm(
    tx: &Connection,
    cap: &EditAccount,
    now: i64,
    id: &str,
    confirmation_code: &str,
) -> Result<Detail> {
    let r = load(tx, cap.account.id, id)?;
    let next = r.state.apply(Transition::Confirm)?;
    let parsed = rules::parse_authorization(&r.authorization_code)?;
    let expected = rules::confirmation_code(&parsed.code_bytes, &parsed.authorization.key_hash);
    if confirmation_code.trim().to_ascii_lowercase() != expected {
        return Err(DomainError::invalid(
            "invalid_confirmation_code",
            "confirmation_code",
            "This confirmation code does not match the reservation's current authorization code.",
        )
        .into());
    }
    // The new code is installed: each tag holds its new count alone.
    let rows: BTreeMap<String, (i64, i64)> = repo::licenses_of(tx, id)?
        .into_iter()
        .filter(|h| h.count > 0)
        .map(|h| (h.tag, (h.count, h.count)))
        .collect();
    repo::set_held(tx, id, r.va_id, &rows)?;
    repo::set_state(
        tx,
        id,
        &StateChange {
            state: next,
            now,
            reason: None,
            return_fingerprint: None,
        },
    )?;
    let r = load(tx, cap.account.id, id)?;
    event(
        tx,
        now,
        &cap.actor,
        (cap.account.id, &cap.account.name),
        "reservation.confirmed",
        &r,
        json!({ "version": r.version }),
    )?;
    detail(tx, r)
}

/// Ends a reservation: releases what it holds and records the new state.
#[allow(clippy::too_many_arguments)]
fn end(
    tx: &Connection,
    cap: &EditAccount,
    actor: &str,
    now: i64,
    r: &Reservation,
    change: StateChange<'_>,
    action: &str,
    extra: serde_json::Value,
) -> Result<Detail> {
    repo::release(tx, &r.id, r.va_id)?;
    repo::set_state(tx, &r.id, &change)?;
    let r = load(tx, cap.account.id, &r.id)?;
    event(
        tx,
        now,
        actor,
        (cap.account.id, &cap.account.name),
        action,
        &r,
        extra,
    )?;
    detail(tx, r)
}

pub fn cancel(tx: &Connection, cap: &EditAccount, now: i64, id: &str) -> Result<Detail> {
    let r = load(tx, cap.account.id, id)?;
    let state = r.state.apply(Transition::Cancel)?;
    let change = StateChange {
        state,
        now,
        reason: None,
        return_fingerprint: None,
    };
    end(
        tx,
        cap,
        &cap.actor,
        now,
        &r,
        change,
        "reservation.cancelled",
        json!({}),
    )
}

pub fn remove(
    tx: &Connection,
    cap: &EditAccount,
    admin: &SystemAdmin,
    now: i64,
    id: &str,
    reason: &str,
) -> Result<Detail> {
    let r = load(tx, cap.account.id, id)?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(DomainError::invalid(
            "reason_required",
            "reason",
            "Say why the reservation is removed without a return code (e.g. the product was lost).",
        )
        .into());
    }
    let state = r.state.apply(Transition::Remove)?;
    let change = StateChange {
        state,
        now,
        reason: Some(reason),
        return_fingerprint: None,
    };
    end(
        tx,
        cap,
        &admin.actor,
        now,
        &r,
        change,
        "reservation.removed",
        json!({ "reason": reason }),
    )
}

/// Releases the reservation a return code is for: the code names the agent's key and
/// signs the reservation's id and current code, so an old code's return code fails.
pub fn return_code(
    tx: &Connection,
    cap: &EditAccount,
    now: i64,
    code: &ReturnCode,
) -> Result<Detail> {
    let fingerprint = code.fingerprint();
    if repo::return_code_used(tx, &fingerprint)? {
        return Err(DomainError::conflict(
            "already_returned",
            "This return code was entered before; its licenses are already released.",
        )
        .into());
    }
    let key_hash = rules::key_hash_hex(&code.key_hash());
    let r = repo::by_key_hash(tx, cap.account.id, &key_hash)?
        .into_iter()
        .find(|r| code.verifies(&r.id, &r.code_hash))
        .ok_or_else(|| {
            rules::invalid_return_code(
                "This return code matches no reservation of this account's current authorization codes.",
            )
        })?;
    let state = r.state.apply(Transition::Return)?;
    let change = StateChange {
        state,
        now,
        reason: None,
        return_fingerprint: Some(&fingerprint),
    };
    end(
        tx,
        cap,
        &cap.actor,
        now,
        &r,
        change,
        "reservation.returned",
        json!({}),
    )
}
