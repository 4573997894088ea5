//! Timers that end what an instance was given: authorizations not renewed for 90 days
//! lapse, and registrations whose id certificate ran out unrenewed end as if the product
//! had deregistered. Each call handles a bounded number, so one transaction stays short.

use super::counters;
use super::events::{self, NewEvent};
use super::instances::{delete, row, set_status, va_and_account, Instance, COLUMNS};
use super::Result;
use crate::domain::instance::InstanceStatus;
use crate::domain::timers;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;

/// Lapses authorizations not renewed for 90 days: such instances hold no licenses until
/// they report again. Handles at most `limit` per call so one transaction stays short.
pub fn expire_authorizations(tx: &Connection, now: i64, limit: u32) -> Result<usize> {
    // The mark index narrows the search to instances lapsing today or earlier; the exact
    // time decides.
    let sql = format!(
        "SELECT {COLUMNS} FROM instances
         WHERE auth_expiry_mark IS NOT NULL AND auth_expiry_mark < ?1 AND auth_expires_at <= ?2
         LIMIT ?3"
    );
    let due: Vec<Instance> = tx
        .prepare_cached(&sql)?
        .query_map(params![timers::expiry_marks_due(now), now, limit], row)?
        .collect::<rusqlite::Result<_>>()?;
    for inst in &due {
        counters::add_instance_usage(tx, inst.key, inst.va_id, inst.export_controlled, -1)?;
        tx.prepare_cached(
            "UPDATE instances SET auth_expires_at = NULL, auth_expiry_mark = NULL, usage = NULL,
               usage_fp = NULL WHERE id = ?1",
        )?
        .execute([inst.key])?;
        set_status(
            tx,
            inst.into(),
            InstanceStatus::AuthorizationExpired,
            now,
            "no usage report for 90 days",
        )?;
        let (va_name, account_id, account_name) = va_and_account(tx, inst.va_id)?;
        events::record(
            tx,
            now,
            NewEvent {
                actor: "system",
                action: "instance.authorization_expired",
                account: Some((account_id, &account_name)),
                target: &inst.id,
                detail: json!({ "virtual_account": va_name }),
            },
        )?;
    }
    Ok(due.len())
}

/// Instances read per step of `registrations_ended`: one short read transaction each.
pub const REGISTRATION_STEP: i64 = 100_000;

/// Of the next `step` instances by key after `after` (`REGISTRATION_STEP` for the timer),
/// the keys of those whose
/// registration (id certificate) ended unrenewed by `now`; and the last key read when
/// instances may follow. No index holds the certificate's expiry (migration 0027): a
/// renewal moved its entry on two random pages of it, while this walk of the table in key
/// order, on a reader, costs about 0.2 s of one core a minute at a million instances.
pub fn registrations_ended(
    conn: &Connection,
    now: i64,
    after: i64,
    step: i64,
) -> Result<(Vec<i64>, Option<i64>)> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, cert_expires_at <= ?2 FROM instances WHERE id > ?1 ORDER BY id LIMIT ?3",
    )?;
    let mut rows = stmt.query(params![after, now, step])?;
    let (mut due, mut read, mut last) = (Vec::new(), 0, after);
    while let Some(r) = rows.next()? {
        last = r.get(0)?;
        read += 1;
        if r.get::<_, bool>(1)? {
            due.push(last);
        }
    }
    Ok((due, (read == step).then_some(last)))
}

/// Treats the instances of `keys` whose registration ended unrenewed by `now` as
/// deregistered: deleted and their licenses released, as if the product had deregistered.
/// A key renewed or removed since it was read is left alone.
pub fn end_registrations(tx: &Connection, keys: &[i64], now: i64) -> Result<usize> {
    let sql = format!("SELECT {COLUMNS} FROM instances WHERE id = ?1 AND cert_expires_at <= ?2");
    let mut ended = 0;
    for key in keys {
        let due = tx
            .prepare_cached(&sql)?
            .query_row(params![key, now], row)
            .optional()?;
        if let Some(inst) = due {
            end_registration(tx, &inst, now)?;
            ended += 1;
        }
    }
    Ok(ended)
}

/// Ends one instance whose registration expired: deleted, licenses released, event
/// `instance.registration_expired`.
pub fn end_registration(tx: &Connection, inst: &Instance, now: i64) -> Result<()> {
    delete(tx, inst, now, "system", "instance.registration_expired")
}
