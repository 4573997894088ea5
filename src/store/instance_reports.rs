//! The usage report's write (CONTRACT section 4): confirm the signer, decide whether the
//! report is newer than the last one, keep the instance's usage and its pool demand, renew
//! the authorization, judge each entitlement and move the status counters, all in the
//! caller's transaction. Split from instances.rs, which keeps the instance's other jobs.

use super::counters;
use super::evaluation_cache;
use super::instance_ids;
use super::instances::{
    confirm, not_registered, status_written, usage_of_key, Signer, StatusOf, REPORT_NOTE,
};
use super::usage_column;
use super::Result;
use crate::domain::compliance::{self, Demand, EntitlementStatus};
use crate::domain::instance::{dispose_report, InstanceStatus, ReportDisposition};
use crate::domain::timers;
use chrono::NaiveDate;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::LazyLock;

/// Tags up to which a report's and a row's tags are matched by a walk, not a hash.
const FEW_TAGS: usize = 8;

/// How a report id is stored: a canonical (lowercase, hyphenated) UUID, the contract's
/// shape, as its 16 bytes; anything else as the text it is. The ONE mapping both ways:
/// the stored id and an incoming one compare as the same text.
pub fn report_id_value(id: &str) -> Value {
    match uuid_bytes(id) {
        Some(b) => Value::Blob(b.to_vec()),
        None => Value::Text(id.to_string()),
    }
}

/// A stored report id as the text it was received as.
pub fn report_id_text(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Blob(b) if b.len() == 16 => {
            // Every report reads the last id back: written out directly, not formatted.
            const DIGITS: &[u8; 16] = b"0123456789abcdef";
            let mut text = String::with_capacity(36);
            for (i, byte) in b.iter().enumerate() {
                if matches!(i, 4 | 6 | 8 | 10) {
                    text.push('-');
                }
                text.push(char::from(DIGITS[usize::from(byte >> 4)]));
                text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
            }
            Some(text)
        }
        ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
        _ => None,
    }
}

/// The 16 bytes of a canonical lowercase UUID text; None for any other text.
fn uuid_bytes(id: &str) -> Option<[u8; 16]> {
    let b = id.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut digits = b.iter().copied().filter(|&c| c != b'-');
    let mut out = [0u8; 16];
    for byte in &mut out {
        let (high, low) = (digits.next()?, digits.next()?);
        *byte = (nibble(high)? << 4) | nibble(low)?;
    }
    // 36 bytes less the 4 hyphens checked above: the 32 digits were all read, and a
    // stray hyphen left the loop one short.
    Some(out)
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
    /// The expiry index's mark (migration 0022, `timers::expiry_mark_moves`).
    auth_expiry_mark: Option<i64>,
    last_contact: i64,
    /// `usage_fingerprint` of the usage stored, when known (migration 0020).
    usage_fp: Option<i64>,
    /// The usage column (store::usage_column), read with the row.
    usage: Option<String>,
    /// Whether the UDI holds a live reservation: read with the row, so that the usual
    /// report (none) asks nothing more.
    has_reservation: bool,
    /// Whether it holds a granted export key (keys name it by its external id).
    holds_keys: bool,
    /// Whether the row has no history line yet: a status change then keeps its line in
    /// the row (migration 0022).
    first_line_free: bool,
}

/// Made once: every report runs it, and the statement cache is keyed by its text.
static REPORTING_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT rowid, public_key, cert_expires_at, va_id, export_controlled, status,
                last_report_id, last_measured_at_us, auth_expires_at - ?2, auth_expires_at,
                auth_expiry_mark, last_contact, usage_fp, usage,
                EXISTS (SELECT 1 FROM reservations r
                        WHERE r.pid = i.pid AND r.sn = i.sn AND r.state IN {}),
                EXISTS (SELECT 1 FROM export_keys k
                        WHERE k.instance_id = ?3 AND k.state = 'granted'),
                first_line_at IS NULL
         FROM instances i WHERE id = ?1",
        super::reservations::LIVE
    )
});

fn reporting(tx: &Connection, id: &str) -> Result<Reporting> {
    let key = instance_ids::key(tx, id)?.ok_or_else(not_registered)?;
    tx.prepare_cached(&REPORTING_SQL)?
        .query_row(
            params![key, timers::AUTH_VALID - timers::AUTH_RENEW_AFTER, id],
            |r| {
                Ok(Reporting {
                    rowid: r.get(0)?,
                    public_key: r.get(1)?,
                    cert_expires_at: r.get(2)?,
                    va_id: r.get(3)?,
                    export_controlled: r.get(4)?,
                    status: super::status_codes::column(r, 5)?,
                    last_report_id: report_id_text(r.get_ref(6)?),
                    last_measured_at_us: r.get(7)?,
                    auth_renew_after: r.get(8)?,
                    auth_expires_at: r.get(9)?,
                    auth_expiry_mark: r.get(10)?,
                    last_contact: r.get(11)?,
                    usage_fp: r.get(12)?,
                    usage: r.get(13)?,
                    has_reservation: r.get(14)?,
                    holds_keys: r.get(15)?,
                    first_line_free: r.get(16)?,
                })
            },
        )
        .optional()?
        .ok_or_else(not_registered)
}

