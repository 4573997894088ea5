//! Upstream: a satellite's snapshot (instances, usage, granted export keys, reservation
//! holds) applied over what it reported before, differentially. Each record is compared
//! with the stored row by primary key as it streams in and written only when it is new
//! or differs; at the end the rows the snapshot no longer lists are deleted. An unchanged
//! re-sync so writes (almost) nothing, and the ledger's triggers capture only the rows
//! that really changed. Pool demand moves by the deltas of the rows written, in the same
//! transaction, instead of being recounted over the whole account.

use super::super::Result;
use super::{va_id, InstanceExport};
use rusqlite::{params, Connection};
use std::collections::{BTreeMap, HashMap};

/// What one instance of the snapshot said: its pool and the tags it listed, so the rows
/// it no longer lists can be found at the end.
struct Seen {
    va: i64,
    export: bool,
    /// Interned tags of its usage rows and of its granted export keys.
    usage: Vec<u32>,
    keys: Vec<u32>,
}

/// How many rows the snapshot wrote, by kind: what differed from the stored snapshot.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub instances: i64,
    pub usage: i64,
    pub export_keys: i64,
    pub instances_removed: i64,
    pub usage_removed: i64,
    pub export_keys_removed: i64,
}

/// Upstream: a satellite's snapshot replaces what it reported before.
pub struct Snapshot<'a> {
    tx: &'a Connection,
    satellite_id: i64,
    account_id: i64,
    vas: HashMap<String, i64>,
    seen: HashMap<Box<str>, Seen>,
    tags: HashMap<String, u32>,
    /// Demand and export demand to add per pool when the snapshot finishes.
    demand: BTreeMap<(i64, String), (i64, i64)>,
    pub instances: i64,
    pub usage: i64,
    pub written: Written,
    now: i64,
    /// What the satellite's live reservations hold, per VA and tag.
    reserved: BTreeMap<(i64, String), i64>,
}

/// A text column of a row, borrowed.
fn text<'r>(r: &'r rusqlite::Row<'_>, i: usize) -> Result<&'r str> {
    Ok(r.get_ref(i)?.as_str().map_err(rusqlite::Error::from)?)
}

/// A usage row's demand and export demand.
fn weigh(count: i64, export: bool) -> (i64, i64) {
    (count, if export { count } else { 0 })
}

