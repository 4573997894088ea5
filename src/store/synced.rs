//! What sync moves: the upstream's catalog (virtual accounts and licenses) applied on a
//! satellite, and a satellite's instances and usage applied on the upstream.

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

/// Calls `f` with every virtual account of an account (name, description).
pub fn for_each_va(
    conn: &Connection,
    account_id: i64,
    mut f: impl FnMut(String, String) -> Result<()>,
) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT name, description FROM virtual_accounts WHERE account_id = ?1 ORDER BY name",
    )?;
    let mut rows = stmt.query([account_id])?;
    while let Some(r) = rows.next()? {
        f(r.get(0)?, r.get(1)?)?;
    }
    Ok(())
}

/// Calls `f` with every license of an account: (virtual account, license).
pub fn for_each_license(
    conn: &Connection,
    account_id: i64,
    mut f: impl FnMut(String, super::licenses::License) -> Result<()>,
) -> Result<()> {
    let vas: Vec<(i64, String)> = conn
        .prepare("SELECT id, name FROM virtual_accounts WHERE account_id = ?1 ORDER BY name")?
        .query_map([account_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, name) in vas {
        for l in super::licenses::list(conn, id)? {
            f(name.clone(), l)?;
        }
    }
    Ok(())
}

/// One instance row for export, in the record's terms.
pub struct InstanceExport {
    pub id: String,
    pub virtual_account: String,
    pub pid: String,
    pub sn: String,
    pub uuid: Option<String>,
    pub product_name: String,
    pub product_version: String,
    pub hostname: Option<String>,
    pub export_controlled: bool,
    pub registered_at: i64,
    pub last_contact: i64,
    pub status: String,
}

/// True when `account_id` holds at least a quarter of all instances (from the counters):
/// reading the whole table in storage order is then cheaper than one random row fetch per
/// instance through the index.
fn holds_most(conn: &Connection, account_id: i64) -> Result<bool> {
    let (mine, all): (i64, i64) = conn.query_row(
        "SELECT coalesce(sum(CASE WHEN account_id = ?1 THEN instance_count END), 0),
                coalesce(sum(instance_count), 0)
         FROM virtual_accounts",
        [account_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(mine * 4 >= all)
}

/// Streams an account's instances in id order without loading them all: through the
/// virtual-account index for a small account, by reading the table in storage order and
/// sorting when the account holds most of them. Id order matters to the reader: the
/// upstream then inserts into its id-keyed indexes at one end instead of all over them.
pub fn for_each_instance(
    conn: &Connection,
    account_id: i64,
    mut f: impl FnMut(InstanceExport) -> Result<()>,
) -> Result<()> {
    let from = if holds_most(conn, account_id)? {
        "instances i NOT INDEXED JOIN virtual_accounts v ON v.id = i.va_id"
    } else {
        "instances i JOIN virtual_accounts v ON v.id = i.va_id"
    };
    let mut stmt = conn.prepare(&format!(
        "SELECT i.id, v.name, i.pid, i.sn, i.uuid, i.product_name, i.product_version, i.hostname,
                i.export_controlled, i.registered_at, i.last_contact, i.status
         FROM {from} WHERE v.account_id = ?1 ORDER BY i.id"
    ))?;
    let mut rows = stmt.query([account_id])?;
    while let Some(r) = rows.next()? {
        f(InstanceExport {
            id: r.get(0)?,
            virtual_account: r.get(1)?,
            pid: r.get(2)?,
            sn: r.get(3)?,
            uuid: r.get(4)?,
            product_name: r.get(5)?,
            product_version: r.get(6)?,
            hostname: r.get(7)?,
            export_controlled: r.get(8)?,
            registered_at: r.get(9)?,
            last_contact: r.get(10)?,
            status: r.get(11)?,
        })?;
    }
    Ok(())
}

pub fn for_each_usage(
    conn: &Connection,
    account_id: i64,
    mut f: impl FnMut(String, String, i64) -> Result<()>,
) -> Result<()> {
    // VA, then its instance ids from the (va_id, id) index alone, then their usage rows:
    // both walked in id order, so usage pages are read in sequence, not one per row.
    let mut stmt = conn.prepare(
        "SELECT u.instance_id, u.tag, u.count
         FROM virtual_accounts v CROSS JOIN instances i CROSS JOIN instance_usage u
         WHERE v.account_id = ?1 AND i.va_id = v.id AND u.instance_id = i.id",
    )?;
    let mut rows = stmt.query([account_id])?;
    while let Some(r) = rows.next()? {
        f(r.get(0)?, r.get(1)?, r.get(2)?)?;
    }
    Ok(())
}

/// How many instances an account holds (from the counters), to size an export's progress.
pub fn instance_total(conn: &Connection, account: &str) -> Result<i64> {
    Ok(conn.query_row(
        "SELECT coalesce(sum(v.instance_count), 0) FROM virtual_accounts v
         JOIN accounts a ON a.id = v.account_id WHERE a.name = ?1",
        [account],
        |r| r.get(0),
    )?)
}

/// Upstream: a satellite's snapshot replaces what it reported before.
pub struct Snapshot<'a> {
    tx: &'a Connection,
    satellite_id: i64,
    account_id: i64,
    vas: HashMap<String, i64>,
    export: HashMap<String, (i64, bool)>,
    pub instances: i64,
    pub usage: i64,
    now: i64,
    /// What the satellite's live reservations hold, per VA and tag.
    reserved: std::collections::BTreeMap<(i64, String), i64>,
}

impl<'a> Snapshot<'a> {
    pub fn begin(tx: &'a Connection, satellite_id: i64, account_id: i64, now: i64) -> Result<Self> {
        tx.execute(
            "DELETE FROM satellite_instances WHERE satellite_id = ?1",
            [satellite_id],
        )?;
        Ok(Self {
            tx,
            satellite_id,
            account_id,
            vas: HashMap::new(),
            export: HashMap::new(),
            instances: 0,
            usage: 0,
            now,
            reserved: Default::default(),
        })
    }

    /// The VA by name, created if the upstream does not have it yet.
    fn va(&mut self, name: &str) -> Result<i64> {
        if let Some(id) = self.vas.get(name) {
            return Ok(*id);
        }
        let id = match va_id(self.tx, self.account_id, name)? {
            Some(id) => id,
            None => {
                self.tx.execute(
                    "INSERT INTO virtual_accounts (account_id, name, description, created_at) VALUES (?1, ?2, 'created by satellite sync', ?3)",
                    params![self.account_id, name, self.now],
                )?;
                self.tx.last_insert_rowid()
            }
        };
        self.vas.insert(name.to_string(), id);
        Ok(id)
    }

    pub fn instance(&mut self, i: &InstanceExport) -> Result<()> {
        let va = self.va(&i.virtual_account)?;
        self.tx
            .prepare_cached(
                "INSERT INTO satellite_instances (satellite_id, id, va_id, pid, sn, product_name, product_version,
                   hostname, export_controlled, registered_at, last_contact, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                self.satellite_id, i.id, va, i.pid, i.sn, i.product_name, i.product_version, i.hostname,
                i.export_controlled, i.registered_at, i.last_contact, i.status
            ])?;
        self.export.insert(i.id.clone(), (va, i.export_controlled));
        self.instances += 1;
        Ok(())
    }

    /// Usage must follow its instance in the bundle.
    pub fn usage(&mut self, instance_id: &str, tag: &str, count: i64) -> Result<bool> {
        let Some(&(va, export)) = self.export.get(instance_id) else {
            return Ok(false);
        };
        self.tx
            .prepare_cached(
                "INSERT INTO satellite_usage (satellite_id, instance_id, va_id, tag, count, export) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![self.satellite_id, instance_id, va, tag, count, export])?;
        self.usage += 1;
        Ok(true)
    }

    /// A granted export key; like usage, it must follow its instance in the bundle.
    pub fn export_key(&mut self, instance_id: &str, tag: &str) -> Result<bool> {
        let Some(&(va, _)) = self.export.get(instance_id) else {
            return Ok(false);
        };
        super::export_keys::put_satellite_key(self.tx, self.satellite_id, instance_id, va, tag)?;
        Ok(true)
    }

    /// Counts held by one of the satellite's reservations.
    pub fn reservation(&mut self, va_name: &str, tag: &str, held: i64) -> Result<()> {
        let va = self.va(va_name)?;
        *self.reserved.entry((va, tag.to_string())).or_default() += held;
        Ok(())
    }

    /// Recomputes the account's pool demand from direct and satellite-reported usage.
    pub fn finish(self, sequence: i64) -> Result<(i64, i64)> {
        rebuild_demand(self.tx, self.account_id)?;
        super::reservations::replace_satellite_held(self.tx, self.satellite_id, &self.reserved)?;
        self.tx.execute(
            "UPDATE satellites SET last_sequence = ?2, last_sync = ?3, instance_count = ?4 WHERE id = ?1",
            params![self.satellite_id, sequence, self.now, self.instances],
        )?;
        Ok((self.instances, self.usage))
    }
}

/// Demand per pool of an account, recomputed from every source of usage.
pub fn rebuild_demand(tx: &Connection, account_id: i64) -> Result<()> {
    tx.execute(
        "DELETE FROM usage_totals WHERE va_id IN (SELECT id FROM virtual_accounts WHERE account_id = ?1)",
        [account_id],
    )?;
    tx.execute(
        "INSERT INTO usage_totals (va_id, tag, demand, demand_export)
         SELECT va_id, tag, sum(c), sum(e) FROM (
           SELECT i.va_id AS va_id, u.tag AS tag, u.count AS c,
                  CASE WHEN i.export_controlled THEN u.count ELSE 0 END AS e
           FROM instance_usage u JOIN instances i ON i.id = u.instance_id
           JOIN virtual_accounts v ON v.id = i.va_id WHERE v.account_id = ?1
           UNION ALL
           SELECT s.va_id, s.tag, s.count, CASE WHEN s.export THEN s.count ELSE 0 END
           FROM satellite_usage s JOIN virtual_accounts v ON v.id = s.va_id WHERE v.account_id = ?1)
         GROUP BY va_id, tag",
        [account_id],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Account 1 holds one instance, account 2 nine: both read paths (index for the
    /// small account, table scan for the large one) return exactly the account's rows.
    #[test]
    fn exports_read_only_the_accounts_instances_whichever_path_they_take() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&dir.path().join("s.db")).unwrap();
        store
            .write_blocking(|tx| {
                tx.execute_batch(
                    "INSERT INTO accounts (id, name, created_at) VALUES (1, 'Small', 0), (2, 'Large', 0);
                     INSERT INTO virtual_accounts (id, account_id, name, instance_count, created_at)
                       VALUES (10, 1, 'A', 1, 0), (20, 2, 'B', 9, 0);",
                )?;
                for n in 0..10 {
                    let va = if n == 0 { 10 } else { 20 };
                    tx.execute(
                        "INSERT INTO instances (id, va_id, pid, sn, public_key, product_name,
                           product_version, registered_at, last_contact, cert_renew_after,
                           cert_expires_at, status)
                         VALUES (?1, ?2, 'P', ?1, x'00', 'p', '1', 0, 0, 0, 0, 'registered')",
                        params![format!("inst_{n}"), va],
                    )?;
                    tx.execute(
                        "INSERT INTO instance_usage (instance_id, tag, count) VALUES (?1, 't', ?2)",
                        params![format!("inst_{n}"), n],
                    )?;
                }
                Ok::<_, crate::store::StoreError>(())
            })
            .unwrap();
        for (account, expected) in [(1, 1), (2, 9)] {
            let (mut instances, mut usage) = (vec![], vec![]);
            store
                .read_blocking(|c| {
                    for_each_instance(c, account, |i| {
                        instances.push(i.id);
                        Ok(())
                    })?;
                    for_each_usage(c, account, |id, _, _| {
                        usage.push(id);
                        Ok(())
                    })
                })
                .unwrap();
            instances.sort();
            usage.sort();
            assert_eq!(instances.len(), expected, "account {account}");
            assert_eq!(instances, usage, "account {account}");
            assert_eq!(instances.contains(&"inst_0".to_string()), account == 1);
        }
    }
}
