//! Product instances: registration, usage reports, renewal, removal, transfer, timers.
//! Every change updates the pool demand and status counters in the same transaction.

use super::accounts::{Account, VirtualAccount};
use super::counters;
use super::events::{self, NewEvent};
use super::licenses;
use super::page::{self, Page};
use super::{Result, StoreError};
use crate::crypto::secrets;
use crate::domain::compliance::{self, EntitlementStatus};
use crate::domain::instance::{self, dispose_report, InstanceStatus, ReportDisposition, Udi};
use crate::domain::timers;
use crate::domain::DomainError;
use chrono::NaiveDate;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::json;

#[derive(Clone, Debug)]
pub struct Instance {
    pub id: String,
    pub va_id: i64,
    pub udi: Udi,
    pub public_key: Vec<u8>,
    pub product_name: String,
    pub product_version: String,
    pub hostname: Option<String>,
    pub export_controlled: bool,
    pub registered_at: i64,
    pub last_contact: i64,
    pub cert_renew_after: i64,
    pub cert_expires_at: i64,
    pub auth_renew_after: Option<i64>,
    pub auth_expires_at: Option<i64>,
    pub status: InstanceStatus,
    pub last_report_id: Option<String>,
    pub last_measured_at_us: Option<i64>,
}

pub(super) const COLUMNS: &str =
    "id, va_id, pid, sn, uuid, public_key, product_name, product_version, hostname,
    export_controlled, registered_at, last_contact, cert_renew_after, cert_expires_at,
    auth_renew_after, auth_expires_at, status, last_report_id, last_measured_at_us";

pub(super) fn row(r: &Row<'_>) -> rusqlite::Result<Instance> {
    Ok(Instance {
        id: r.get(0)?,
        va_id: r.get(1)?,
        udi: Udi {
            pid: r.get(2)?,
            sn: r.get(3)?,
            uuid: r.get(4)?,
        },
        public_key: r.get(5)?,
        product_name: r.get(6)?,
        product_version: r.get(7)?,
        hostname: r.get(8)?,
        export_controlled: r.get(9)?,
        registered_at: r.get(10)?,
        last_contact: r.get(11)?,
        cert_renew_after: r.get(12)?,
        cert_expires_at: r.get(13)?,
        auth_renew_after: r.get(14)?,
        auth_expires_at: r.get(15)?,
        status: super::columns::enum_column(r, 16)?,
        last_report_id: r.get(17)?,
        last_measured_at_us: r.get(18)?,
    })
}

pub fn find_by_id(conn: &Connection, id: &str) -> Result<Option<Instance>> {
    let sql = format!("SELECT {COLUMNS} FROM instances WHERE id = ?1");
    Ok(conn.prepare_cached(&sql)?.query_row([id], row).optional()?)
}

/// What authenticating an agent's request needs: its key and when its registration ends.
pub struct Credentials {
    pub public_key: Vec<u8>,
    pub cert_expires_at: i64,
}

/// The instance a signed request speaks for, and the key its signature was checked with.
/// That key may come from the web layer's cache, so every write made for a signed request
/// confirms it in its own transaction: still the instance's key, registration current.
#[derive(Clone, Copy)]
pub struct Signer<'a> {
    pub id: &'a str,
    pub public_key: &'a [u8; 32],
}

fn not_registered() -> StoreError {
    instance::not_registered().into()
}

/// The write-time check of a signed request: the key it was verified with is still the
/// instance's (a re-registration may have replaced it), and the registration is current.
fn confirm(signer: Signer<'_>, stored_key: &[u8], cert_expires_at: i64, now: i64) -> Result<()> {
    if stored_key != signer.public_key.as_slice() {
        return Err(instance::bad_signature().into());
    }
    Ok(instance::check_registration_current(cert_expires_at, now)?)
}

/// The instance a signed request speaks for, confirmed in the caller's transaction.
pub fn signed(tx: &Connection, now: i64, signer: Signer<'_>) -> Result<Instance> {
    let inst = find_by_id(tx, signer.id)?.ok_or_else(not_registered)?;
    confirm(signer, &inst.public_key, inst.cert_expires_at, now)?;
    Ok(inst)
}

