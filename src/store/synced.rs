//! What sync moves, one file per job: here the upstream's catalog (virtual accounts and
//! licenses) applied on a satellite; `snapshot` applies a satellite's instances, usage,
//! export keys and reservation holds on the upstream; `export` reads an account for the
//! bundles either side sends.

mod deferred_indexes;
mod export;
mod first_rows;
mod listed;
mod snapshot;

pub use export::{
    for_each_instance, for_each_license, for_each_usage, for_each_va, instance_total,
    InstanceExport,
};
pub use snapshot::{rebuild_demand, Snapshot};

use super::counters;
use super::events::{self, NewEvent};
use super::Result;
use crate::domain::license::LicenseSpec;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};

/// The catalog of one account, as the upstream sends it.
#[derive(Default)]
pub struct Catalog {
    pub virtual_accounts: Vec<(String, String)>,
    pub licenses: Vec<(String, LicenseSpec)>,
    /// (VA, tag, held) by reservations made elsewhere.
    pub reserved: Vec<(String, String, i64)>,
    /// (VA, tag, demand) recorded elsewhere (on the upstream and other satellites).
    pub demand_elsewhere: Vec<(String, String, crate::domain::compliance::Demand)>,
}

/// A virtual account's id by name (names ignore case).
fn va_id(conn: &Connection, account_id: i64, name: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached(
            "SELECT id FROM virtual_accounts WHERE account_id = ?1 AND name = ?2 COLLATE NOCASE",
        )?
        .query_row(params![account_id, name], |r| r.get(0))
        .optional()?)
}

/// Makes the satellite's account match the catalog: synced VAs and their licenses. VAs
/// become read-only here (`synced`); licenses the upstream no longer lists are removed.
pub fn apply_catalog(
    tx: &Connection,
    account_id: i64,
    account: &str,
    catalog: &Catalog,
    now: i64,
) -> Result<(usize, usize)> {
    let mut ids: HashMap<&str, i64> = HashMap::new();
    for (name, description) in &catalog.virtual_accounts {
        let id = match va_id(tx, account_id, name)? {
            Some(id) => {
                // Names ignore case: a local 'lab' becomes the upstream's 'Lab'.
                tx.execute(
                    "UPDATE virtual_accounts SET synced = 1, description = ?2, name = ?3 WHERE id = ?1",
                    params![id, description, name],
                )?;
                id
            }
            None => {
                tx.execute(
                    "INSERT INTO virtual_accounts (account_id, name, description, synced, created_at)
                     VALUES (?1, ?2, ?3, 1, ?4)",
                    params![account_id, name, description, now],
                )?;
                tx.last_insert_rowid()
            }
        };
        ids.insert(name, id);
    }
    let mut wanted: BTreeMap<i64, Vec<&str>> = BTreeMap::new();
    for (va, spec) in &catalog.licenses {
        let Some(&id) = ids.get(va.as_str()) else {
            continue;
        };
        wanted.entry(id).or_default().push(&spec.tag);
        let end = spec.end.map(|e| e.to_string());
        let subs = serde_json::to_string(&spec.substitutes).unwrap_or_else(|_| "[]".into());
        let updated = tx.execute(
            "UPDATE licenses SET name = ?3, license_type = ?4, quantity = ?5, start_date = ?6, end_date = ?7,
               export_controlled = ?8, substitutes = ?9, rank = ?10 WHERE va_id = ?1 AND tag = ?2",
            params![id, spec.tag, spec.name, spec.license_type.as_str(), spec.quantity, spec.start.to_string(), end, spec.export_controlled, subs, spec.rank],
        )?;
        if updated == 0 {
            tx.execute(
                "INSERT INTO licenses (va_id, tag, name, license_type, quantity, start_date, end_date,
                   export_controlled, substitutes, created_at, rank) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![id, spec.tag, spec.name, spec.license_type.as_str(), spec.quantity, spec.start.to_string(), end, spec.export_controlled, subs, now, spec.rank],
            )?;
            counters::bump_va(tx, id, 1, 0)?;
        }
    }
    // Licenses of synced VAs that the upstream no longer lists are gone.
    let synced: Vec<i64> = tx
        .prepare("SELECT id FROM virtual_accounts WHERE account_id = ?1 AND synced = 1")?
        .query_map([account_id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in synced {
        let tags: Vec<String> = tx
            .prepare("SELECT tag FROM licenses WHERE va_id = ?1")?
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let keep = wanted.get(&id).cloned().unwrap_or_default();
        for tag in tags.iter().filter(|t| !keep.contains(&t.as_str())) {
            tx.execute(
                "DELETE FROM licenses WHERE va_id = ?1 AND tag = ?2",
                params![id, tag],
            )?;
            counters::bump_va(tx, id, -1, 0)?;
        }
    }
    let reserved: BTreeMap<(i64, String), i64> = catalog
        .reserved
        .iter()
        .filter_map(|(va, tag, held)| ids.get(va.as_str()).map(|id| ((*id, tag.clone()), *held)))
        .collect();
    super::reservations::replace_upstream_held(tx, account_id, &reserved)?;
    let elsewhere = catalog
        .demand_elsewhere
        .iter()
        .filter_map(|(va, tag, d)| ids.get(va.as_str()).map(|id| ((*id, tag.clone()), *d)))
        .collect();
    super::demand_elsewhere::replace(tx, account_id, account, &elsewhere, now)?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: "sync",
            action: "sync.catalog_applied",
            account: Some((account_id, account)),
            target: account,
            detail: json!({ "virtual_accounts": catalog.virtual_accounts.len(), "licenses": catalog.licenses.len() }),
        },
    )?;
    Ok((catalog.virtual_accounts.len(), catalog.licenses.len()))
}