/// A fingerprint of a usage list, whatever its order: the first 47 bits of a SHA-256 over
/// the entries sorted by tag (SQLite stores an integer below 2^47 in 6 bytes; a false
/// match, which would keep the stored counts, has odds of 2^-47 per changed report). A
/// fingerprint stored at another width only fails to match once, and the counts are then
/// compared one by one.
fn usage_fingerprint(entries: &[(String, i64)]) -> i64 {
    use sha2::{Digest, Sha256};
    let mut sorted: Vec<&(String, i64)> = entries.iter().collect();
    sorted.sort_unstable();
    let mut h = Sha256::new();
    for (tag, count) in sorted {
        h.update(tag.as_bytes());
        h.update([0]);
        h.update(count.to_le_bytes());
    }
    let d = h.finalize();
    d[..6]
        .iter()
        .fold(0i64, |acc, b| (acc << 8) | i64::from(*b))
        >> 1
}

/// What a report's new counts make of the instance's usage.
struct Replaced {
    /// How the pool demand moved, per tag, as written.
    moved: Vec<(String, Demand)>,
    /// The usage column to store (store::usage_column).
    column: Option<String>,
}

/// An instance's usage made `new`: the pool demand moves by the differences.
fn replace_usage(tx: &Connection, inst: &Reporting, new: &[(String, i64)]) -> Result<Replaced> {
    // (tag, (interned id, count)). A list, not a map: an instance reports a handful.
    let old: Vec<(String, (i64, i64))> = usage_column::decode(inst.usage.as_deref())?
        .into_iter()
        .map(|(tag_id, count)| Ok((tag_name(tx, tag_id)?, (tag_id, count))))
        .collect::<Result<_>>()?;
    let mut moved = Vec::new();
    let mut demand = |tag: &str, delta: i64| -> Result<()> {
        let d = counters::add_demand(tx, inst.va_id, tag, delta, inst.export_controlled)?;
        moved.push((tag.to_string(), d));
        Ok(())
    };
    // Past a few tags, an index: a report may carry a thousand, and the writer is one
    // thread.
    let by_tag = |rows: &[(String, (i64, i64))]| -> Option<HashMap<String, (i64, i64)>> {
        (rows.len() > FEW_TAGS).then(|| rows.iter().cloned().collect())
    };
    let old_index = by_tag(&old);
    let stored = |tag: &str| match &old_index {
        Some(index) => index.get(tag).copied(),
        None => old.iter().find(|(t, _)| t == tag).map(|(_, v)| *v),
    };
    let new_index: Option<HashMap<&str, i64>> =
        (new.len() > FEW_TAGS).then(|| new.iter().map(|(t, c)| (t.as_str(), *c)).collect());
    let reported = |tag: &str| match &new_index {
        Some(index) => index.get(tag).copied(),
        None => new.iter().find(|(t, _)| t == tag).map(|(_, c)| *c),
    };
    // One pass over each side: the stored tags whose count changed or that went, then
    // the reported tags that came.
    for (tag, (_, before)) in &old {
        let now = reported(tag);
        if now != Some(*before) {
            demand(tag, now.unwrap_or(0) - before)?;
        }
    }
    let mut entries = Vec::with_capacity(new.len());
    for (tag, count) in new {
        let tag_id = match stored(tag) {
            Some((tag_id, _)) => tag_id,
            None => {
                demand(tag, *count)?;
                intern_tag(tx, tag)?
            }
        };
        entries.push((tag_id, *count));
    }
    Ok(Replaced {
        moved,
        column: usage_column::encode(&entries),
    })
}

/// The tag interned as `tag_id` (a hot row of a small table).
fn tag_name(tx: &Connection, tag_id: i64) -> Result<String> {
    Ok(tx
        .prepare_cached("SELECT tag FROM tags WHERE id = ?1")?
        .query_row([tag_id], |r| r.get(0))?)
}

/// The interned id of `tag`, interning it when it is new (a tag seen before writes
/// nothing: the usual case, so it is looked up first).
fn intern_tag(tx: &Connection, tag: &str) -> Result<i64> {
    let known = tx
        .prepare_cached("SELECT id FROM tags WHERE tag = ?1")?
        .query_row([tag], |r| r.get(0))
        .optional()?;
    if let Some(id) = known {
        return Ok(id);
    }
    tx.prepare_cached("INSERT INTO tags (tag) VALUES (?1)")?
        .execute([tag])?;
    Ok(tx.last_insert_rowid())
}

