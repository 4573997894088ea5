//! Which alerts exist now: reads the rows (links, pools, tokens, keys, instances,
//! reservations) and applies the rules of `domain::alerts` to each. Alerts are never
//! stored; they clear when their cause does.

use super::access::Visible;
use super::alerts::Now;
use super::Result;
use crate::domain::alerts::{self, Alert};
use crate::domain::compliance::PoolStatus;
use crate::domain::sync::LinkState;
use crate::store::{accounts, alerts as rows, export_keys, licenses, reservations, sync_state};
use rusqlite::Connection;

/// The alerts the caller sees now, most severe first.
pub fn collect(conn: &Connection, visible: Visible, at: Now) -> Result<Vec<Alert>> {
    let scope = visible.account_filter();
    let now = at.now;
    let mut out = vec![];
    for link in sync_state::links(conn)? {
        if !visible.sees(link.account_id) || link.state != LinkState::Registered {
            continue;
        }
        out.extend(alerts::sync_overdue(
            &link.account,
            link.last_sync,
            link.created_at,
            now,
            at.overdue_days,
        ));
        if let Some(exp) = link.registration_expires_at {
            out.extend(alerts::registration_expiring(&link.account, exp, now));
        }
    }
    for (account, va) in accounts::vas_with_licenses(conn, scope)? {
        let (ls, evaluation) = licenses::evaluate(conn, va.id, at.today)?;
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
    for t in rows::expiring_tokens(conn, scope, now, now + alerts::TOKEN_EXPIRY_WINDOW)? {
        out.extend(alerts::token_expiring(
            &t.account,
            &t.virtual_account,
            &t.id,
            t.expires_at,
            now,
        ));
    }
    for k in export_keys::pending(conn, scope)? {
        out.push(alerts::export_key_pending(
            &k.account,
            &k.virtual_account,
            &k.instance_id,
            &k.tag,
            k.requested_at,
            now,
        ));
    }
    for i in rows::lapsed_instances(conn, scope)? {
        out.push(alerts::authorization_lapsed(
            &i.account,
            &i.virtual_account,
            &i.id,
            &i.udi,
        ));
    }
    let before = now - alerts::RESERVATION_PENDING_AFTER;
    for (account, r) in reservations::waiting_since_before(conn, scope, before)? {
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
