//! Reservation use cases (CONTRACT section 5): create from a request code, update,
//! confirm, cancel, remove, return. Each runs in the caller's write transaction, checks
//! the rules before it changes anything, keeps `licenses.reserved` in step and records
//! its event, so a refusal changes nothing.

use super::access::{EditAccount, ReadAccount, SystemAdmin};
use super::Result;
use crate::crypto::AuthorityKey;
use crate::domain::license::{LicenseType, QUANTITY_MAX};
use crate::domain::reservation::{
    self as rules, Authorization, CodeEntitlement, RequestCode, ReservationState, ReturnCode,
    Transition,
};
use crate::domain::DomainError;
use crate::store::accounts::{self, VirtualAccount};
use crate::store::events::{self, NewEvent};
use crate::store::page::Page;
use crate::store::reservations::{self as repo, Held, Reservation, StateChange};
use crate::store::{licenses, settings, StoreError};
use chrono::NaiveDate;
use rusqlite::Connection;
use serde_json::json;
use std::collections::BTreeMap;

/// What a reservation grants: every feature, or counts per tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    Universal,
    Specific(BTreeMap<String, i64>),
}

/// A create request, parsed at the edge.
#[derive(Clone, Debug)]
pub struct NewReservation {
    pub request: RequestCode,
    pub virtual_account: String,
    pub grant: Grant,
    pub export_acknowledged: bool,
}

/// An update: the new totals per tag (0 drops a tag).
#[derive(Clone, Debug)]
pub struct Update {
    pub counts: BTreeMap<String, i64>,
    pub export_acknowledged: bool,
}

/// A reservation with what it holds.
#[derive(Clone, Debug)]
pub struct Detail {
    pub reservation: Reservation,
    pub licenses: Vec<Held>,
}

/// Parses `[(tag, count)]` into totals: each tag once, counts 0..=2^31-1 (`min` 1 on
/// create, where a zero count means nothing).
pub fn counts(items: Vec<(String, i64)>, min: i64) -> Result<BTreeMap<String, i64>> {
    let mut out = BTreeMap::new();
    for (tag, count) in items {
        let tag = crate::domain::license::tag("licenses", &tag)?;
        if !(min..=QUANTITY_MAX).contains(&count) {
            return Err(DomainError::invalid(
                "invalid_count",
                "licenses",
                format!("count is an integer from {min} to 2147483647."),
            )
            .into());
        }
        if out.insert(tag.clone(), count).is_some() {
            return Err(DomainError::invalid(
                "duplicate_tag",
                "licenses",
                format!("Tag {tag} appears twice."),
            )
            .into());
        }
    }
    Ok(out)
}

fn not_found(id: &str) -> StoreError {
    StoreError::not_found(format!("reservation '{id}'"))
}

fn load(conn: &Connection, account_id: i64, id: &str) -> Result<Reservation> {
    Ok(repo::find(conn, account_id, id)?.ok_or_else(|| not_found(id))?)
}

fn require_enabled(conn: &Connection, cap: &EditAccount) -> Result<settings::AccountSettings> {
    let s = settings::account(conn, cap.account.id)?;
    if !s.reservation_enabled {
        return Err(DomainError::Denied {
            code: "reservation_disabled",
            message: format!(
                "Reservations are turned off for account '{}' (setting reservation_enabled).",
                cap.account.name
            ),
        }
        .into());
    }
    Ok(s)
}

/// Export control: reserving an export-controlled license needs the account's
/// `export_allowed` and the admin's explicit acknowledgement.
fn require_export(
    s: &settings::AccountSettings,
    controlled: &[String],
    acknowledged: bool,
) -> Result<()> {
    if controlled.is_empty() {
        return Ok(());
    }
    if !s.export_allowed {
        return Err(DomainError::Denied {
            code: "export_not_allowed",
            message: format!(
                "This account may not hold export-controlled licenses ({}).",
                controlled.join(", ")
            ),
        }
        .into());
    }
    if !acknowledged {
        return Err(DomainError::Denied {
            code: "export_not_acknowledged",
            message: format!(
                "{} is export-controlled: acknowledge export control (export_acknowledged: true).",
                controlled.join(", ")
            ),
        }
        .into());
    }
    Ok(())
}

fn insufficient(tag: &str, wanted: i64, available: i64) -> DomainError {
    DomainError::invalid(
        "insufficient_licenses",
        "licenses",
        format!("{wanted} of {tag} asked for, {available} available."),
    )
}

