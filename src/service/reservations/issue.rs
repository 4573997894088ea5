//! Issuing authorization codes: creating a reservation from a request code and updating
//! its counts. Both check the account's settings and export control, price the counts
//! against the VA's pools and sign a new code with the authority key.

use super::{detail, event, load, Detail, Grant, NewReservation, Update};
use crate::crypto::AuthorityKey;
use crate::domain::license::LicenseType;
use crate::domain::reservation::{self as rules, Authorization, CodeEntitlement, Transition};
use crate::domain::DomainError;
use crate::service::access::EditAccount;
use crate::service::Result;
use crate::store::accounts::{self, VirtualAccount};
use crate::store::reservations as repo;
use crate::store::{licenses, settings, StoreError};
use chrono::NaiveDate;
use rusqlite::Connection;
use serde_json::json;
use std::collections::BTreeMap;

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
