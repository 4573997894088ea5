//! Collects the alerts of an account (or all) from the current state (rules in
//! `domain::alerts`); alerts clear when their cause does (`store::notifications` keeps
//! only first-seen times and acknowledgements, keyed by the alert's stable id).

use super::{accounts, licenses, sync_state, Result};
use crate::domain::alerts::{self, Alert};
use crate::domain::compliance::PoolStatus;
use chrono::NaiveDate;
use rusqlite::Connection;

/// The alerts of `scope` (an account id; every account when `None`).
pub fn collect(
    conn: &Connection,
    scope: Option<i64>,
    now: i64,
    today: NaiveDate,
    overdue_days: i64,
) -> Result<Vec<Alert>> {
    let mut out = vec![];
    for link in sync_state::links(conn)? {
        if scope.is_some_and(|a| a != link.account_id)
            || link.state != crate::domain::sync::LinkState::Registered
        {
            continue;
        }
        out.extend(alerts::sync_overdue(
            &link.account,
            link.last_sync,
            link.created_at,
            now,
            overdue_days,
        ));
        if let Some(exp) = link.registration_expires_at {
            out.extend(alerts::registration_expiring(&link.account, exp, now));
        }
    }
    for (account, va) in accounts::vas_with_licenses(conn, scope)? {
        let (ls, evaluation) = licenses::evaluate(conn, va.id, today)?;
        for l in ls {
            if let Some(p) = evaluation.pools.get(&l.spec.tag) {
                if p.status == PoolStatus::Insufficient {
                    out.push(alerts::license_short(
                        &account,
                        &va.name,
                        &l.spec.name,
                        p.in_use,
                        l.spec.quantity,
                    ));
                }
            }
            if let Some(end) = l.spec.end {
                let end_day = end
                    .and_hms_opt(0, 0, 0)
                    .map(|t| t.and_utc().timestamp())
                    .unwrap_or(0);
                out.extend(alerts::license_expiring(
                    &account,
                    &va.name,
                    &l.spec.name,
                    end_day,
                    now,
                ));
            }
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT a.name, v.name, t.id, t.expires_at FROM tokens t
         JOIN virtual_accounts v ON v.id = t.va_id JOIN accounts a ON a.id = v.account_id
         WHERE t.revoked_at IS NULL AND t.expires_at > ?1 AND t.expires_at <= ?2
           AND (t.max_uses IS NULL OR t.uses < t.max_uses) AND (?3 IS NULL OR a.id = ?3)",
    )?;
    let rows = stmt.query_map(
        rusqlite::params![now, now + alerts::TOKEN_EXPIRY_WINDOW, scope],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        },
    )?;
    for row in rows {
        let (account, va, id, expires) = row?;
        out.extend(alerts::token_expiring(&account, &va, &id, expires, now));
    }
    for k in super::export_keys::pending(conn, scope)? {
        out.push(alerts::export_key_pending(
            &k.account,
            &k.virtual_account,
            &k.instance_id,
            &k.tag,
            k.requested_at,
            now,
        ));
    }
    // Lapsed authorizations: the status counter says which VAs have any, so this never
    // scans the whole instance table. The join order and index are spelled out: left to
    // itself the planner walked every instance in id order (for the ORDER BY), on the
    // writer, at every notification tick.
    let mut stmt = conn.prepare_cached(
        "SELECT a.name, v.name, i.id, i.pid || ':' || i.sn FROM va_status_counts c
         CROSS JOIN instances i INDEXED BY instances_va_status
           ON i.va_id = c.va_id AND i.status = c.status
         JOIN virtual_accounts v ON v.id = c.va_id JOIN accounts a ON a.id = v.account_id
         WHERE c.status = ?2 AND c.n > 0 AND (?1 IS NULL OR a.id = ?1)
         ORDER BY i.id LIMIT 200",
    )?;
    let lapsed = crate::domain::instance::InstanceStatus::AuthorizationExpired.as_str();
    let rows = stmt.query_map(rusqlite::params![scope, lapsed], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    for row in rows {
        let (account, va, id, udi) = row?;
        out.push(alerts::authorization_lapsed(&account, &va, &id, &udi));
    }
    let before = now - alerts::RESERVATION_PENDING_AFTER;
    for (account, r) in super::reservations::waiting_since_before(conn, scope, before)? {
        out.extend(alerts::reservation_pending(
            &account,
            &r.virtual_account,
            &r.id,
            &format!("P:{},S:{}", r.pid, r.sn),
            r.waiting_since,
            now,
        ));
    }
    out.sort_by(|a, b| a.severity.cmp(&b.severity).then(a.account.cmp(&b.account)));
    Ok(out)
}