/// The code's entitlements for `counts`, and the export-controlled tags among them.
/// `extra` is what this reservation already holds per tag (counts as available).
fn entitlements(
    conn: &Connection,
    va: &VirtualAccount,
    today: NaiveDate,
    counts: &BTreeMap<String, i64>,
    extra: &BTreeMap<String, i64>,
) -> Result<(Vec<CodeEntitlement>, Vec<String>)> {
    let (ls, evaluation) = licenses::evaluate(conn, va.id, today)?;
    let mut out = vec![];
    for (tag, count) in counts {
        let l = ls.iter().find(|l| &l.spec.tag == tag).ok_or_else(|| {
            DomainError::invalid(
                "unknown_license",
                "licenses",
                format!("No license {tag} in '{}'.", va.name),
            )
        })?;
        let available = evaluation.pools.get(tag).map_or(0, |p| p.available)
            + extra.get(tag).copied().unwrap_or(0);
        if *count > available {
            return Err(insufficient(tag, *count, available).into());
        }
        if *count == 0 {
            continue;
        }
        let dated = l.spec.license_type != LicenseType::Perpetual;
        out.push(CodeEntitlement {
            tag: tag.clone(),
            count: *count,
            start_date: if dated {
                rules::code_date(l.spec.start)
            } else {
                String::new()
            },
            end_date: l
                .spec
                .end
                .filter(|_| dated)
                .map(rules::code_date)
                .unwrap_or_default(),
            license_type: l.spec.license_type.as_str().to_uppercase(),
            display_name: l.spec.name.clone(),
            description: l.spec.name.clone(),
        });
    }
    let controlled = ls
        .iter()
        .filter(|l| l.spec.export_controlled && counts.get(&l.spec.tag).is_some_and(|c| *c > 0))
        .map(|l| l.spec.tag.clone())
        .collect();
    Ok((out, controlled))
}

fn sign(authority: &AuthorityKey, a: &Authorization) -> (String, String) {
    let bytes = a.code_bytes();
    let doc = a.document(&authority.sign_b64(bytes.as_bytes()));
    (doc, rules::code_hash_hex(&bytes))
}

fn event(
    tx: &Connection,
    now: i64,
    actor: &str,
    account: (i64, &str),
    action: &str,
    r: &Reservation,
    detail: serde_json::Value,
) -> Result<()> {
    let mut d = json!({
        "virtual_account": r.virtual_account,
        "udi": format!("P:{},S:{}", r.pid, r.sn),
        "universal": r.universal,
    });
    if let (Some(d), Some(extra)) = (d.as_object_mut(), detail.as_object()) {
        d.extend(extra.clone());
    }
    Ok(events::record(
        tx,
        now,
        NewEvent {
            actor,
            action,
            account: Some(account),
            target: &r.id,
            detail: d,
        },
    )?)
}

fn detail(conn: &Connection, r: Reservation) -> Result<Detail> {
    let licenses = repo::licenses_of(conn, &r.id)?;
    Ok(Detail {
        reservation: r,
        licenses,
    })
}

pub fn create(
    tx: &Connection,
    cap: &EditAccount,
    now: i64,
    today: NaiveDate,
    authority: &AuthorityKey,
    input: NewReservation,
) -> Result<Detail> {
    let s = require_enabled(tx, cap)?;
    let va = accounts::find_va(tx, &cap.account, &input.virtual_account)?;
    let req = &input.request;
    if repo::live_clash(tx, &req.text, &req.pid, &req.sn)? {
        return Err(DomainError::conflict(
            "already_reserved",
            format!(
                "P:{},S:{} already holds a live reservation (or this request code was used); return or cancel it first.",
                req.pid, req.sn
            ),
        )
        .into());
    }
    let (ents, controlled, counts) = match &input.grant {
        Grant::Specific(counts) => {
            let (ents, controlled) = entitlements(tx, &va, today, counts, &BTreeMap::new())?;
            (ents, controlled, counts.clone())
        }
        // Universal authorizes every feature, export-controlled ones included.
        Grant::Universal => {
            let controlled = licenses::list(tx, va.id)?
                .into_iter()
                .filter(|l| l.spec.export_controlled)
                .map(|l| l.spec.tag)
                .collect();
            (vec![], controlled, BTreeMap::new())
        }
    };
    require_export(&s, &controlled, input.export_acknowledged)?;
    // Time first, then random: ids sort by creation.
    let id = format!(
        "res_{:09x}{}",
        now.max(0),
        crate::crypto::secrets::random_secret(6)
    );
    let auth = Authorization {
        universal: input.grant == Grant::Universal,
        version: 1,
        piid: id.clone(),
        timestamp_ms: now * 1000,
        key_hash: req.key_hash,
        nonce: req.nonce,
        entitlements: ents,
        pid: req.pid.clone(),
        sn: req.sn.clone(),
    };
    let (doc, code_hash) = sign(authority, &auth);
    repo::insert(
        tx,
        &repo::NewReservation {
            id: &id,
            account_id: cap.account.id,
            va_id: va.id,
            request_code: &req.text,
            pid: &req.pid,
            sn: &req.sn,
            key_hash: &rules::key_hash_hex(&req.key_hash),
            nonce: &rules::nonce_hex(&req.nonce),
            universal: auth.universal,
            authorization_code: &doc,
            code_hash: &code_hash,
            now,
        },
    )?;
    let held = counts.iter().map(|(t, c)| (t.clone(), (*c, *c))).collect();
    repo::set_held(tx, &id, va.id, &held)?;
    let r = load(tx, cap.account.id, &id)?;
    event(
        tx,
        now,
        &cap.actor,
        (cap.account.id, &cap.account.name),
        "reservation.created",
        &r,
        json!({ "licenses": counts, "export_acknowledged": input.export_acknowledged }),
    )?;
    detail(tx, r)
}