impl<'a> Snapshot<'a> {
    pub fn begin(tx: &'a Connection, satellite_id: i64, account_id: i64, now: i64) -> Result<Self> {
        Ok(Self {
            tx,
            satellite_id,
            account_id,
            vas: HashMap::new(),
            seen: HashMap::new(),
            tags: HashMap::new(),
            demand: BTreeMap::new(),
            instances: 0,
            usage: 0,
            written: Written::default(),
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

    fn tag(&mut self, tag: &str) -> u32 {
        if let Some(t) = self.tags.get(tag) {
            return *t;
        }
        let next = self.tags.len() as u32;
        self.tags.insert(tag.to_string(), next);
        next
    }

    fn move_demand(&mut self, va: i64, tag: &str, (d, de): (i64, i64), sign: i64) {
        if d == 0 && de == 0 {
            return;
        }
        let e = self.demand.entry((va, tag.to_string())).or_default();
        e.0 += sign * d;
        e.1 += sign * de;
    }

    /// One instance, written only when new or different. False when the snapshot
    /// listed it already (a malformed bundle: the caller refuses it).
    pub fn instance(&mut self, i: &InstanceExport) -> Result<bool> {
        if self.seen.contains_key(i.id.as_str()) {
            return Ok(false);
        }
        let va = self.va(&i.virtual_account)?;
        // One statement: the primary-key lookup of the upsert is the comparison.
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO satellite_instances (satellite_id, id, va_id, pid, sn, product_name, product_version,
                   hostname, export_controlled, registered_at, last_contact, status)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
                 ON CONFLICT (satellite_id, id) DO UPDATE SET
                   va_id = excluded.va_id, pid = excluded.pid, sn = excluded.sn,
                   product_name = excluded.product_name, product_version = excluded.product_version,
                   hostname = excluded.hostname, export_controlled = excluded.export_controlled,
                   registered_at = excluded.registered_at, last_contact = excluded.last_contact,
                   status = excluded.status
                 WHERE va_id IS NOT excluded.va_id OR pid IS NOT excluded.pid
                   OR sn IS NOT excluded.sn OR product_name IS NOT excluded.product_name
                   OR product_version IS NOT excluded.product_version
                   OR hostname IS NOT excluded.hostname
                   OR export_controlled IS NOT excluded.export_controlled
                   OR registered_at IS NOT excluded.registered_at
                   OR last_contact IS NOT excluded.last_contact OR status IS NOT excluded.status",
            )?
            .execute(params![
                self.satellite_id, i.id, va, i.pid, i.sn, i.product_name, i.product_version, i.hostname,
                i.export_controlled, i.registered_at, i.last_contact, i.status
            ])?;
        self.written.instances += n as i64;
        self.seen.insert(
            i.id.as_str().into(),
            Seen {
                va,
                export: i.export_controlled,
                usage: vec![],
                keys: vec![],
            },
        );
        self.instances += 1;
        Ok(true)
    }

    /// Usage must follow its instance in the bundle. Written when new or different (in
    /// count, or in the pool or export flag it takes from its instance).
    pub fn usage(&mut self, instance_id: &str, tag: &str, count: i64) -> Result<bool> {
        let t = self.tag(tag);
        let Some(seen) = self.seen.get_mut(instance_id) else {
            return Ok(false);
        };
        let (va, export) = (seen.va, seen.export);
        if !seen.usage.contains(&t) {
            seen.usage.push(t);
            self.usage += 1;
        }
        let old: Option<(i64, i64, bool)> = self
            .tx
            .prepare_cached(
                "SELECT va_id, count, export FROM satellite_usage
                 WHERE satellite_id = ?1 AND instance_id = ?2 AND tag = ?3",
            )?
            .query_map(params![self.satellite_id, instance_id, tag], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .next()
            .transpose()?;
        match old {
            Some(old) if old == (va, count, export) => return Ok(true),
            Some((old_va, old_count, old_export)) => {
                self.tx
                    .prepare_cached(
                        "UPDATE satellite_usage SET va_id = ?4, count = ?5, export = ?6
                         WHERE satellite_id = ?1 AND instance_id = ?2 AND tag = ?3",
                    )?
                    .execute(params![
                        self.satellite_id,
                        instance_id,
                        tag,
                        va,
                        count,
                        export
                    ])?;
                self.move_demand(old_va, tag, weigh(old_count, old_export), -1);
            }
            None => {
                self.tx
                    .prepare_cached(
                        "INSERT INTO satellite_usage (satellite_id, instance_id, va_id, tag, count, export)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![self.satellite_id, instance_id, va, tag, count, export])?;
            }
        }
        self.move_demand(va, tag, weigh(count, export), 1);
        self.written.usage += 1;
        Ok(true)
    }

    /// A granted export key; like usage, it must follow its instance in the bundle.
    pub fn export_key(&mut self, instance_id: &str, tag: &str) -> Result<bool> {
        let t = self.tag(tag);
        let Some(seen) = self.seen.get_mut(instance_id) else {
            return Ok(false);
        };
        if !seen.keys.contains(&t) {
            seen.keys.push(t);
        }
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO satellite_export_keys (satellite_id, instance_id, tag, va_id)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (satellite_id, instance_id, tag) DO UPDATE SET va_id = excluded.va_id
                 WHERE va_id IS NOT excluded.va_id",
            )?
            .execute(params![self.satellite_id, instance_id, tag, seen.va])?;
        self.written.export_keys += n as i64;
        Ok(true)
    }

    /// Counts held by one of the satellite's reservations.
    pub fn reservation(&mut self, va_name: &str, tag: &str, held: i64) -> Result<()> {
        let va = self.va(va_name)?;
        *self.reserved.entry((va, tag.to_string())).or_default() += held;
        Ok(())
    }

    /// Whether the snapshot listed this (instance, tag) under `pick` (usage or keys).
    fn listed(&self, instance_id: &str, tag: &str, pick: fn(&Seen) -> &Vec<u32>) -> bool {
        match (self.seen.get(instance_id), self.tags.get(tag)) {
            (Some(seen), Some(t)) => pick(seen).contains(t),
            _ => false,
        }
    }

    /// Deletes what the snapshot no longer lists (usage first, taking its demand with
    /// it, then export keys, then instances), moves the pools' demand by what changed,
    /// and records the satellite's sequence and reservation holds.
    pub fn finish(mut self, sequence: i64) -> Result<Written> {
        let tx = self.tx;
        let sat = self.satellite_id;
        // Rows are collected before they are deleted: no table changes under its cursor.
        let gone_usage: Vec<(String, String, i64, i64, bool)> = {
            let mut stmt = tx.prepare(
                "SELECT instance_id, tag, va_id, count, export FROM satellite_usage WHERE satellite_id = ?1",
            )?;
            let mut rows = stmt.query([sat])?;
            let mut gone = vec![];
            while let Some(r) = rows.next()? {
                // Borrowed, not copied: almost every row is still listed.
                let (id, tag) = (text(r, 0)?, text(r, 1)?);
                if !self.listed(id, tag, |s| &s.usage) {
                    gone.push((id.into(), tag.into(), r.get(2)?, r.get(3)?, r.get(4)?));
                }
            }
            gone
        };
        for (id, tag, va, count, export) in gone_usage {
            tx.prepare_cached(
                "DELETE FROM satellite_usage WHERE satellite_id = ?1 AND instance_id = ?2 AND tag = ?3",
            )?
            .execute(params![sat, id, tag])?;
            self.move_demand(va, &tag, weigh(count, export), -1);
            self.written.usage_removed += 1;
        }
        let gone_keys: Vec<(String, String)> = {
            let mut stmt = tx.prepare(
                "SELECT instance_id, tag FROM satellite_export_keys WHERE satellite_id = ?1",
            )?;
            let mut rows = stmt.query([sat])?;
            let mut gone = vec![];
            while let Some(r) = rows.next()? {
                let (id, tag) = (text(r, 0)?, text(r, 1)?);
                if !self.listed(id, tag, |s| &s.keys) {
                    gone.push((id.into(), tag.into()));
                }
            }
            gone
        };
        for (id, tag) in gone_keys {
            tx.prepare_cached(
                "DELETE FROM satellite_export_keys WHERE satellite_id = ?1 AND instance_id = ?2 AND tag = ?3",
            )?
            .execute(params![sat, id, tag])?;
            self.written.export_keys_removed += 1;
        }
        let gone_instances: Vec<String> = {
            let mut stmt =
                tx.prepare("SELECT id FROM satellite_instances WHERE satellite_id = ?1")?;
            let mut rows = stmt.query([sat])?;
            let mut gone = vec![];
            while let Some(r) = rows.next()? {
                let id = text(r, 0)?;
                if !self.seen.contains_key(id) {
                    gone.push(id.into());
                }
            }
            gone
        };
        for id in gone_instances {
            // Its usage and keys went above; the cascade finds nothing left.
            tx.prepare_cached(
                "DELETE FROM satellite_instances WHERE satellite_id = ?1 AND id = ?2",
            )?
            .execute(params![sat, id])?;
            self.written.instances_removed += 1;
        }
        for ((va, tag), (d, de)) in std::mem::take(&mut self.demand) {
            if d == 0 && de == 0 {
                continue;
            }
            tx.prepare_cached(
                "INSERT INTO usage_totals (va_id, tag, demand, demand_export) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (va_id, tag) DO UPDATE SET demand = demand + ?3, demand_export = demand_export + ?4",
            )?
            .execute(params![va, tag, d, de])?;
        }
        super::super::reservations::replace_satellite_held(tx, sat, &self.reserved)?;
        tx.execute(
            "UPDATE satellites SET last_sequence = ?2, last_sync = ?3, instance_count = ?4 WHERE id = ?1",
            params![sat, sequence, self.now, self.instances],
        )?;
        Ok(self.written)
    }
}

/// Demand per pool of an account, recomputed from every source of usage (after a
/// satellite is revoked; a snapshot moves demand by its deltas instead).
pub fn rebuild_demand(tx: &Connection, account_id: i64) -> Result<()> {
    tx.execute(
        "DELETE FROM usage_totals WHERE va_id IN (SELECT id FROM virtual_accounts WHERE account_id = ?1)",
        [account_id],
    )?;
    tx.execute(
        "INSERT INTO usage_totals (va_id, tag, demand, demand_export)
         SELECT va_id, tag, sum(c), sum(e) FROM (
           SELECT i.va_id AS va_id, t.tag AS tag, u.count AS c,
                  CASE WHEN i.export_controlled THEN u.count ELSE 0 END AS e
           FROM instance_usage u JOIN instances i ON i.id = u.instance_id
           JOIN tags t ON t.id = u.tag_id
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
    use crate::store::{counters, Store, StoreError};

    fn inst(id: &str, va: &str, export: bool) -> InstanceExport {
        InstanceExport {
            id: id.into(),
            virtual_account: va.into(),
            pid: "P".into(),
            sn: id.into(),
            uuid: None,
            product_name: "p".into(),
            product_version: "1".into(),
            hostname: None,
            export_controlled: export,
            registered_at: 0,
            last_contact: 0,
            status: "authorized".into(),
        }
    }

    /// Applies one snapshot: instances (id, VA, export) each with usage `t` = count.
    fn apply(store: &Store, seq: i64, rows: &[(&str, &str, bool, i64)]) -> Written {
        let rows: Vec<(String, String, bool, i64)> = rows
            .iter()
            .map(|(i, v, e, c)| (i.to_string(), v.to_string(), *e, *c))
            .collect();
        store
            .write_blocking(move |tx| {
                let mut s = Snapshot::begin(tx, 1, 1, 0)?;
                for (id, va, export, _) in &rows {
                    assert!(s.instance(&inst(id, va, *export))?);
                }
                for (id, _, _, count) in &rows {
                    assert!(s.usage(id, "t", *count)?);
                }
                s.finish(seq)
            })
            .unwrap()
    }

    fn demand(store: &Store) -> Vec<(String, i64, i64)> {
        store
            .read_blocking(|c| {
                let mut stmt = c.prepare(
                    "SELECT v.name, t.demand, t.demand_export FROM usage_totals t
                     JOIN virtual_accounts v ON v.id = t.va_id WHERE t.demand <> 0 ORDER BY v.name",
                )?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok::<_, StoreError>(rows)
            })
            .unwrap()
    }

    /// Demand follows an instance that moves pool or turns export-controlled, a changed
    /// count moves it by the difference, and the counters always match a recount.
    #[test]
    fn demand_moves_by_the_rows_that_changed_and_matches_a_recount() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        store
            .write_blocking(|tx| {
                tx.execute_batch(
                    "INSERT INTO accounts (id, name, created_at) VALUES (1, 'Acme', 0);
                     INSERT INTO satellites (id, account_id, authority_id, public_key,
                       local_account, registered_at) VALUES (1, 1, 'sat-1', x'00', 'Acme', 0);",
                )?;
                Ok::<_, StoreError>(())
            })
            .unwrap();
        let recount = |store: &Store| store.read_blocking(counters::recount).unwrap();

        let w = apply(&store, 1, &[("a", "A", false, 2), ("b", "A", false, 3)]);
        assert_eq!((w.instances, w.usage), (2, 2));
        assert_eq!(demand(&store), vec![("A".into(), 5, 0)]);

        let w = apply(&store, 2, &[("a", "A", false, 2), ("b", "A", false, 3)]);
        assert_eq!(w, Written::default(), "unchanged: nothing written");

        // b moves to B and turns export-controlled; a's count changes.
        let w = apply(&store, 3, &[("a", "A", false, 4), ("b", "B", true, 3)]);
        assert_eq!((w.instances, w.usage), (1, 2));
        assert_eq!(demand(&store), vec![("A".into(), 4, 0), ("B".into(), 3, 3)]);
        assert!(recount(&store).is_empty(), "{:?}", recount(&store));

        // a is gone, with its usage.
        let w = apply(&store, 4, &[("b", "B", true, 3)]);
        assert_eq!((w.instances_removed, w.usage_removed), (1, 1));
        assert_eq!(demand(&store), vec![("B".into(), 3, 3)]);
        assert!(recount(&store).is_empty(), "{:?}", recount(&store));
    }
}
