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
            let mine = (own.get(&va_id))
                .and_then(|tags| tags.get(&tag))
                .copied()
                .unwrap_or_default();
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

/// Per VA, per tag: what one satellite reported.
type Reported = HashMap<i64, HashMap<String, Demand>>;

fn add_reported(own: &mut Reported, va: i64, tag: &str, add: Demand) {
    let tags = own.entry(va).or_default();
    // A tag is allocated once per pool, not once per row.
    if let Some(d) = tags.get_mut(tag) {
        d.total += add.total;
        d.export_ok += add.export_ok;
    } else {
        tags.insert(tag.to_string(), add);
    }
}

/// Upstream: what one satellite's snapshot adds to the account's demand, per (VA, tag):
/// its usage and its granted export keys, counted as `licenses::demand` counts them.
/// The usage rows are summed here as they stream by: a `GROUP BY` sorted all of a large
/// satellite's rows first (half a second of a million-instance sync).
fn reported_by(conn: &Connection, satellite_id: i64) -> Result<Reported> {
    let mut own = Reported::new();
    let mut usage = conn.prepare_cached(
        "SELECT va_id, tag, count, export FROM satellite_usage WHERE satellite_id = ?1",
    )?;
    let mut rows = usage.query([satellite_id])?;
    while let Some(r) = rows.next()? {
        let tag = super::columns::borrowed_text(r, 1)?;
        add_reported(
            &mut own,
            r.get(0)?,
            tag,
            Demand::of_usage(r.get(2)?, r.get(3)?),
        );
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
        add_reported(&mut own, va, &tag, export_key::key_demand(count, export));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct usage 4 (one unit export-registered), satellite 1 reports 3, satellite 2
    /// reports 2 with a granted export key on an instance reporting 0: each satellite is
    /// told everything but its own.
    #[test]
    fn each_satellite_hears_everything_but_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("s.db")).unwrap();
        // Direct usage as instance rows; rebuild_demand sums them with the satellites'.
        store
            .write_blocking(|tx| {
                tx.execute_batch(
                    "INSERT INTO accounts (id, name, created_at) VALUES (1, 'Acme', 0);
                     INSERT INTO virtual_accounts (id, account_id, name, created_at) VALUES (10, 1, 'Lab', 0);
                     INSERT INTO satellites (id, account_id, authority_id, public_key, local_account, registered_at)
                       VALUES (1, 1, 'sat-one', x'00', 'Acme', 0), (2, 1, 'sat-two', x'00', 'Acme', 0);
                     INSERT INTO satellite_instances (satellite_id, id, va_id, pid, sn, product_name,
                       product_version, registered_at, last_contact, status, export_controlled)
                       VALUES (1, 'a', 10, 'P', 'A', 'p', '1', 0, 0, 'authorized', 0),
                              (2, 'b', 10, 'P', 'B', 'p', '1', 0, 0, 'authorized', 0),
                              (2, 'c', 10, 'P', 'C', 'p', '1', 0, 0, 'authorized', 0);
                     INSERT INTO satellite_usage (satellite_id, instance_id, va_id, tag, count, export)
                       VALUES (1, 'a', 10, 'ess', 3, 0), (2, 'b', 10, 'ess', 2, 0);
                     INSERT INTO satellite_export_keys (satellite_id, instance_id, tag, va_id)
                       VALUES (2, 'c', 'crypto', 10);
                     INSERT INTO tags (tag) VALUES ('ess');",
                )?;
                for (key, id, count, export) in [(1, "d1", 3, 0), (2, "d2", 1, 1)] {
                    tx.execute(
                        "INSERT INTO instances (id, legacy_id, va_id, pid, sn, public_key,
                           product_name, product_version, registered_at, last_contact,
                           cert_expires_at, status, export_controlled)
                         VALUES (?3, ?1, 10, 'D', ?1, x'00', 'p', '1', 0, 0, 0, 1, ?2)",
                        params![id, export, key],
                    )?;
                    tx.execute(
                        "UPDATE instances SET usage = json_object(
                           (SELECT CAST(id AS TEXT) FROM tags WHERE tag = 'ess'), ?2) WHERE id = ?1",
                        params![key, count],
                    )?;
                }
                crate::store::synced::rebuild_demand(tx, 1)?;
                Ok::<_, crate::store::StoreError>(())
            })
            .unwrap();
        let d = |total, export_ok| Demand { total, export_ok };
        let told = |sat| store.read_blocking(|c| for_satellite(c, 1, sat)).unwrap();
        // Satellite 1: direct 4 (1 export) + satellite 2's 2 and its key (1, export-eligible).
        assert_eq!(
            told(1),
            [
                ("Lab".to_string(), "crypto".to_string(), d(1, 1)),
                ("Lab".to_string(), "ess".to_string(), d(6, 1)),
            ]
        );
        // Satellite 2: direct 4 + satellite 1's 3; its own key stays its own.
        assert_eq!(told(2), [("Lab".to_string(), "ess".to_string(), d(7, 1))]);

        // The satellite side: replaced whole, added to the VA's own demand when read.
        store
            .write_blocking(|tx| {
                let new: BTreeMap<(i64, String), Demand> =
                    [((10, "ess".to_string()), d(7, 1))].into_iter().collect();
                replace(tx, 1, "Acme", &new, 5)?;
                replace(tx, 1, "Acme", &new, 6)?;
                let events: i64 = tx.query_row(
                    "SELECT count(*) FROM events WHERE action = 'sync.demand_elsewhere_applied'",
                    [],
                    |r| r.get(0),
                )?;
                assert_eq!(events, 1, "an unchanged set writes no second event");
                Ok::<_, crate::store::StoreError>(())
            })
            .unwrap();
        let all = store
            .read_blocking(|c| crate::store::licenses::demand(c, 10))
            .unwrap();
        // Own 4 + 3 + 2 (upstream-side rows of this test) + 7 from elsewhere.
        assert_eq!(all["ess"], d(16, 2));
        assert_eq!(
            store.read_blocking(|c| of_va(c, 10)).unwrap(),
            [("ess".to_string(), 7)]
        );
    }
}