pub fn update(
    tx: &Connection,
    cap: &EditAccount,
    now: i64,
    today: NaiveDate,
    authority: &AuthorityKey,
    id: &str,
    input: Update,
) -> Result<Detail> {
    let s = require_enabled(tx, cap)?;
    let r = load(tx, cap.account.id, id)?;
    r.state.apply(Transition::Update)?;
    if r.universal {
        return Err(DomainError::conflict(
            "invalid_state",
            "A universal reservation holds no counts to update; return it and reserve anew.",
        )
        .into());
    }
    if input.counts.values().all(|c| *c == 0) {
        return Err(DomainError::invalid(
            "invalid_count",
            "licenses",
            "An update keeps at least one license; return the reservation to release them all.",
        )
        .into());
    }
    let va = accounts::find_va(tx, &cap.account, &r.virtual_account)?;
    let old = repo::licenses_of(tx, id)?;
    let old_held: BTreeMap<String, i64> = old.iter().map(|h| (h.tag.clone(), h.held)).collect();
    let old_count: BTreeMap<String, i64> = old.iter().map(|h| (h.tag.clone(), h.count)).collect();
    let (ents, mut controlled) = entitlements(tx, &va, today, &input.counts, &old_held)?;
    // Only a count that goes up asks for export acknowledgement again.
    controlled.retain(|t| input.counts.get(t) > old_count.get(t).or(Some(&0)));
    require_export(&s, &controlled, input.export_acknowledged)?;
    let key_hash = rules::parse_key_hash(&r.key_hash)
        .ok_or_else(|| StoreError::Io(format!("reservation {id}: damaged key hash")))?;
    let nonce = rules::parse_nonce(&r.nonce)
        .ok_or_else(|| StoreError::Io(format!("reservation {id}: damaged nonce")))?;
    let auth = Authorization {
        universal: false,
        version: r.version + 1,
        piid: r.id.clone(),
        timestamp_ms: now * 1000,
        key_hash,
        nonce,
        entitlements: ents,
        pid: r.pid.clone(),
        sn: r.sn.clone(),
    };
    let (doc, code_hash) = sign(authority, &auth);
    repo::set_code(tx, id, auth.version, &doc, &code_hash, now)?;
    // In transit: each tag holds the larger of what it held and its new total.
    let held_map = rules::in_transit(&old_held, &input.counts);
    let mut rows: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (tag, held) in &held_map {
        rows.insert(
            tag.clone(),
            (input.counts.get(tag).copied().unwrap_or(0), *held),
        );
    }
    repo::set_held(tx, id, va.id, &rows)?;
    let r = load(tx, cap.account.id, id)?;
    event(
        tx,
        now,
        &cap.actor,
        (cap.account.id, &cap.account.name),
        "reservation.updated",
        &r,
        json!({ "licenses": input.counts, "version": r.version }),
    )?;
    detail(tx, r)
}

pub fn confirm(
    tx: &Connection,
    cap: &EditAccount,
    now: i64,
    id: &str,
    confirmation_code: &str,
) -> Result<Detail> {
    let r = load(tx, cap.account.id, id)?;
    let next = r.state.apply(Transition::Confirm)?;
    let parsed = rules::parse_authorization(&r.authorization_code)?;
    let expected = rules::confirmation_code(&parsed.code_bytes, &parsed.authorization.key_hash);
    if confirmation_code.trim().to_ascii_lowercase() != expected {
        return Err(DomainError::invalid(
            "invalid_confirmation_code",
            "confirmation_code",
            "This confirmation code does not match the reservation's current authorization code.",
        )
        .into());
    }
    // The new code is installed: each tag holds its new count alone.
    let rows: BTreeMap<String, (i64, i64)> = repo::licenses_of(tx, id)?
        .into_iter()
        .filter(|h| h.count > 0)
        .map(|h| (h.tag, (h.count, h.count)))
        .collect();
    repo::set_held(tx, id, r.va_id, &rows)?;
    repo::set_state(
        tx,
        id,
        &StateChange {
            state: next,
            now,
            reason: None,
            return_fingerprint: None,
        },
    )?;
    let r = load(tx, cap.account.id, id)?;
    event(
        tx,
        now,
        &cap.actor,
        (cap.account.id, &cap.account.name),
        "reservation.confirmed",
        &r,
        json!({ "version": r.version }),
    )?;
    detail(tx, r)
}

