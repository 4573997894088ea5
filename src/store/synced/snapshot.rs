//! Upstream: a satellite's snapshot (instances, usage, granted export keys, reservation
//! holds) applied over what it reported before, differentially. Each record is compared
//! with the stored row by primary key as it streams in and written only when it is new
//! or differs; at the end the rows the snapshot no longer lists are deleted. An unchanged
//! re-sync so writes (almost) nothing, and the ledger's triggers capture only the rows
//! that really changed. Pool demand moves by the deltas of the rows written, in the same
//! transaction, instead of being recounted over the whole account.
//!
//! Bulk speed (docs/benchmarks.md): the ledger's changes of the three satellite tables
//! are captured here, not by their triggers (`ledger::capture`), so no insert needs a
//! statement journal; and a first snapshot (the satellite has no stored rows) inserts
//! without looking anything up and has nothing to delete at the end.

use super::super::columns::borrowed_text as text;
use super::super::ledger::capture::{Canonical, SelfCapture};
use super::super::Result;
use super::deferred_indexes::DeferredIndexes;
use super::first_rows::{self, FirstRows};
use super::listed::Listed;
use super::{va_id, InstanceExport};
use crate::domain::compliance::Demand;
use rusqlite::{params, Connection, OptionalExtension};
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
    seen: Listed<Seen>,
    tags: HashMap<String, u32>,
    /// Demand and export demand to add per pool when the snapshot finishes.
    demand: BTreeMap<(i64, String), (i64, i64)>,
    pub instances: i64,
    pub usage: i64,
    pub written: Written,
    now: i64,
    /// What the satellite's live reservations hold, per VA and tag.
    reserved: BTreeMap<(i64, String), i64>,
    /// The satellite had no stored rows when the snapshot began: a row listed for the
    /// first time is new, and nothing stored can be missing from the snapshot.
    fresh: bool,
    /// The ledger's capture of the three tables (None when this connection has no ledger).
    ledger: Option<Capture<'a>>,
    /// The three tables' secondary indexes, when they were empty at the start: built at
    /// the end (deferred_indexes.rs).
    deferred: Option<DeferredIndexes>,
    /// A first snapshot's new instance and usage rows, inserted many at a time.
    first_rows: FirstRows,
}

/// The suspended triggers and the three tables' indexes in the ledger's list.
struct Capture<'a> {
    on: SelfCapture<'a>,
    instances: usize,
    usage: usize,
    keys: usize,
}

const TABLES: [&str; 3] = [
    "satellite_instances",
    "satellite_usage",
    "satellite_export_keys",
];

/// The counted columns of each table, as its ledger trigger reads them.
fn instance_text(sat: i64, id: &str, va: i64, status: &str, export: bool) -> Canonical {
    Canonical::default()
        .int(sat)
        .text(id)
        .int(va)
        .text(status)
        .int(export as i64)
}

fn usage_text(sat: i64, id: &str, va: i64, tag: &str, count: i64, export: bool) -> Canonical {
    Canonical::default()
        .int(sat)
        .text(id)
        .int(va)
        .text(tag)
        .int(count)
        .int(export as i64)
}

fn key_text(sat: i64, id: &str, tag: &str, va: i64) -> Canonical {
    Canonical::default().int(sat).text(id).text(tag).int(va)
}

/// An instance row's columns as stored, compared with what the snapshot says.
struct StoredInstance {
    va: i64,
    status: String,
    export: bool,
    same: bool,
}

impl<'a> Snapshot<'a> {
    pub fn begin(tx: &'a Connection, satellite_id: i64, account_id: i64, now: i64) -> Result<Self> {
        Self::begin_with(tx, satellite_id, account_id, now, true)
    }

