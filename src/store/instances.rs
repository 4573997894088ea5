//! Product instances: registration, usage reports, renewal, removal, transfer, timers.
//! Every change updates the pool demand and status counters in the same transaction.

use super::accounts::{Account, VirtualAccount};
use super::counters;
use super::events::{self, NewEvent};
use super::instance_ids;
use super::page::{self, Page};
use super::status_codes;
use super::{Result, StoreError};
use crate::domain::instance::{self, InstanceStatus, Udi};
use crate::domain::timers;
use crate::domain::DomainError;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::json;

#[derive(Clone, Debug)]
pub struct Instance {
    /// The external id (opaque text, `store::instance_ids`).
    pub id: String,
    /// The integer key inside the store (rows reference it); 0 for a satellite's instance.
    /// Not for the layers above: they name an instance by `id`.
    pub(crate) key: i64,
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

/// The instance columns `row` reads, as SQL (`format!("SELECT {COLUMNS} ...")`): the
/// external id first, the status as its text, the renewal times from the expiries (they
/// are not stored: `timers` sets both together, a fixed time apart), the integer key last.
pub(super) struct Columns;

impl std::fmt::Display for Columns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{ext}, va_id, pid, sn, uuid, public_key, product_name, product_version, hostname,
             export_controlled, registered_at, last_contact, cert_expires_at - {cert},
             cert_expires_at, auth_expires_at - {auth}, auth_expires_at, {status},
             last_report_id, last_measured_at_us, id",
            ext = instance_ids::external_sql(""),
            status = status_codes::text_sql("status"),
            cert = timers::CERT_VALID - timers::CERT_RENEW_AFTER,
            auth = timers::AUTH_VALID - timers::AUTH_RENEW_AFTER,
        )
    }
}

pub(super) const COLUMNS: Columns = Columns;

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
        last_report_id: super::instance_reports::report_id_text(r.get_ref(17)?),
        last_measured_at_us: r.get(18)?,
        key: r.get(19)?,
    })
}

pub fn find_by_id(conn: &Connection, id: &str) -> Result<Option<Instance>> {
    let Some(key) = instance_ids::key(conn, id)? else {
        return Ok(None);
    };
    find_by_key(conn, key)
}

pub(super) fn find_by_key(conn: &Connection, key: i64) -> Result<Option<Instance>> {
    // Made once: renewals run it, and the statement cache is keyed by its text.
    static SQL: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| format!("SELECT {COLUMNS} FROM instances WHERE id = ?1"));
    Ok(conn
        .prepare_cached(&SQL)?
        .query_row([key], row)
        .optional()?)
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

pub(super) fn not_registered() -> StoreError {
    instance::not_registered().into()
}

/// The write-time check of a signed request: the key it was verified with is still the
/// instance's (a re-registration may have replaced it), and the registration is current.
pub(super) fn confirm(
    signer: Signer<'_>,
    stored_key: &[u8],
    cert_expires_at: i64,
    now: i64,
) -> Result<()> {
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
    let Some(key) = instance_ids::key(conn, id)? else {
        return Ok(None);
    };
    Ok(conn
        .prepare_cached("SELECT public_key, cert_expires_at FROM instances WHERE id = ?1")?
        .query_row([key], |r| {
            Ok(Credentials {
                public_key: r.get(0)?,
                cert_expires_at: r.get(1)?,
            })
        })
        .optional()?)
}

/// An instance's key as stored, by its integer key (for the web layer's key table).
pub struct StoredKey {
    pub key: i64,
    pub public_key: Vec<u8>,
    pub cert_expires_at: i64,
}