/// Ends a reservation: releases what it holds and records the new state.
#[allow(clippy::too_many_arguments)]
fn end(
    tx: &Connection,
    cap: &EditAccount,
    actor: &str,
    now: i64,
    r: &Reservation,
    change: StateChange<'_>,
    action: &str,
    extra: serde_json::Value,
) -> Result<Detail> {
    repo::release(tx, &r.id, r.va_id)?;
    repo::set_state(tx, &r.id, &change)?;
    let r = load(tx, cap.account.id, &r.id)?;
    event(
        tx,
        now,
        actor,
        (cap.account.id, &cap.account.name),
        action,
        &r,
        extra,
    )?;
    detail(tx, r)
}

pub fn cancel(tx: &Connection, cap: &EditAccount, now: i64, id: &str) -> Result<Detail> {
    let r = load(tx, cap.account.id, id)?;
    let state = r.state.apply(Transition::Cancel)?;
    let change = StateChange {
        state,
        now,
        reason: None,
        return_fingerprint: None,
    };
    end(
        tx,
        cap,
        &cap.actor,
        now,
        &r,
        change,
        "reservation.cancelled",
        json!({}),
    )
}

pub fn remove(
    tx: &Connection,
    cap: &EditAccount,
    admin: &SystemAdmin,
    now: i64,
    id: &str,
    reason: &str,
) -> Result<Detail> {
    let r = load(tx, cap.account.id, id)?;
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(DomainError::invalid(
            "reason_required",
            "reason",
            "Say why the reservation is removed without a return code (e.g. the product was lost).",
        )
        .into());
    }
    let state = r.state.apply(Transition::Remove)?;
    let change = StateChange {
        state,
        now,
        reason: Some(reason),
        return_fingerprint: None,
    };
    end(
        tx,
        cap,
        &admin.actor,
        now,
        &r,
        change,
        "reservation.removed",
        json!({ "reason": reason }),
    )
}

/// Releases the reservation a return code is for: the code names the agent's key and
/// signs the reservation's id and current code, so an old code's return code fails.
pub fn return_code(
    tx: &Connection,
    cap: &EditAccount,
    now: i64,
    code: &ReturnCode,
) -> Result<Detail> {
    let fingerprint = code.fingerprint();
    if repo::return_code_used(tx, &fingerprint)? {
        return Err(DomainError::conflict(
            "already_returned",
            "This return code was entered before; its licenses are already released.",
        )
        .into());
    }
    let key_hash = rules::key_hash_hex(&code.key_hash());
    let r = repo::by_key_hash(tx, cap.account.id, &key_hash)?
        .into_iter()
        .find(|r| code.verifies(&r.id, &r.code_hash))
        .ok_or_else(|| {
            rules::invalid_return_code(
                "This return code matches no reservation of this account's current authorization codes.",
            )
        })?;
    let state = r.state.apply(Transition::Return)?;
    let change = StateChange {
        state,
        now,
        reason: None,
        return_fingerprint: Some(&fingerprint),
    };
    end(
        tx,
        cap,
        &cap.actor,
        now,
        &r,
        change,
        "reservation.returned",
        json!({}),
    )
}

pub fn get(conn: &Connection, cap: &ReadAccount, id: &str) -> Result<Detail> {
    let r = load(conn, cap.account.id, id)?;
    detail(conn, r)
}

pub fn list(
    conn: &Connection,
    cap: &ReadAccount,
    filter: &repo::Filter,
    after: Option<&str>,
    limit: u32,
) -> Result<Page<Detail>> {
    let page = repo::list(conn, cap.account.id, filter, after, limit)?;
    let items = page
        .items
        .into_iter()
        .map(|r| detail(conn, r))
        .collect::<Result<Vec<_>>>()?;
    Ok(Page {
        items,
        next_after: page.next_after,
    })
}

/// Parses the `?state=` filter.
pub fn parse_state(s: &str) -> Result<ReservationState> {
    Ok(s.parse()?)
}
