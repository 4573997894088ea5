//! One count per account (CONTRACT section 6): the demand recorded elsewhere.
//!
//! Upstream side: what a sync response tells a satellite, per VA and tag: the account's
//! whole demand (direct instances, every satellite's reported usage and export keys, as
//! `licenses::demand` reads it from the counters) minus what that satellite reported
//! itself. Satellite side: the table that keeps it, added to the satellite's own demand
//! before substitution, so both sides evaluate the same totals.

use super::events::{self, NewEvent};
use super::Result;
use crate::domain::compliance::Demand;
use crate::domain::export_key;
use rusqlite::{params, Connection};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};

/// Upstream: the demand of `account_id` not reported by satellite `satellite_id`, per VA
/// name and tag (only pools with some demand), for its sync response.
pub fn for_satellite(
    conn: &Connection,
    account_id: i64,
    satellite_id: i64,
) -> Result<Vec<(String, String, Demand)>> {
    let own = reported_by(conn, satellite_id)?;
    let vas: Vec<(i64, String)> = conn
        .prepare_cached(
            "SELECT id, name FROM virtual_accounts WHERE account_id = ?1 ORDER BY name",
        )?
        .query_map([account_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = vec![];
    for (va_id, name) in vas {
        for (tag, all) in super::licenses::demand(conn, va_id)? {
            let mine = own.get(&(va_id, tag.clone())).copied().unwrap_or_default();
            let rest = Demand {
                total: (all.total - mine.total).max(0),
                export_ok: (all.export_ok - mine.export_ok).max(0),
            };
            if rest.total > 0 || rest.export_ok > 0 {
                out.push((name.clone(), tag, rest));
            }
        }
    }
    Ok(out)
}

/// Upstream: what one satellite's snapshot adds to the account's demand, per (VA, tag):
/// its usage and its granted export keys, counted as `licenses::demand` counts them.
fn reported_by(conn: &Connection, satellite_id: i64) -> Result<HashMap<(i64, String), Demand>> {
    let mut own: HashMap<(i64, String), Demand> = HashMap::new();
    let usage = conn
        .prepare_cached(
            "SELECT va_id, tag, sum(count), sum(CASE WHEN export THEN count ELSE 0 END)
             FROM satellite_usage WHERE satellite_id = ?1 GROUP BY va_id, tag",
        )?
        .query_map([satellite_id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get(2)?,
                r.get(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<(i64, String, i64, i64)>>>()?;
    for (va, tag, total, export_ok) in usage {
        let d = own.entry((va, tag)).or_default();
        d.total += total;
        d.export_ok += export_ok;
    }
    let keys = conn
        .prepare_cached(
            "SELECT s.va_id, s.tag, coalesce(u.count, 0), si.export_controlled
             FROM satellite_export_keys s
             JOIN satellite_instances si ON si.satellite_id = s.satellite_id AND si.id = s.instance_id
             LEFT JOIN satellite_usage u ON u.satellite_id = s.satellite_id
                  AND u.instance_id = s.instance_id AND u.tag = s.tag
             WHERE s.satellite_id = ?1",
        )?
        .query_map([satellite_id], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<Vec<(i64, String, i64, bool)>>>()?;
    for (va, tag, count, export) in keys {
        let add = export_key::key_demand(count, export);
        let d = own.entry((va, tag)).or_default();
        d.total += add.total;
        d.export_ok += add.export_ok;
    }
    Ok(own)
}

/// Satellite: adds the demand recorded elsewhere to a VA's own (read with it, so every
/// evaluation — licenses API, VA page, instance status, alerts — counts it).
pub fn add(conn: &Connection, va_id: i64, demand: &mut BTreeMap<String, Demand>) -> Result<()> {
    let rows = conn
        .prepare_cached("SELECT tag, demand, demand_export FROM demand_elsewhere WHERE va_id = ?1")?
        .query_map([va_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for (tag, total, export_ok) in rows {
        let d = demand.entry(tag).or_default();
        d.total += total;
        d.export_ok += export_ok;
    }
    Ok(())
}

/// Satellite: replaces the account's demand recorded elsewhere with what a sync response
/// carried (VA names already resolved to ids; unknown VAs dropped by the caller). Writes
/// an event when the figures changed.
pub fn replace(
    tx: &Connection,
    account_id: i64,
    account: &str,
    new: &BTreeMap<(i64, String), Demand>,
    now: i64,
) -> Result<()> {
    let old: BTreeMap<(i64, String), Demand> = tx
        .prepare_cached(
            "SELECT d.va_id, d.tag, d.demand, d.demand_export FROM demand_elsewhere d
               JOIN virtual_accounts v ON v.id = d.va_id WHERE v.account_id = ?1",
        )?
        .query_map([account_id], |r| {
            Ok((
                (r.get(0)?, r.get(1)?),
                Demand {
                    total: r.get(2)?,
                    export_ok: r.get(3)?,
                },
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    if old == *new {
        return Ok(());
    }
    tx.prepare_cached(
        "DELETE FROM demand_elsewhere WHERE va_id IN (SELECT id FROM virtual_accounts WHERE account_id = ?1)",
    )?
    .execute([account_id])?;
    for ((va_id, tag), d) in new {
        tx.prepare_cached(
            "INSERT INTO demand_elsewhere (va_id, tag, demand, demand_export) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![va_id, tag, d.total, d.export_ok])?;
    }
    events::record(
        tx,
        now,
        NewEvent {
            actor: "sync",
            action: "sync.demand_elsewhere_applied",
            account: Some((account_id, account)),
            target: account,
            detail: json!({
                "pools": new.len(),
                "demand": new.values().map(|d| d.total).sum::<i64>(),
            }),
        },
    )
}

/// Satellite: a VA's demand recorded elsewhere, by tag (for the VA page).
pub fn of_va(conn: &Connection, va_id: i64) -> Result<Vec<(String, i64)>> {
    Ok(conn
        .prepare_cached(
            "SELECT tag, demand FROM demand_elsewhere WHERE va_id = ?1 AND demand > 0 ORDER BY tag",
        )?
        .query_map([va_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?)
}