/// Up to `limit` stored keys of this server's own ids (not migrated rows), in key order
/// after `after`.
pub fn keys_after(conn: &Connection, after: i64, limit: usize) -> Result<Vec<StoredKey>> {
    let rows = conn
        .prepare_cached(
            "SELECT id, public_key, cert_expires_at FROM instances
             WHERE id > ?1 AND legacy_id IS NULL ORDER BY id LIMIT ?2",
        )?
        .query_map(params![after, limit as i64], |r| {
            Ok(StoredKey {
                key: r.get(0)?,
                public_key: r.get(1)?,
                cert_expires_at: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub fn find_in_va(conn: &Connection, va: &VirtualAccount, id: &str) -> Result<Instance> {
    find_by_id(conn, id)?
        .filter(|i| i.va_id == va.id)
        .ok_or_else(|| StoreError::not_found(format!("instance '{id}' in '{}'", va.name)))
}

pub fn usage_of(conn: &Connection, id: &str) -> Result<Vec<(String, i64)>> {
    match instance_ids::key(conn, id)? {
        Some(key) => usage_of_key(conn, key),
        None => Ok(Vec::new()),
    }
}

pub(super) fn usage_of_key(conn: &Connection, key: i64) -> Result<Vec<(String, i64)>> {
    Ok(conn
        .prepare_cached(
            "SELECT t.tag, u.count FROM instance_usage u JOIN tags t ON t.id = u.tag_id
             WHERE u.instance_id = ?1 ORDER BY t.tag",
        )?
        .query_map([key], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// The history note of a status change a usage report makes. An instance's first line
/// is most often one, so the row keeps it as no note (NULL): 12 bytes less that the first
/// report adds to a full page.
pub(super) const REPORT_NOTE: &str = "usage report";

/// An instance's history, newest first (up to 100 lines). Its two oldest lines are kept
/// in its row: "registered" is read from `registered_at` (migration 0019), the line after
/// it from `first_line_*` (0022); the table holds the lines after those.
pub fn history(conn: &Connection, id: &str) -> Result<Vec<(i64, String, String)>> {
    let Some(key) = instance_ids::key(conn, id)? else {
        return Ok(Vec::new());
    };
    // The row's two lines, in one read of the row.
    type RowLines = (i64, Option<(i64, String, String)>);
    let row: Option<RowLines> = conn
        .prepare_cached(&format!(
            "SELECT registered_at, first_line_at, {}, first_line_note FROM instances
             WHERE id = ?1",
            status_codes::text_sql("first_line_status")
        ))?
        .query_row([key], |r| {
            let first = match r.get::<_, Option<i64>>(1)? {
                Some(at) => {
                    let note: Option<String> = r.get(3)?;
                    Some((at, r.get(2)?, note.unwrap_or_else(|| REPORT_NOTE.into())))
                }
                None => None,
            };
            Ok((r.get(0)?, first))
        })
        .optional()?;
    let Some((registered_at, first)) = row else {
        return Ok(Vec::new());
    };
    let mut lines: Vec<(i64, String, String)> = conn
        .prepare_cached(&format!(
            "SELECT at, {}, note FROM instance_history WHERE instance_id = ?1
                 ORDER BY seq DESC LIMIT 100",
            status_codes::text_sql("status")
        ))?
        .query_map([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if lines.len() < 100 {
        lines.extend(first);
    }
    if lines.len() < 100 {
        let registered = InstanceStatus::Registered.as_str();
        lines.push((registered_at, registered.into(), registered.into()));
    }
    Ok(lines)
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
    let ext = instance_ids::external_sql("");
    let sql = format!(
        "SELECT {COLUMNS} FROM instances WHERE va_id = ?1 AND (?2 IS NULL OR id > ?2)
           AND (?3 IS NULL OR {ext} LIKE ?3 ESCAPE '\\' OR pid LIKE ?3 ESCAPE '\\'
                OR sn LIKE ?3 ESCAPE '\\' OR hostname LIKE ?3 ESCAPE '\\')
         ORDER BY id LIMIT ?4"
    );
    let after = after
        .map(|a| instance_ids::bound(conn, a, true))
        .transpose()?;
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
pub(super) struct StatusOf {
    pub key: i64,
    pub va_id: i64,
    pub status: InstanceStatus,
}

impl From<&Instance> for StatusOf {
    fn from(i: &Instance) -> Self {
        StatusOf {
            key: i.key,
            va_id: i.va_id,
            status: i.status,
        }
    }
}

pub(super) fn set_status(
    tx: &Connection,
    inst: StatusOf,
    status: InstanceStatus,
    now: i64,
    note: &str,
) -> Result<()> {
    if inst.status == status {
        return Ok(());
    }
    tx.prepare_cached("UPDATE instances SET status = ?2 WHERE id = ?1")?
        .execute(params![inst.key, status_codes::code(status)])?;
    counters::move_status(
        tx,
        (inst.va_id, inst.status.as_str()),
        (inst.va_id, status.as_str()),
    )?;
    add_history_key(tx, inst.key, now, status, note)
}

/// What follows a status change its caller already wrote into the row (a usage report
/// writes its row once): the status counters, and the history line unless the row took
/// it (`line_in_row`, the first line, migration 0022).
pub(super) fn status_written(
    tx: &Connection,
    inst: StatusOf,
    status: InstanceStatus,
    now: i64,
    note: &str,
    line_in_row: bool,
) -> Result<()> {
    counters::move_status(
        tx,
        (inst.va_id, inst.status.as_str()),
        (inst.va_id, status.as_str()),
    )?;
    if line_in_row {
        return Ok(());
    }
    add_history_line_to_table(tx, inst.key, now, status, note)
}

/// Adds a line to the history of the instance with external id `id` (if it exists).
pub fn add_history(
    tx: &Connection,
    id: &str,
    now: i64,
    status: InstanceStatus,
    note: &str,
) -> Result<()> {
    match instance_ids::key(tx, id)? {
        Some(key) => add_history_key(tx, key, now, status, note),
        None => Ok(()),
    }
}

pub(super) fn add_history_key(
    tx: &Connection,
    key: i64,
    now: i64,
    status: InstanceStatus,
    note: &str,
) -> Result<()> {
    // The first line goes into the row (migration 0022): an instance's first report then
    // writes no page of the history B-tree, where its line would land on a random one.
    let in_row = tx
        .prepare_cached(
            "UPDATE instances SET first_line_at = ?2, first_line_status = ?3, first_line_note = ?4
             WHERE id = ?1 AND first_line_at IS NULL",
        )?
        .execute(params![key, now, status_codes::code(status), note])?;
    if in_row == 0 {
        add_history_line_to_table(tx, key, now, status, note)?;
    }
    Ok(())
}

/// A history line after the first (which the row keeps).
fn add_history_line_to_table(
    tx: &Connection,
    key: i64,
    now: i64,
    status: InstanceStatus,
    note: &str,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO instance_history (instance_id, seq, at, status, note)
         VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM instance_history WHERE instance_id = ?1),
                 ?2, ?3, ?4)",
    )?
    .execute(params![key, now, status_codes::code(status), note])?;
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
    // Made once: every registration runs it, and writing out COLUMNS was a tenth of the
    // writer's share of one.
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!("SELECT {COLUMNS} FROM instances WHERE pid = ?1 AND sn = ?2")
    });
    Ok(conn
        .prepare_cached(&SQL)?
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
    pub cert_expires_at: i64,
}

/// Zero bytes a new row holds for its first usage report to take (migration 0025): what
/// the report adds to the row (its id 16, measured time 8, expiry mark 8, usage
/// fingerprint 6, expiry 4, first history line 4) and a usage list of up to 11 bytes
/// (`{"1":1}` is 7), less the byte its status code no longer needs.
pub const REPORT_ROOM: usize = 56;

/// Inserts a new instance (status `registered`) with its counters; returns its external
/// id. Its registration is the row itself (`registered_at`): no history line, no event.
pub fn insert(tx: &Connection, now: i64, e: &Enrolment<'_>) -> Result<String> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "INSERT INTO instances (va_id, pid, sn, uuid, public_key, product_name,
               product_version, hostname, export_controlled, token_id, registered_at,
               last_contact, cert_expires_at, status, report_room)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, ?13,
                     zeroblob({REPORT_ROOM}))"
        )
    });
    // The next integer key: new rows append to every index keyed by it.
    tx.prepare_cached(&SQL)?.execute(params![
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
        e.cert_expires_at,
        status_codes::code(InstanceStatus::Registered)
    ])?;
    let key = tx.last_insert_rowid();
    counters::bump_va(tx, e.va_id, 0, 1)?;
    counters::bump_status(tx, e.va_id, InstanceStatus::Registered.as_str(), 1)?;
    Ok(instance_ids::scheme(tx)?.encode(key))
}

/// Rewrites an existing instance's registration: new key, product, hostname, token and
/// certificate times. Its virtual account and usage are left to the caller.
pub fn enrol_again(tx: &Connection, inst: &Instance, now: i64, e: &Enrolment<'_>) -> Result<()> {
    tx.prepare_cached(
        "UPDATE instances SET public_key = ?2, product_name = ?3, product_version = ?4,
           hostname = ?5, export_controlled = ?6, token_id = ?7, last_contact = ?8,
           cert_expires_at = ?9, uuid = coalesce(?10, uuid)
         WHERE id = ?1",
    )?
    .execute(params![
        inst.key,
        e.public_key.as_slice(),
        e.product_name,
        e.product_version,
        e.hostname,
        e.export_controlled,
        e.token_id,
        now,
        e.cert_expires_at,
        e.udi.uuid
    ])?;
    Ok(())
}

/// Moves an instance's stored usage between the export and non-export demand buckets of
/// its pool (a re-registration with a token of the other kind).
pub fn switch_export_bucket(tx: &Connection, inst: &Instance, export: bool) -> Result<()> {
    if inst.export_controlled != export {
        counters::add_instance_usage(tx, inst.key, inst.va_id, inst.export_controlled, -1)?;
        counters::add_instance_usage(tx, inst.key, inst.va_id, export, 1)?;
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
    counters::add_instance_usage(tx, inst.key, inst.va_id, inst.export_controlled, -1)?;
    super::export_keys::release_instance(tx, &inst.id, now, "instance.transferred")?;
    tx.prepare_cached(
        "UPDATE instances SET va_id = ?2, status = ?3, auth_expires_at = NULL,
           auth_expiry_mark = NULL, usage = NULL, usage_fp = NULL WHERE id = ?1",
    )?
    .execute(params![
        inst.key,
        to_va,
        status_codes::code(InstanceStatus::Registered)
    ])?;
    counters::bump_va(tx, inst.va_id, 0, -1)?;
    counters::bump_va(tx, to_va, 0, 1)?;
    counters::move_status(
        tx,
        (inst.va_id, inst.status.as_str()),
        (to_va, InstanceStatus::Registered.as_str()),
    )?;
    add_history_key(tx, inst.key, now, InstanceStatus::Registered, note)
}

/// Records a changed hostname (renewal); returns whether it changed.
pub fn set_hostname(tx: &Connection, inst: &Instance, hostname: &str) -> Result<bool> {
    let n = tx
        .prepare_cached("UPDATE instances SET hostname = ?2 WHERE id = ?1 AND hostname IS NOT ?2")?
        .execute(params![inst.key, hostname])?;
    Ok(n > 0)
}

pub use super::instance_reports::{apply_report, Report, ReportOutcome};

/// Issues new certificate times for an instance (the id certificate's renewal).
pub fn renew_certificate(
    tx: &Connection,
    now: i64,
    signer: Signer<'_>,
) -> Result<(Instance, String)> {
    let inst = find_by_id(tx, signer.id)?.ok_or_else(not_registered)?;
    confirm(signer, &inst.public_key, inst.cert_expires_at, now)?;
    let (renew_after, expires_at) = timers::certificate_times(now);
    // Contact as a report records it: to the hour, so that most renewals leave the
    // last-contact index alone.
    let last_contact = match timers::contact_to_record(inst.last_contact, now) {
        Some(now) => {
            tx.prepare_cached(
                "UPDATE instances SET cert_expires_at = ?2, last_contact = ?3 WHERE id = ?1",
            )?
            .execute(params![inst.key, expires_at, now])?;
            now
        }
        None => {
            tx.prepare_cached("UPDATE instances SET cert_expires_at = ?2 WHERE id = ?1")?
                .execute(params![inst.key, expires_at])?;
            inst.last_contact
        }
    };
    let (va_name, _, _) = va_and_account(tx, inst.va_id)?;
    Ok((
        Instance {
            cert_renew_after: renew_after,
            cert_expires_at: expires_at,
            last_contact,
            ..inst
        },
        va_name,
    ))
}

/// Deletes an instance and releases its licenses at once.
pub(super) fn delete(
    tx: &Connection,
    inst: &Instance,
    now: i64,
    actor: &str,
    action: &str,
) -> Result<()> {
    counters::add_instance_usage(tx, inst.key, inst.va_id, inst.export_controlled, -1)?;
    super::export_keys::release_instance(tx, &inst.id, now, action)?;
    // Its usage goes with the row (the ledger's trigger names each entry that goes).
    tx.prepare_cached("DELETE FROM instances WHERE id = ?1")?
        .execute([inst.key])?;
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
    let clash: Option<i64> = tx
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
    counters::add_instance_usage(tx, inst.key, from.id, inst.export_controlled, -1)?;
    super::export_keys::release_instance(tx, &inst.id, now, "instance.transferred")?;
    tx.execute(
        "UPDATE instances SET va_id = ?2 WHERE id = ?1",
        params![inst.key, to.id],
    )?;
    counters::add_instance_usage(tx, inst.key, to.id, inst.export_controlled, 1)?;
    counters::bump_va(tx, from.id, 0, -1)?;
    counters::bump_va(tx, to.id, 0, 1)?;
    counters::move_status(
        tx,
        (from.id, inst.status.as_str()),
        (to.id, inst.status.as_str()),
    )?;
    add_history_key(
        tx,
        inst.key,
        now,
        inst.status,
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

pub use super::instance_expiry::{
    end_registration, end_registrations, expire_authorizations, registrations_ended,
};

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
    let ext = instance_ids::external_sql("");
    let status_text = status_codes::text_sql("status");
    let sql = format!(
        "SELECT {COLUMNS} FROM instances WHERE va_id = ?1 AND (?2 IS NULL OR id > ?2)
           AND (?3 IS NULL OR {ext} LIKE ?3 ESCAPE '\\' OR pid LIKE ?3 ESCAPE '\\'
                OR sn LIKE ?3 ESCAPE '\\' OR hostname LIKE ?3 ESCAPE '\\'
                OR product_name LIKE ?3 ESCAPE '\\' OR {status_text} LIKE ?5 ESCAPE '\\')
           AND (?6 IS NULL OR status = ?6)
         ORDER BY id LIMIT ?4"
    );
    let after = after
        .map(|a| instance_ids::bound(conn, a, true))
        .transpose()?;
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(
            params![
                va_id,
                after,
                pattern,
                limit + 1,
                status_pattern,
                status.map(status_codes::code)
            ],
            row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(page::from_rows(rows, limit, |i| i.id.clone()))
}
