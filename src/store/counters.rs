//! Counters kept in the same transaction as the rows they summarize, and the recount
//! that proves they match (`satellite check`).

use super::Result;
use crate::domain::compliance::Demand;
use rusqlite::{params, Connection};

pub mod held;

/// Adds `delta` to a pool's demand; export-registered instances count in both columns.
/// Returns the move as written, for whoever keeps the pool's evaluation in step.
pub fn add_demand(
    tx: &Connection,
    va_id: i64,
    tag: &str,
    delta: i64,
    export: bool,
) -> Result<Demand> {
    let moved = Demand::of_usage(delta, export);
    if delta == 0 || held::demand(va_id, tag, moved.total, moved.export_ok) {
        return Ok(moved);
    }
    write_demand(tx, va_id, tag, moved.total, moved.export_ok)?;
    Ok(moved)
}

fn write_demand(tx: &Connection, va_id: i64, tag: &str, total: i64, export_ok: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO usage_totals (va_id, tag, demand, demand_export) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (va_id, tag) DO UPDATE SET demand = demand + ?3, demand_export = demand_export + ?4",
    )?
    .execute(params![va_id, tag, total, export_ok])?;
    Ok(())
}

/// Adds (or with a negative `sign`, removes) all of an instance's stored usage.
pub fn add_instance_usage(
    tx: &Connection,
    instance_key: i64,
    va_id: i64,
    export: bool,
    sign: i64,
) -> Result<()> {
    let rows: Vec<(String, i64)> = tx
        .prepare_cached(
            "SELECT t.tag, u.count FROM instance_usage u JOIN tags t ON t.id = u.tag_id
             WHERE u.instance_id = ?1",
        )?
        .query_map([instance_key], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (tag, count) in rows {
        add_demand(tx, va_id, &tag, sign * count, export)?;
    }
    Ok(())
}

pub fn bump_status(tx: &Connection, va_id: i64, status: &str, delta: i64) -> Result<()> {
    if held::status(va_id, status, delta) {
        return Ok(());
    }
    write_status(tx, va_id, status, delta)
}

fn write_status(tx: &Connection, va_id: i64, status: &str, delta: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO va_status_counts (va_id, status, n) VALUES (?1, ?2, ?3)
         ON CONFLICT (va_id, status) DO UPDATE SET n = n + ?3",
    )?
    .execute(params![va_id, status, delta])?;
    Ok(())
}

/// Moves one instance between two (VA, status) counters. Two one-row statements, not
/// one of two rows: a statement that writes several rows and may abort (an upsert's
/// update may) gets a statement journal, a copy of its page, and a status change is on
/// every first report.
pub fn move_status(tx: &Connection, from: (i64, &str), to: (i64, &str)) -> Result<()> {
    bump_status(tx, from.0, from.1, -1)?;
    bump_status(tx, to.0, to.1, 1)
}

pub fn bump_va(tx: &Connection, va_id: i64, licenses: i64, instances: i64) -> Result<()> {
    tx.prepare_cached(
        "UPDATE virtual_accounts SET license_count = license_count + ?2,
                instance_count = instance_count + ?3 WHERE id = ?1",
    )?
    .execute(params![va_id, licenses, instances])?;
    Ok(())
}

/// Compares every counter with a full recount; returns one line per mismatch.
pub fn recount(conn: &Connection) -> Result<Vec<String>> {
    let checks: [(&str, &str); 5] = [
        (
            "usage_totals",
            "SELECT printf('va %d tag %s: demand %d/%d, recount %d/%d', va_id, tag, d, de, rd, rde) FROM (
               SELECT coalesce(t.va_id, r.va_id) AS va_id, coalesce(t.tag, r.tag) AS tag,
                      coalesce(t.demand, 0) AS d, coalesce(t.demand_export, 0) AS de,
                      coalesce(r.d, 0) AS rd, coalesce(r.de, 0) AS rde
               FROM usage_totals t FULL OUTER JOIN (
                 SELECT va_id, tag, sum(c) AS d, sum(e) AS de FROM (
                   SELECT i.va_id AS va_id, t.tag AS tag, u.count AS c,
                          CASE WHEN i.export_controlled THEN u.count ELSE 0 END AS e
                   FROM instance_usage u JOIN instances i ON i.id = u.instance_id
                   JOIN tags t ON t.id = u.tag_id
                   UNION ALL
                   SELECT va_id, tag, count, CASE WHEN export THEN count ELSE 0 END FROM satellite_usage)
                 GROUP BY va_id, tag) r ON r.va_id = t.va_id AND r.tag = t.tag)
             WHERE d <> rd OR de <> rde",
        ),
        (
            "va_status_counts",
            "SELECT printf('va %d status %s: counter %d, recount %d', va_id, status, n, rn) FROM (
               SELECT coalesce(c.va_id, r.va_id) AS va_id, coalesce(c.status, r.status) AS status,
                      coalesce(c.n, 0) AS n, coalesce(r.n, 0) AS rn
               FROM va_status_counts c FULL OUTER JOIN (
                 SELECT va_id, CASE status WHEN 0 THEN 'authorization_expired' WHEN 1 THEN 'authorized' WHEN 2 THEN 'not_authorized' WHEN 3 THEN 'out_of_compliance' WHEN 4 THEN 'registered' WHEN 5 THEN 'reserved' END AS status, count(*) AS n
                 FROM instances GROUP BY va_id, instances.status) r
               ON r.va_id = c.va_id AND r.status = c.status)
             WHERE n <> rn",
        ),
        (
            "instance_count",
            "SELECT printf('va %d: instance_count %d, recount %d', v.id, v.instance_count,
                           (SELECT count(*) FROM instances i WHERE i.va_id = v.id))
             FROM virtual_accounts v
             WHERE v.instance_count <> (SELECT count(*) FROM instances i WHERE i.va_id = v.id)",
        ),
        (
            "license_count",
            "SELECT printf('va %d: license_count %d, recount %d', v.id, v.license_count,
                           (SELECT count(*) FROM licenses l WHERE l.va_id = v.id))
             FROM virtual_accounts v
             WHERE v.license_count <> (SELECT count(*) FROM licenses l WHERE l.va_id = v.id)",
        ),
        ("licenses.reserved", super::reservations::RECOUNT_SQL),
    ];
    let mut problems = vec![];
    for (name, sql) in checks {
        let rows: Vec<String> = conn
            .prepare(sql)?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        problems.extend(rows.into_iter().map(|r| format!("{name}: {r}")));
    }
    problems.extend(super::export_keys::orphans(conn)?);
    Ok(problems)
}