/// The last expiry mark made in this process: the writer's reports mark in order.
static LAST_EXPIRY_MARK: AtomicI64 = AtomicI64::new(0);

/// A new mark for an authorization expiring at `expires`, after the last one made
/// (`timers::next_expiry_mark`). Any mark of the second is correct; the order only keeps
/// the index's new entries together.
fn next_expiry_mark(expires: i64) -> i64 {
    let mut mark = timers::next_expiry_mark(expires, 0);
    // One writer thread: the update never retries in practice.
    let _ = LAST_EXPIRY_MARK.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
        mark = timers::next_expiry_mark(expires, last);
        Some(mark)
    });
    mark
}

/// What an accepted report writes into its row besides the report itself.
struct Accepted {
    /// The usage fingerprint (migration 0020).
    fp: i64,
    /// The usage column, when the counts changed.
    usage: Option<Option<String>>,
    /// The status the report leaves the instance in, when it moves.
    status: Option<InstanceStatus>,
}

/// Records an accepted report and renews the authorization, in one write of the row, which
/// takes the room registration left for it (migration 0025). The expiry-mark and
/// last-contact columns (each with an index) are written only when they move (a day; an
/// hour, see `timers::CONTACT_PRECISION`), the usage column only when the counts changed,
/// the status only when it moves, with the history's first line when the row has none yet.
fn accept_report(
    tx: &Connection,
    now: i64,
    inst: &Reporting,
    report: &Report,
    accepted: &Accepted,
) -> Result<(i64, i64)> {
    let (renew, expires) = timers::authorization_times(now);
    let new_mark = timers::expiry_mark_moves(inst.auth_expiry_mark, expires)
        .then(|| next_expiry_mark(expires));
    let contact = timers::contact_to_record(inst.last_contact, now);
    let (rid, at) = (report_id_value(&report.report_id), report.measured_at_us);
    // By rowid: the row was just read, and this skips a second walk of the id index.
    // The renewal time is not stored: it follows from the expiry (instances::COLUMNS).
    // One statement per set of optional columns, each made once (the statement cache is
    // keyed by its text): bit 0 the expiry mark, bit 1 the contact, bit 2 the usage, bit 3
    // the status, bit 4 the first history line.
    static SQL: LazyLock<Vec<String>> = LazyLock::new(|| {
        (0..32)
            .map(|set: usize| {
                // OR FAIL: nothing in it then may abort half-way, so SQLite keeps no
                // statement journal for it (ledger::instance_capture). A report runs
                // without a savepoint: a failure after writing rolls its batch back.
                let mut sql = String::from(
                    "UPDATE OR FAIL instances SET last_report_id = ?2, last_measured_at_us = ?3,
                     auth_expires_at = ?4, usage_fp = ?5, report_room = NULL",
                );
                for (bit, column) in ["auth_expiry_mark", "last_contact", "usage"]
                    .iter()
                    .enumerate()
                {
                    if set & (1 << bit) != 0 {
                        sql.push_str(&format!(", {column} = ?{}", 6 + bit));
                    }
                }
                if set & 8 != 0 {
                    sql.push_str(", status = ?9");
                }
                if set & 16 != 0 {
                    // No note: a first line without one is a usage report's (REPORT_NOTE).
                    sql.push_str(", first_line_at = ?10, first_line_status = ?9");
                }
                sql.push_str(" WHERE rowid = ?1");
                sql
            })
            .collect()
    });
    let line_in_row = accepted.status.is_some() && inst.first_line_free;
    let set = usize::from(new_mark.is_some())
        | usize::from(contact.is_some()) << 1
        | usize::from(accepted.usage.is_some()) << 2
        | usize::from(accepted.status.is_some()) << 3
        | usize::from(line_in_row) << 4;
    let mut stmt = tx.prepare_cached(&SQL[set])?;
    stmt.raw_bind_parameter(1, inst.rowid)?;
    stmt.raw_bind_parameter(2, &rid)?;
    stmt.raw_bind_parameter(3, at)?;
    stmt.raw_bind_parameter(4, expires)?;
    stmt.raw_bind_parameter(5, accepted.fp)?;
    if let Some(mark) = new_mark {
        stmt.raw_bind_parameter(6, mark)?;
    }
    if let Some(now) = contact {
        stmt.raw_bind_parameter(7, now)?;
    }
    if let Some(usage) = &accepted.usage {
        stmt.raw_bind_parameter(8, usage)?;
    }
    if let Some(status) = accepted.status {
        stmt.raw_bind_parameter(9, super::status_codes::code(status))?;
    }
    if line_in_row {
        stmt.raw_bind_parameter(10, now)?;
    }
    stmt.raw_execute()?;
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
    evaluation_cache::begin(tx)?;
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
    let reserved = if inst.has_reservation {
        super::reservations::held_by_instance(tx, inst.rowid)?
    } else {
        None
    };
    let is_reserved = |tag: &str| {
        reserved
            .as_ref()
            .is_some_and(|(universal, tags)| *universal || tags.iter().any(|t| t == tag))
    };
    // The report's write waits for its status: the row is written once.
    let (counts, accepted) = if disposition == ReportDisposition::Apply {
        let drawn: Vec<(String, i64)> = (report.entitlements.iter())
            .filter(|(tag, _)| !is_reserved(tag))
            .cloned()
            .collect();
        // The usual report repeats the last counts: its fingerprint says so without
        // reading the usage rows.
        let fp = usage_fingerprint(&drawn);
        let (moved, usage) = if inst.usage_fp == Some(fp) {
            (Vec::new(), None)
        } else {
            let replaced = replace_usage(tx, &inst, &drawn)?;
            (replaced.moved, Some(replaced.column))
        };
        if !moved.is_empty() {
            // A granted key's demand follows its holder's count: read it all again.
            if inst.holds_keys {
                evaluation_cache::forget(inst.va_id);
            } else {
                evaluation_cache::moved(inst.va_id, &moved);
            }
        }
        let accepted = Accepted {
            fp,
            usage,
            status: None,
        };
        (report.entitlements.clone(), Some(accepted))
    } else {
        if let Some(now) = timers::contact_to_record(inst.last_contact, now) {
            tx.prepare_cached("UPDATE instances SET last_contact = ?2 WHERE rowid = ?1")?
                .execute(params![inst.rowid, now])?;
        }
        (usage_of_key(tx, inst.rowid)?, None)
    };
    let judged = evaluation_cache::evaluate(tx, inst.va_id, today)?;
    let (pools, evaluation) = (&judged.pools, &judged.evaluation);
    // A tag the instance holds an export key for is judged as for an export-controlled
    // token; that matters only where some pool is export-controlled.
    let keyed = if inst.holds_keys && pools.iter().any(|p| p.export_controlled) {
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
                pools,
                evaluation,
                &tag,
                count,
                inst.export_controlled || keyed.contains(&tag),
            );
            (tag, count, s)
        })
        .collect();
    let statuses: Vec<EntitlementStatus> = entitlements.iter().map(|e| e.2).collect();
    let status = compliance::overall_status(&statuses);
    if let Some(mut accepted) = accepted {
        let to = match InstanceStatus::from_entitlement(status) {
            InstanceStatus::Authorized if reserved.is_some() => InstanceStatus::Reserved,
            other => other,
        };
        accepted.status = (to != inst.status).then_some(to);
        let (renew, expires) = accept_report(tx, now, &inst, report, &accepted)?;
        (auth_renew_after, auth_expires_at) = (Some(renew), Some(expires));
        if accepted.status.is_some() {
            let from = StatusOf {
                key: inst.rowid,
                va_id: inst.va_id,
                status: inst.status,
            };
            status_written(tx, from, to, now, REPORT_NOTE, inst.first_line_free)?;
        }
    }
    evaluation_cache::end(tx);
    Ok(ReportOutcome {
        status,
        entitlements,
        auth_renew_after,
        auth_expires_at,
        disposition,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_canonical_uuid_is_kept_as_bytes_and_reads_back_as_it_came() {
        let id = "0193ab4c-7d2e-4f10-8a9b-00ff12cd34ef";
        let stored = report_id_value(id);
        let Value::Blob(bytes) = &stored else {
            panic!("{stored:?}")
        };
        assert_eq!(bytes.len(), 16);
        assert_eq!(bytes[0], 0x01);
        assert_eq!(bytes[15], 0xef);
        assert_eq!(report_id_text(ValueRef::Blob(bytes)).as_deref(), Some(id));
    }

    #[test]
    fn any_other_text_is_kept_as_text() {
        for id in [
            "0193AB4C-7D2E-4F10-8A9B-00FF12CD34EF",
            "0193ab4c-7d2e-4f10-8a9b-00ff12cd34e",
            "0193ab4c-7d2e-4f10-8a9b-00ff12cd34efa",
            "0193ab4c7d2e-4f10-8a9b--00ff12cd34ef",
            "0193ab4c-7d2e-4f10-8a9b-00ff12cd3-ef",
            "0193ab4g-7d2e-4f10-8a9b-00ff12cd34ef",
            "report-1",
        ] {
            assert_eq!(report_id_value(id), Value::Text(id.to_string()), "{id}");
            assert_eq!(
                report_id_text(ValueRef::Text(id.as_bytes())).as_deref(),
                Some(id)
            );
        }
    }
}