pub fn credentials(conn: &Connection, id: &str) -> Result<Option<Credentials>> {
    Ok(conn
        .prepare_cached("SELECT public_key, cert_expires_at FROM instances WHERE id = ?1")?
        .query_row([id], |r| {
            Ok(Credentials {
                public_key: r.get(0)?,
                cert_expires_at: r.get(1)?,
            })
        })
        .optional()?)
}

pub fn find_in_va(conn: &Connection, va: &VirtualAccount, id: &str) -> Result<Instance> {
    find_by_id(conn, id)?
        .filter(|i| i.va_id == va.id)
        .ok_or_else(|| StoreError::not_found(format!("instance '{id}' in '{}'", va.name)))
}

pub fn usage_of(conn: &Connection, id: &str) -> Result<Vec<(String, i64)>> {
    Ok(conn
        .prepare_cached(
            "SELECT tag, count FROM instance_usage WHERE instance_id = ?1 ORDER BY tag",
        )?
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

pub fn history(conn: &Connection, id: &str) -> Result<Vec<(i64, String, String)>> {
    Ok(conn
        .prepare_cached(
            "SELECT at, status, note FROM instance_history WHERE instance_id = ?1 ORDER BY id DESC LIMIT 100",
        )?
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Instances of a virtual account by id, optionally only those whose id, pid, sn or
/// hostname starts with `search`.
pub fn list(
    conn: &Connection,
    va_id: i64,
    search: Option<&str>,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<Instance>> {
    let pattern = search.map(str::trim).filter(|s| !s.is_empty()).map(|s| {
        format!(
            "{}%",
            s.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    let sql = format!(
        "SELECT {COLUMNS} FROM instances WHERE va_id = ?1 AND (?2 IS NULL OR id > ?2)
           AND (?3 IS NULL OR id LIKE ?3 ESCAPE '\\' OR pid LIKE ?3 ESCAPE '\\'
                OR sn LIKE ?3 ESCAPE '\\' OR hostname LIKE ?3 ESCAPE '\\')
         ORDER BY id LIMIT ?4"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![va_id, after, pattern, limit + 1], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(page::from_rows(rows, limit, |i| i.id.clone()))
}

pub fn status_counts(
    conn: &Connection,
    va_id: Option<i64>,
    account_id: Option<i64>,
) -> Result<Vec<(String, i64)>> {
    Ok(conn
        .prepare_cached(
            "SELECT c.status, sum(c.n) FROM va_status_counts c JOIN virtual_accounts v ON v.id = c.va_id
             WHERE (?1 IS NULL OR c.va_id = ?1) AND (?2 IS NULL OR v.account_id = ?2) AND c.n > 0
             GROUP BY c.status ORDER BY c.status",
        )?
        .query_map(params![va_id, account_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Which instance a status change is for, and the status it leaves.
struct StatusOf<'a> {
    id: &'a str,
    va_id: i64,
    status: InstanceStatus,
}

impl<'a> From<&'a Instance> for StatusOf<'a> {
    fn from(i: &'a Instance) -> Self {
        StatusOf {
            id: &i.id,
            va_id: i.va_id,
            status: i.status,
        }
    }
}

fn set_status(
    tx: &Connection,
    inst: StatusOf<'_>,
    status: InstanceStatus,
    now: i64,
    note: &str,
) -> Result<()> {
    if inst.status == status {
        return Ok(());
    }
    tx.prepare_cached("UPDATE instances SET status = ?2 WHERE id = ?1")?
        .execute(params![inst.id, status.as_str()])?;
    counters::bump_status(tx, inst.va_id, inst.status.as_str(), -1)?;
    counters::bump_status(tx, inst.va_id, status.as_str(), 1)?;
    add_history(tx, inst.id, now, status.as_str(), note)
}

pub fn add_history(tx: &Connection, id: &str, now: i64, status: &str, note: &str) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO instance_history (instance_id, at, status, note) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![id, now, status, note])?;
    Ok(())
}

/// The virtual account's name, its account's id and name.
pub fn va_and_account(conn: &Connection, va_id: i64) -> Result<(String, i64, String)> {
    Ok(conn
        .prepare_cached(
            "SELECT v.name, a.id, a.name FROM virtual_accounts v JOIN accounts a ON a.id = v.account_id
             WHERE v.id = ?1",
        )?
        .query_row([va_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?)
}

/// The instance with this UDI identity, wherever it is (a UDI is unique server-wide).
pub fn find_by_udi(conn: &Connection, pid: &str, sn: &str) -> Result<Option<Instance>> {
    let sql = format!("SELECT {COLUMNS} FROM instances WHERE pid = ?1 AND sn = ?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![pid, sn], row)
        .optional()?)
}

/// What a registration writes to the instance row (new or existing).
pub struct Enrolment<'a> {
    pub va_id: i64,
    pub udi: &'a Udi,
    pub public_key: &'a [u8; 32],
    pub product_name: &'a str,
    pub product_version: &'a str,
    pub hostname: Option<&'a str>,
    pub export_controlled: bool,
    pub token_id: &'a str,
    pub cert_renew_after: i64,
    pub cert_expires_at: i64,
}

/// Inserts a new instance (status `registered`) with its counters and first history line.
pub fn insert(tx: &Connection, now: i64, e: &Enrolment<'_>) -> Result<String> {
    // Time first, then random: new ids land next to each other in every index
    // keyed by id, instead of on a random page each among a million.
    let id = format!("inst_{:09x}{}", now.max(0), secrets::random_secret(9));
    tx.prepare_cached(
        "INSERT INTO instances (id, va_id, pid, sn, uuid, public_key, product_name, product_version,
           hostname, export_controlled, token_id, registered_at, last_contact, cert_renew_after,
           cert_expires_at, status)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13, ?14, 'registered')",
    )?
    .execute(params![
        id,
        e.va_id,
        e.udi.pid,
        e.udi.sn,
        e.udi.uuid,
        e.public_key.as_slice(),
        e.product_name,
        e.product_version,
        e.hostname,
        e.export_controlled,
        e.token_id,
        now,
        e.cert_renew_after,
        e.cert_expires_at
    ])?;
    counters::bump_va(tx, e.va_id, 0, 1)?;
    counters::bump_status(tx, e.va_id, InstanceStatus::Registered.as_str(), 1)?;
    add_history(
        tx,
        &id,
        now,
        InstanceStatus::Registered.as_str(),
        InstanceStatus::Registered.as_str(),
    )?;
    Ok(id)
}

/// Rewrites an existing instance's registration: new key, product, hostname, token and
/// certificate times. Its virtual account and usage are left to the caller.
pub fn enrol_again(tx: &Connection, id: &str, now: i64, e: &Enrolment<'_>) -> Result<()> {
    tx.prepare_cached(
        "UPDATE instances SET public_key = ?2, product_name = ?3, product_version = ?4,
           hostname = ?5, export_controlled = ?6, token_id = ?7, last_contact = ?8,
           cert_renew_after = ?9, cert_expires_at = ?10, uuid = coalesce(?11, uuid)
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        e.public_key.as_slice(),
        e.product_name,
        e.product_version,
        e.hostname,
        e.export_controlled,
        e.token_id,
        now,
        e.cert_renew_after,
        e.cert_expires_at,
        e.udi.uuid
    ])?;
    Ok(())
}

/// Moves an instance's stored usage between the export and non-export demand buckets of
/// its pool (a re-registration with a token of the other kind).
pub fn switch_export_bucket(tx: &Connection, inst: &Instance, export: bool) -> Result<()> {
    if inst.export_controlled != export {
        counters::add_instance_usage(tx, &inst.id, inst.va_id, inst.export_controlled, -1)?;
        counters::add_instance_usage(tx, &inst.id, inst.va_id, export, 1)?;
    }
    Ok(())
}

/// Moves an instance to another virtual account holding nothing: its usage leaves the old
/// pool at once, its authorization ends (it is `registered` again until it reports in the
/// new VA), and the counters of both VAs follow, all in the caller's transaction.
pub fn move_released(
    tx: &Connection,
    inst: &Instance,
    to_va: i64,
    now: i64,
    note: &str,
) -> Result<()> {
    counters::add_instance_usage(tx, &inst.id, inst.va_id, inst.export_controlled, -1)?;
    super::export_keys::release_instance(tx, &inst.id, now, "instance.transferred")?;
    tx.prepare_cached("DELETE FROM instance_usage WHERE instance_id = ?1")?
        .execute([&inst.id])?;
    tx.prepare_cached(
        "UPDATE instances SET va_id = ?2, status = ?3, auth_renew_after = NULL,
           auth_expires_at = NULL, auth_expiry_day = NULL WHERE id = ?1",
    )?
    .execute(params![inst.id, to_va, InstanceStatus::Registered.as_str()])?;
    counters::bump_va(tx, inst.va_id, 0, -1)?;
    counters::bump_va(tx, to_va, 0, 1)?;
    counters::bump_status(tx, inst.va_id, inst.status.as_str(), -1)?;
    counters::bump_status(tx, to_va, InstanceStatus::Registered.as_str(), 1)?;
    add_history(tx, &inst.id, now, InstanceStatus::Registered.as_str(), note)
}

/// Records a changed hostname (renewal); returns whether it changed.
pub fn set_hostname(tx: &Connection, id: &str, hostname: &str) -> Result<bool> {
    let n = tx
        .prepare_cached("UPDATE instances SET hostname = ?2 WHERE id = ?1 AND hostname IS NOT ?2")?
        .execute(params![id, hostname])?;
    Ok(n > 0)
}

/// A usage report as validated by the web layer.
pub struct Report {
    pub report_id: String,
    /// Microseconds since the epoch.
    pub measured_at_us: i64,
    pub entitlements: Vec<(String, i64)>,
}

pub struct ReportOutcome {
    pub status: EntitlementStatus,
    pub entitlements: Vec<(String, i64, EntitlementStatus)>,
    pub auth_renew_after: Option<i64>,
    pub auth_expires_at: Option<i64>,
    pub disposition: ReportDisposition,
}

/// What a usage report reads of its instance (the whole row is not needed).
struct Reporting {
    rowid: i64,
    public_key: Vec<u8>,
    cert_expires_at: i64,
    va_id: i64,
    export_controlled: bool,
    status: InstanceStatus,
    last_report_id: Option<String>,
    last_measured_at_us: Option<i64>,
    auth_renew_after: Option<i64>,
    auth_expires_at: Option<i64>,
    auth_expiry_day: Option<i64>,
}

fn reporting(tx: &Connection, id: &str) -> Result<Reporting> {
    tx.prepare_cached(
        "SELECT rowid, public_key, cert_expires_at, va_id, export_controlled, status,
                last_report_id, last_measured_at_us, auth_renew_after, auth_expires_at,
                auth_expiry_day
         FROM instances WHERE id = ?1",
    )?
    .query_row([id], |r| {
        Ok(Reporting {
            rowid: r.get(0)?,
            public_key: r.get(1)?,
            cert_expires_at: r.get(2)?,
            va_id: r.get(3)?,
            export_controlled: r.get(4)?,
            status: super::columns::enum_column(r, 5)?,
            last_report_id: r.get(6)?,
            last_measured_at_us: r.get(7)?,
            auth_renew_after: r.get(8)?,
            auth_expires_at: r.get(9)?,
            auth_expiry_day: r.get(10)?,
        })
    })
    .optional()?
    .ok_or_else(not_registered)
}

/// Makes an instance's stored usage `new`, touching only the tags whose count changed
/// (most reports repeat the last one), and moves the pool demand by the differences.
fn replace_usage(tx: &Connection, id: &str, inst: &Reporting, new: &[(String, i64)]) -> Result<()> {
    let old: std::collections::HashMap<String, i64> = usage_of(tx, id)?.into_iter().collect();
    let demand = |tag: &str, delta: i64| {
        counters::add_demand(tx, inst.va_id, tag, delta, inst.export_controlled)
    };
    for (tag, count) in new {
        match old.get(tag) {
            Some(before) if before == count => {}
            Some(before) => {
                demand(tag, count - before)?;
                tx.prepare_cached(
                    "UPDATE instance_usage SET count = ?3 WHERE instance_id = ?1 AND tag = ?2",
                )?
                .execute(params![id, tag, count])?;
            }
            None => {
                demand(tag, *count)?;
                tx.prepare_cached(
                    "INSERT INTO instance_usage (instance_id, tag, count) VALUES (?1, ?2, ?3)",
                )?
                .execute(params![id, tag, count])?;
            }
        }
    }
    let kept: std::collections::HashSet<&str> = new.iter().map(|(t, _)| t.as_str()).collect();
    for (tag, before) in &old {
        if !kept.contains(tag.as_str()) {
            demand(tag, -before)?;
            tx.prepare_cached("DELETE FROM instance_usage WHERE instance_id = ?1 AND tag = ?2")?
                .execute(params![id, tag])?;
        }
    }
    Ok(())
}

/// Records an accepted report and renews the authorization. The expiry-day column (and
/// its index) is written only when the day moves.
fn accept_report(
    tx: &Connection,
    now: i64,
    inst: &Reporting,
    report: &Report,
) -> Result<(i64, i64)> {
    let (renew, expires) = timers::authorization_times(now);
    let day = timers::expiry_day(expires);
    let (rid, at) = (&report.report_id, report.measured_at_us);
    // By rowid: the row was just read, and this skips a second walk of the id index.
    if inst.auth_expiry_day == Some(day) {
        tx.prepare_cached(
            "UPDATE instances SET last_report_id = ?2, last_measured_at_us = ?3, last_contact = ?4,
               auth_renew_after = ?5, auth_expires_at = ?6 WHERE rowid = ?1",
        )?
        .execute(params![inst.rowid, rid, at, now, renew, expires])?;
    } else {
        tx.prepare_cached(
            "UPDATE instances SET last_report_id = ?2, last_measured_at_us = ?3, last_contact = ?4,
               auth_renew_after = ?5, auth_expires_at = ?6, auth_expiry_day = ?7 WHERE rowid = ?1",
        )?
        .execute(params![inst.rowid, rid, at, now, renew, expires, day])?;
    }
    Ok((renew, expires))
}

pub fn apply_report(
    tx: &Connection,
    now: i64,
    today: NaiveDate,
    signer: Signer<'_>,
    report: &Report,
) -> Result<ReportOutcome> {
    let id = signer.id;
    let inst = reporting(tx, id)?;
    confirm(signer, &inst.public_key, inst.cert_expires_at, now)?;
    let disposition = dispose_report(
        inst.last_report_id.as_deref(),
        inst.last_measured_at_us,
        &report.report_id,
        report.measured_at_us,
    );
    let (mut auth_renew_after, mut auth_expires_at) = (inst.auth_renew_after, inst.auth_expires_at);
    // A UDI holding a live reservation draws nothing from the pool for its reserved tags.
    let reserved = super::reservations::held_by_instance(tx, id)?;
    let is_reserved = |tag: &str| {
        reserved
            .as_ref()
            .is_some_and(|(universal, tags)| *universal || tags.iter().any(|t| t == tag))
    };
    let counts: Vec<(String, i64)> = if disposition == ReportDisposition::Apply {
        let drawn: Vec<(String, i64)> = (report.entitlements.iter())
            .filter(|(tag, _)| !is_reserved(tag))
            .cloned()
            .collect();
        replace_usage(tx, id, &inst, &drawn)?;
        let (renew, expires) = accept_report(tx, now, &inst, report)?;
        (auth_renew_after, auth_expires_at) = (Some(renew), Some(expires));
        report.entitlements.clone()
    } else {
        tx.prepare_cached("UPDATE instances SET last_contact = ?2 WHERE rowid = ?1")?
            .execute(params![inst.rowid, now])?;
        usage_of(tx, id)?
    };
    let (licenses, evaluation) = licenses::evaluate(tx, inst.va_id, today)?;
    let pools: Vec<_> = licenses.iter().map(|l| l.pool()).collect();
    // A tag the instance holds an export key for is judged as for an export-controlled
    // token; that matters only where some pool is export-controlled.
    let keyed = if pools.iter().any(|p| p.export_controlled) {
        super::export_keys::granted_tags(tx, id)?
    } else {
        Default::default()
    };
    let entitlements: Vec<(String, i64, EntitlementStatus)> = counts
        .into_iter()
        .map(|(tag, count)| {
            if is_reserved(&tag) {
                return (tag, count, EntitlementStatus::Reserved);
            }
            let s = compliance::entitlement_status(
                &pools,
                &evaluation,
                &tag,
                count,
                inst.export_controlled || keyed.contains(&tag),
            );
            (tag, count, s)
        })
        .collect();
    let statuses: Vec<EntitlementStatus> = entitlements.iter().map(|e| e.2).collect();
    let status = compliance::overall_status(&statuses);
    if disposition == ReportDisposition::Apply {
        let from = StatusOf {
            id,
            va_id: inst.va_id,
            status: inst.status,
        };
        let to = match InstanceStatus::from_entitlement(status) {
            InstanceStatus::Authorized if reserved.is_some() => InstanceStatus::Reserved,
            other => other,
        };
        set_status(tx, from, to, now, "usage report")?;
    }
    Ok(ReportOutcome {
        status,
        entitlements,
        auth_renew_after,
        auth_expires_at,
        disposition,
    })
}

/// Issues new certificate times for an instance (the id certificate's renewal).
pub fn renew_certificate(
    tx: &Connection,
    now: i64,
    signer: Signer<'_>,
) -> Result<(Instance, String)> {
    let id = signer.id;
    let inst = find_by_id(tx, id)?.ok_or_else(not_registered)?;
    confirm(signer, &inst.public_key, inst.cert_expires_at, now)?;
    let (renew_after, expires_at) = timers::certificate_times(now);
    tx.prepare_cached(
        "UPDATE instances SET cert_renew_after = ?2, cert_expires_at = ?3, last_contact = ?4 WHERE id = ?1",
    )?
    .execute(params![id, renew_after, expires_at, now])?;
    let (va_name, _, _) = va_and_account(tx, inst.va_id)?;
    Ok((
        Instance {
            cert_renew_after: renew_after,
            cert_expires_at: expires_at,
            last_contact: now,
            ..inst
        },
        va_name,
    ))
}

/// Deletes an instance and releases its licenses at once.
fn delete(tx: &Connection, inst: &Instance, now: i64, actor: &str, action: &str) -> Result<()> {
    counters::add_instance_usage(tx, &inst.id, inst.va_id, inst.export_controlled, -1)?;
    super::export_keys::release_instance(tx, &inst.id, now, action)?;
    tx.prepare_cached("DELETE FROM instances WHERE id = ?1")?
        .execute([&inst.id])?;
    counters::bump_va(tx, inst.va_id, 0, -1)?;
    counters::bump_status(tx, inst.va_id, inst.status.as_str(), -1)?;
    let (va_name, account_id, account_name) = va_and_account(tx, inst.va_id)?;
    events::record(
        tx,
        now,
        NewEvent {
            actor,
            action,
            account: Some((account_id, &account_name)),
            target: &inst.id,
            detail: json!({ "virtual_account": va_name, "pid": inst.udi.pid, "sn": inst.udi.sn }),
        },
    )
}

pub fn deregister(tx: &Connection, now: i64, signer: Signer<'_>) -> Result<()> {
    let id = signer.id;
    let inst = find_by_id(tx, id)?.ok_or_else(not_registered)?;
    confirm(signer, &inst.public_key, inst.cert_expires_at, now)?;
    delete(
        tx,
        &inst,
        now,
        &format!("instance:{id}"),
        "instance.deregistered",
    )
}

/// Removes an instance by hand (`actor` may: `service::instances` checked).
pub fn remove(tx: &Connection, actor: &str, now: i64, va: &VirtualAccount, id: &str) -> Result<()> {
    let inst = find_in_va(tx, va, id)?;
    delete(tx, &inst, now, actor, "instance.removed")
}

/// Moves an instance, with its usage, to `to`, another virtual account of the same account
/// (`service::instances` checked who may and chose `to`).
pub fn transfer(
    tx: &Connection,
    actor: &str,
    now: i64,
    account: &Account,
    from: &VirtualAccount,
    id: &str,
    to: VirtualAccount,
) -> Result<VirtualAccount> {
    let inst = find_in_va(tx, from, id)?;
    let clash: Option<String> = tx
        .query_row(
            "SELECT id FROM instances WHERE va_id = ?1 AND pid = ?2 AND sn = ?3",
            params![to.id, inst.udi.pid, inst.udi.sn],
            |r| r.get(0),
        )
        .optional()?;
    if clash.is_some() {
        return Err(DomainError::conflict(
            "already_registered",
            format!("'{}' already has an instance with this UDI.", to.name),
        )
        .into());
    }
    counters::add_instance_usage(tx, &inst.id, from.id, inst.export_controlled, -1)?;
    super::export_keys::release_instance(tx, &inst.id, now, "instance.transferred")?;
    tx.execute(
        "UPDATE instances SET va_id = ?2 WHERE id = ?1",
        params![inst.id, to.id],
    )?;
    counters::add_instance_usage(tx, &inst.id, to.id, inst.export_controlled, 1)?;
    counters::bump_va(tx, from.id, 0, -1)?;
    counters::bump_va(tx, to.id, 0, 1)?;
    counters::bump_status(tx, from.id, inst.status.as_str(), -1)?;
    counters::bump_status(tx, to.id, inst.status.as_str(), 1)?;
    add_history(
        tx,
        &inst.id,
        now,
        inst.status.as_str(),
        &format!("transferred from {} to {}", from.name, to.name),
    )?;
    events::record(
        tx,
        now,
        NewEvent {
            actor,
            action: "instance.transferred",
            account: Some((account.id, &account.name)),
            target: &inst.id,
            detail: json!({ "from": from.name, "to": to.name }),
        },
    )?;
    Ok(to)
}

/// Lapses authorizations not renewed for 90 days: such instances hold no licenses until
/// they report again. Handles at most `limit` per call so one transaction stays short.
pub fn expire_authorizations(tx: &Connection, now: i64, limit: u32) -> Result<usize> {
    // The day index narrows the search to instances lapsing today or earlier; the exact
    // time decides.
    let sql = format!(
        "SELECT {COLUMNS} FROM instances
         WHERE auth_expiry_day IS NOT NULL AND auth_expiry_day <= ?1 AND auth_expires_at <= ?2
         LIMIT ?3"
    );
    let due: Vec<Instance> = tx
        .prepare_cached(&sql)?
        .query_map(params![timers::expiry_day(now), now, limit], row)?
        .collect::<rusqlite::Result<_>>()?;
    for inst in &due {
        counters::add_instance_usage(tx, &inst.id, inst.va_id, inst.export_controlled, -1)?;
        tx.prepare_cached("DELETE FROM instance_usage WHERE instance_id = ?1")?
            .execute([&inst.id])?;
        tx.prepare_cached(
            "UPDATE instances SET auth_expires_at = NULL, auth_renew_after = NULL,
               auth_expiry_day = NULL WHERE id = ?1",
        )?
        .execute([&inst.id])?;
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

/// Treats instances whose registration (id certificate) ended unrenewed as deregistered:
/// they are deleted and their licenses released, as if the product had deregistered.
/// At most `limit` per call.
pub fn expire_registrations(tx: &Connection, now: i64, limit: u32) -> Result<usize> {
    let sql = format!("SELECT {COLUMNS} FROM instances WHERE cert_expires_at <= ?1 LIMIT ?2");
    let due: Vec<Instance> = tx
        .prepare_cached(&sql)?
        .query_map(params![now, limit], row)?
        .collect::<rusqlite::Result<_>>()?;
    for inst in &due {
        end_registration(tx, inst, now)?;
    }
    Ok(due.len())
}

/// Ends one instance whose registration expired: deleted, licenses released, event
/// `instance.registration_expired`.
pub fn end_registration(tx: &Connection, inst: &Instance, now: i64) -> Result<()> {
    delete(tx, inst, now, "system", "instance.registration_expired")
}

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
pub(super) fn like_escaped(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Instances of a virtual account by id for the instance list: `search` is a substring of
/// the id, pid, sn, hostname, product name or status (spaces match the status's
/// underscores); `status` keeps one status only.
pub fn list_filtered(
    conn: &Connection,
    va_id: i64,
    search: Option<&str>,
    status: Option<InstanceStatus>,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<Instance>> {
    let search = search.map(str::trim).filter(|s| !s.is_empty());
    let pattern = search.map(|s| format!("%{}%", like_escaped(s)));
    let status_pattern = search.map(|s| format!("%{}%", like_escaped(&s.replace(' ', "_"))));
    let sql = format!(
        "SELECT {COLUMNS} FROM instances WHERE va_id = ?1 AND (?2 IS NULL OR id > ?2)
           AND (?3 IS NULL OR id LIKE ?3 ESCAPE '\\' OR pid LIKE ?3 ESCAPE '\\'
                OR sn LIKE ?3 ESCAPE '\\' OR hostname LIKE ?3 ESCAPE '\\'
                OR product_name LIKE ?3 ESCAPE '\\' OR status LIKE ?5 ESCAPE '\\')
           AND (?6 IS NULL OR status = ?6)
         ORDER BY id LIMIT ?4"
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(
            params![
                va_id,
                after,
                pattern,
                limit + 1,
                status_pattern,
                status.map(InstanceStatus::as_str)
            ],
            row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(page::from_rows(rows, limit, |i| i.id.clone()))
}