    /// As `begin`; `self_capture` false leaves the ledger's capture to the triggers (the
    /// tests compare the two).
    fn begin_with(
        tx: &'a Connection,
        satellite_id: i64,
        account_id: i64,
        now: i64,
        self_capture: bool,
    ) -> Result<Self> {
        let stored: bool = tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM satellite_instances WHERE satellite_id = ?1)",
            )?
            .query_row([satellite_id], |r| r.get(0))?;
        let on = match self_capture {
            true => SelfCapture::begin(tx, &TABLES)?,
            false => None,
        };
        let ledger = match on {
            Some(on) => {
                let index = |t| {
                    on.table(t).ok_or_else(|| {
                        super::super::StoreError::not_found(format!("counted table {t}"))
                    })
                };
                let (instances, usage, keys) =
                    (index(TABLES[0])?, index(TABLES[1])?, index(TABLES[2])?);
                Some(Capture {
                    on,
                    instances,
                    usage,
                    keys,
                })
            }
            None => None,
        };
        let deferred = if stored {
            None
        } else {
            DeferredIndexes::defer_if_empty(tx, &TABLES)?
        };
        Ok(Self {
            fresh: !stored,
            ledger,
            deferred,
            first_rows: FirstRows::default(),
            tx,
            satellite_id,
            account_id,
            vas: HashMap::new(),
            seen: Listed::default(),
            tags: HashMap::new(),
            demand: BTreeMap::new(),
            instances: 0,
            usage: 0,
            written: Written::default(),
            now,
            reserved: Default::default(),
        })
    }

    /// Makes room for the `n` instances the bundle says it lists (a signed count, yet
    /// capped: it only sizes a buffer).
    pub fn expect_instances(&mut self, n: u64) {
        const CAP: u64 = 1 << 21;
        // Instance ids are about this long ("inst_" and a prefix and ten digits).
        const ID_BYTES: usize = 24;
        self.seen.reserve(n.min(CAP) as usize, ID_BYTES);
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

    fn move_demand(&mut self, va: i64, tag: &str, d: Demand, sign: i64) {
        if d == Demand::default() {
            return;
        }
        let e = self.demand.entry((va, tag.to_string())).or_default();
        e.0 += sign * d.total;
        e.1 += sign * d.export_ok;
    }

    /// One change of a satellite table for the ledger (`pick` names the table).
    fn capture(
        &self,
        pick: fn(&Capture<'a>) -> usize,
        old: Option<&Canonical>,
        new: Option<&Canonical>,
    ) -> Result<()> {
        match &self.ledger {
            Some(c) => c.on.record(pick(c), old, new),
            None => Ok(()),
        }
    }

    /// The stored row of an instance, compared column by column with `i` (as the
    /// upsert's `IS NOT` did). None when it is not stored.
    fn stored_instance(&self, i: &InstanceExport, va: i64) -> Result<Option<StoredInstance>> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT va_id, pid, sn, product_name, product_version, hostname, export_controlled,
                   registered_at, last_contact, status
                 FROM satellite_instances WHERE satellite_id = ?1 AND id = ?2",
            )?
            .query_row(params![self.satellite_id, i.id], |r| {
                let is = |n: usize, v: &str| -> rusqlite::Result<bool> {
                    Ok(r.get_ref(n)?.as_str_or_null()? == Some(v))
                };
                let stored_va: i64 = r.get(0)?;
                let export: bool = r.get(6)?;
                let status: String = r.get(9)?;
                let same = stored_va == va
                    && is(1, &i.pid)?
                    && is(2, &i.sn)?
                    && is(3, &i.product_name)?
                    && is(4, &i.product_version)?
                    && r.get_ref(5)?.as_str_or_null()? == i.hostname.as_deref()
                    && export == i.export_controlled
                    && r.get::<_, i64>(7)? == i.registered_at
                    && r.get::<_, i64>(8)? == i.last_contact
                    && status == i.status;
                Ok(StoredInstance {
                    va: stored_va,
                    status,
                    export,
                    same,
                })
            })
            .optional()?)
    }

    /// One instance, written only when new or different. False when the snapshot
    /// listed it already (a malformed bundle: the caller refuses it).
    pub fn instance(&mut self, i: InstanceExport) -> Result<bool> {
        if self.seen.contains(&i.id) {
            return Ok(false);
        }
        let va = self.va(&i.virtual_account)?;
        let sat = self.satellite_id;
        self.seen.insert(
            &i.id,
            Seen {
                va,
                export: i.export_controlled,
                usage: vec![],
                keys: vec![],
            },
        );
        self.instances += 1;
        let new = || instance_text(sat, &i.id, va, &i.status, i.export_controlled);
        if self.fresh {
            // On a first snapshot every instance is new: no lookup, and queued.
            self.capture(|c| c.instances, None, Some(&new()))?;
            self.written.instances += 1;
            self.first_rows.instance(self.tx, sat, i, va)?;
            return Ok(true);
        }
        match self.stored_instance(&i, va)? {
            Some(old) if old.same => {}
            Some(old) => {
                self.tx
                    .prepare_cached(
                        "UPDATE satellite_instances SET va_id = ?3, pid = ?4, sn = ?5, product_name = ?6,
                           product_version = ?7, hostname = ?8, export_controlled = ?9,
                           registered_at = ?10, last_contact = ?11, status = ?12
                         WHERE satellite_id = ?1 AND id = ?2",
                    )?
                    .execute(params![
                        sat, i.id, va, i.pid, i.sn, i.product_name, i.product_version, i.hostname,
                        i.export_controlled, i.registered_at, i.last_contact, i.status
                    ])?;
                // As the update trigger: only a change of a counted column is captured.
                if (old.va, old.status.as_str(), old.export)
                    != (va, i.status.as_str(), i.export_controlled)
                {
                    let old = instance_text(sat, &i.id, old.va, &old.status, old.export);
                    self.capture(|c| c.instances, Some(&old), Some(&new()))?;
                }
                self.written.instances += 1;
            }
            None => {
                first_rows::insert_instance(self.tx, sat, &i, va)?;
                self.capture(|c| c.instances, None, Some(&new()))?;
                self.written.instances += 1;
            }
        }
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
        let listed_before = seen.usage.contains(&t);
        if !listed_before {
            seen.usage.push(t);
            self.usage += 1;
        }
        let sat = self.satellite_id;
        // On a first snapshot a row listed once is new: no lookup, and queued.
        let queued = self.fresh && !listed_before;
        let old: Option<(i64, i64, bool)> = if queued {
            None
        } else {
            // A row listed twice may still be queued: stored before it is looked up.
            self.first_rows.flush(self.tx, sat)?;
            self.tx
                .prepare_cached(
                    "SELECT va_id, count, export FROM satellite_usage
                     WHERE satellite_id = ?1 AND instance_id = ?2 AND tag = ?3",
                )?
                .query_row(params![sat, instance_id, tag], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()?
        };
        let new = usage_text(sat, instance_id, va, tag, count, export);
        match old {
            Some(old) if old == (va, count, export) => return Ok(true),
            Some((old_va, old_count, old_export)) => {
                self.tx
                    .prepare_cached(
                        "UPDATE satellite_usage SET va_id = ?4, count = ?5, export = ?6
                         WHERE satellite_id = ?1 AND instance_id = ?2 AND tag = ?3",
                    )?
                    .execute(params![sat, instance_id, tag, va, count, export])?;
                let old = usage_text(sat, instance_id, old_va, tag, old_count, old_export);
                self.capture(|c| c.usage, Some(&old), Some(&new))?;
                self.move_demand(old_va, tag, Demand::of_usage(old_count, old_export), -1);
            }
            None if queued => {
                self.capture(|c| c.usage, None, Some(&new))?;
                let row = (instance_id.into(), va, tag.into(), count, export);
                self.first_rows.usage(self.tx, sat, row)?;
            }
            None => {
                first_rows::insert_usage(self.tx, sat, (instance_id, va, tag, count, export))?;
                self.capture(|c| c.usage, None, Some(&new))?;
            }
        }
        self.move_demand(va, tag, Demand::of_usage(count, export), 1);
        self.written.usage += 1;
        Ok(true)
    }

    /// A granted export key; like usage, it must follow its instance in the bundle.
    pub fn export_key(&mut self, instance_id: &str, tag: &str) -> Result<bool> {
        let t = self.tag(tag);
        let Some(seen) = self.seen.get_mut(instance_id) else {
            return Ok(false);
        };
        let listed_before = seen.keys.contains(&t);
        if !listed_before {
            seen.keys.push(t);
        }
        let (sat, va) = (self.satellite_id, seen.va);
        // A key references its instance, which may still be queued.
        self.first_rows.flush(self.tx, sat)?;
        let old: Option<i64> = if self.fresh && !listed_before {
            None
        } else {
            self.tx
                .prepare_cached(
                    "SELECT va_id FROM satellite_export_keys
                     WHERE satellite_id = ?1 AND instance_id = ?2 AND tag = ?3",
                )?
                .query_row(params![sat, instance_id, tag], |r| r.get(0))
                .optional()?
        };
        let new = key_text(sat, instance_id, tag, va);
        match old {
            Some(old) if old == va => return Ok(true),
            Some(old) => {
                self.tx
                    .prepare_cached(
                        "UPDATE satellite_export_keys SET va_id = ?4
                         WHERE satellite_id = ?1 AND instance_id = ?2 AND tag = ?3",
                    )?
                    .execute(params![sat, instance_id, tag, va])?;
                let old = key_text(sat, instance_id, tag, old);
                self.capture(|c| c.keys, Some(&old), Some(&new))?;
            }
            None => {
                self.tx
                    .prepare_cached(
                        "INSERT INTO satellite_export_keys (satellite_id, instance_id, tag, va_id)
                         VALUES (?1, ?2, ?3, ?4)",
                    )?
                    .execute(params![sat, instance_id, tag, va])?;
                self.capture(|c| c.keys, None, Some(&new))?;
            }
        }
        self.written.export_keys += 1;
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

    /// Deletes the stored rows the snapshot no longer lists: usage first, taking its
    /// demand with it, then export keys, then instances.
    fn remove_unlisted(&mut self) -> Result<()> {
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
            let old = usage_text(sat, &id, va, &tag, count, export);
            self.capture(|c| c.usage, Some(&old), None)?;
            self.move_demand(va, &tag, Demand::of_usage(count, export), -1);
            self.written.usage_removed += 1;
        }
        let gone_keys: Vec<(String, String, i64)> = {
            let mut stmt = tx.prepare(
                "SELECT instance_id, tag, va_id FROM satellite_export_keys WHERE satellite_id = ?1",
            )?;
            let mut rows = stmt.query([sat])?;
            let mut gone = vec![];
            while let Some(r) = rows.next()? {
                let (id, tag) = (text(r, 0)?, text(r, 1)?);
                if !self.listed(id, tag, |s| &s.keys) {
                    gone.push((id.into(), tag.into(), r.get(2)?));
                }
            }
            gone
        };
        for (id, tag, va) in gone_keys {
            tx.prepare_cached(
                "DELETE FROM satellite_export_keys WHERE satellite_id = ?1 AND instance_id = ?2 AND tag = ?3",
            )?
            .execute(params![sat, id, tag])?;
            let old = key_text(sat, &id, &tag, va);
            self.capture(|c| c.keys, Some(&old), None)?;
            self.written.export_keys_removed += 1;
        }
        let gone_instances: Vec<(String, i64, String, bool)> = {
            let mut stmt = tx.prepare(
                "SELECT id, va_id, status, export_controlled FROM satellite_instances WHERE satellite_id = ?1",
            )?;
            let mut rows = stmt.query([sat])?;
            let mut gone = vec![];
            while let Some(r) = rows.next()? {
                let id = text(r, 0)?;
                if !self.seen.contains(id) {
                    gone.push((id.into(), r.get(1)?, r.get(2)?, r.get(3)?));
                }
            }
            gone
        };
        for (id, va, status, export) in gone_instances {
            // Its usage and keys went above; the cascade finds nothing left.
            tx.prepare_cached(
                "DELETE FROM satellite_instances WHERE satellite_id = ?1 AND id = ?2",
            )?
            .execute(params![sat, id])?;
            let old = instance_text(sat, &id, va, &status, export);
            self.capture(|c| c.instances, Some(&old), None)?;
            self.written.instances_removed += 1;
        }
        Ok(())
    }

    /// Deletes what the snapshot no longer lists (usage first, taking its demand with
    /// it, then export keys, then instances), moves the pools' demand by what changed,
    /// and records the satellite's sequence and reservation holds.
    pub fn finish(mut self, sequence: i64) -> Result<Written> {
        // Stored while the ledger still captures by hand (the triggers come back below).
        self.first_rows.flush(self.tx, self.satellite_id)?;
        // A first snapshot stored only rows it listed: nothing to look for.
        if !self.fresh {
            self.remove_unlisted()?;
        }
        // The triggers are back before any other write of the transaction.
        if let Some(c) = self.ledger.take() {
            c.on.end()?;
        }
        let tx = self.tx;
        let sat = self.satellite_id;
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
        if let Some(deferred) = self.deferred.take() {
            deferred.rebuild(tx)?;
        }
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
        apply_with(store, seq, rows, true)
    }

    fn apply_with(
        store: &Store,
        seq: i64,
        rows: &[(&str, &str, bool, i64)],
        self_capture: bool,
    ) -> Written {
        let rows: Vec<(String, String, bool, i64)> = rows
            .iter()
            .map(|(i, v, e, c)| (i.to_string(), v.to_string(), *e, *c))
            .collect();
        store
            .write_blocking(move |tx| {
                let mut s = Snapshot::begin_with(tx, 1, 1, 0, self_capture)?;
                for (id, va, export, _) in &rows {
                    assert!(s.instance(inst(id, va, *export))?);
                }
                for (id, _, _, count) in &rows {
                    assert!(s.usage(id, "t", *count)?);
                }
                s.finish(seq)
            })
            .unwrap()
    }

    fn seeded(dir: &std::path::Path) -> Store {
        let store = Store::open(&dir.join("s.db")).unwrap();
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
        store
    }

    /// The ledger's entries without the wall-clock parts: what each batch changed, in
    /// which order, and the state after it.
    fn entries(store: &Store) -> Vec<(i64, [u8; 32], i64, [u8; 32])> {
        let mut out = vec![];
        store
            .read_blocking(|c| {
                crate::store::ledger::for_each_entry(c, |e, _| {
                    out.push((e.seq, e.batch_digest, e.changes, e.state_digest));
                    true
                })
            })
            .unwrap();
        out
    }

    /// The capture done in Rust writes the very ledger the triggers write: the same
    /// change lines in the same order, batch by batch, through a first snapshot, an
    /// unchanged one, inserts, updates (counted and uncounted columns) and deletes; the
    /// chain's state is the rows' at every step; and the triggers are back afterwards.
    #[test]
    fn self_capture_writes_the_ledger_the_triggers_write() {
        let steps: &[&[(&str, &str, bool, i64)]] = &[
            &[
                ("a", "A", false, 2),
                ("b", "A", false, 3),
                ("it's", "B", true, 1),
            ],
            &[
                ("a", "A", false, 2),
                ("b", "A", false, 3),
                ("it's", "B", true, 1),
            ],
            &[
                ("a", "A", false, 4),
                ("b", "B", true, 3),
                ("c", "A", false, 0),
            ],
            &[("b", "B", true, 3)],
            &[],
            &[("a", "A", false, 1)],
        ];
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (rust, triggers) = (seeded(d1.path()), seeded(d2.path()));
        for (n, rows) in steps.iter().enumerate() {
            let w = apply_with(&rust, n as i64 + 1, rows, true);
            assert_eq!(w, apply_with(&triggers, n as i64 + 1, rows, false));
            assert_eq!(entries(&rust), entries(&triggers), "after step {n}");
            let (last, _) = rust
                .read_blocking(crate::store::ledger::last_entry)
                .unwrap()
                .unwrap();
            let mut rows_now = crate::domain::ledger::StateDigest::default();
            rust.read_blocking(|c| {
                for t in crate::store::ledger::COUNTED {
                    crate::store::ledger::rows(c, t, |r| {
                        rows_now.add(&crate::domain::ledger::row_hash(t.table, r))
                    })?;
                }
                Ok(())
            })
            .unwrap();
            assert_eq!(rows_now.0, last.state_digest, "after step {n}");
        }
        // A write outside a snapshot is captured by the triggers again.
        let before = entries(&rust).len();
        rust.write_blocking(|tx| {
            tx.execute("UPDATE satellite_usage SET count = count + 1", [])?;
            Ok::<_, StoreError>(())
        })
        .unwrap();
        assert_eq!(entries(&rust).len(), before + 1);
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

    /// A first snapshot queues its rows and inserts them many to a statement: more
    /// instances than fill two statements are all stored as listed, a usage row listed a
    /// second time replaces the queued one (it is stored before it is looked up), an
    /// export key finds its queued instance, and the counters match a recount.
    #[test]
    fn a_first_snapshot_stores_every_queued_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = seeded(dir.path());
        let ids: Vec<String> = (0..75).map(|n| format!("inst_{n:03}")).collect();
        let ids2 = ids.clone();
        let w = store
            .write_blocking(move |tx| {
                let mut s = Snapshot::begin(tx, 1, 1, 0)?;
                s.expect_instances(75);
                for (n, id) in ids2.iter().enumerate() {
                    let va = if n % 2 == 0 { "A" } else { "B" };
                    assert!(s.instance(inst(id, va, n % 3 == 0))?);
                }
                for (n, id) in ids2.iter().enumerate() {
                    assert!(s.usage(id, "t", n as i64)?);
                }
                // Listed again with another count: the last one counts.
                assert!(s.usage(&ids2[70], "t", 1000)?);
                assert!(s.export_key(&ids2[74], "t")?);
                assert!(s.usage(&ids2[74], "u", 2)?);
                s.finish(1)
            })
            .unwrap();
        assert_eq!((w.instances, w.usage, w.export_keys), (75, 77, 1));
        let stored = store
            .read_blocking(|c| {
                let mut stmt = c.prepare(
                    "SELECT i.id, v.name, i.export_controlled, u.tag, u.count
                     FROM satellite_instances i JOIN virtual_accounts v ON v.id = i.va_id
                     LEFT JOIN satellite_usage u ON u.satellite_id = i.satellite_id
                       AND u.instance_id = i.id
                     ORDER BY i.id, u.tag",
                )?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                    })?
                    .collect::<rusqlite::Result<Vec<(String, String, bool, String, i64)>>>()?;
                Ok::<_, StoreError>(rows)
            })
            .unwrap();
        let mut expected: Vec<(String, String, bool, String, i64)> = ids
            .iter()
            .enumerate()
            .map(|(n, id)| {
                let va = if n % 2 == 0 { "A" } else { "B" };
                let count = if n == 70 { 1000 } else { n as i64 };
                (id.clone(), va.into(), n % 3 == 0, "t".into(), count)
            })
            .collect();
        expected.push((ids[74].clone(), "A".into(), false, "u".into(), 2));
        expected.sort();
        assert_eq!(stored, expected);
        let recount = store.read_blocking(counters::recount).unwrap();
        assert!(recount.is_empty(), "{recount:?}");
    }

    /// Demand follows an instance that moves pool or turns export-controlled, a changed
    /// count moves it by the difference, and the counters always match a recount.
    #[test]
    fn demand_moves_by_the_rows_that_changed_and_matches_a_recount() {
        let dir = tempfile::tempdir().unwrap();
        let store = seeded(dir.path());
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
