//! Licenses of a virtual account: created and moved between virtual accounts of one
//! account by its editors; changed and removed on the upstream (where licenses are owned).
//! A change is refused while it would leave demand or reservations without their units.

use super::access::{EditAccount, ReadAccount};
use super::virtual_accounts;
use super::Result;
use crate::domain::compliance::Evaluation;
use crate::domain::license::{LicenseSpec, RawLicense};
use crate::domain::DomainError;
use crate::store::accounts::VirtualAccount;
use crate::store::events::{self, NewEvent};
use crate::store::licenses::License;
use crate::store::{counters, licenses};
use chrono::NaiveDate;
use rusqlite::Connection;
use serde_json::json;

/// A PATCH of a license: a left-out field stays as it is (the tag never changes).
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicensePatch {
    pub name: Option<String>,
    pub quantity: Option<i64>,
    pub start: Option<String>,
    /// `null` is "left out"; send the end date to change it.
    pub end: Option<String>,
    pub export_controlled: Option<bool>,
    pub substitutes: Option<Vec<String>>,
    pub rank: Option<i64>,
}

fn not_synced(va: &VirtualAccount) -> Result<()> {
    if va.synced {
        return Err(DomainError::conflict(
            "synced_read_only",
            "Licenses of virtual accounts synced from the upstream are changed on the upstream.",
        )
        .into());
    }
    Ok(())
}

fn unknown(tag: &str, va: &VirtualAccount) -> DomainError {
    DomainError::invalid(
        "unknown_license",
        "tag",
        format!("No license {tag} in '{}'.", va.name),
    )
}

/// Units of a license committed now: in use (own demand and what it covers) and reserved.
fn committed(
    tx: &Connection,
    va: &VirtualAccount,
    tag: &str,
    today: NaiveDate,
) -> Result<(i64, i64)> {
    let (all, evaluation) = licenses::evaluate(tx, va.id, today)?;
    let in_use = evaluation.pools.get(tag).map_or(0, |p| p.in_use);
    let reserved = all
        .iter()
        .find(|l| l.spec.tag == tag)
        .map_or(0, |l| l.reserved);
    Ok((in_use, reserved))
}

pub fn update(
    tx: &Connection,
    cap: &EditAccount,
    now: i64,
    today: NaiveDate,
    va: &VirtualAccount,
    tag: &str,
    patch: LicensePatch,
) -> Result<LicenseSpec> {
    not_synced(va)?;
    let old = licenses::find(tx, va.id, tag)?.ok_or_else(|| unknown(tag, va))?;
    let start = patch.start.unwrap_or_else(|| old.spec.start.to_string());
    let end = patch.end.or_else(|| old.spec.end.map(|e| e.to_string()));
    let substitutes = patch
        .substitutes
        .unwrap_or_else(|| old.spec.substitutes.clone());
    let spec = LicenseSpec::validate(RawLicense {
        tag: &old.spec.tag,
        name: patch.name.as_deref().unwrap_or(&old.spec.name),
        license_type: old.spec.license_type.as_str(),
        quantity: patch.quantity.unwrap_or(old.spec.quantity),
        start: &start,
        end: end.as_deref(),
        export_controlled: patch
            .export_controlled
            .unwrap_or(old.spec.export_controlled),
        substitutes: &substitutes,
        rank: Some(patch.rank.unwrap_or(old.spec.rank)),
    })?;
    let (in_use, reserved) = committed(tx, va, tag, today)?;
    if spec.quantity < old.spec.quantity && spec.quantity < in_use + reserved {
        return Err(DomainError::conflict(
            "insufficient_licenses",
            format!(
                "{} has {in_use} in use and {reserved} reserved; the quantity can go down to {} at most.",
                old.spec.name,
                in_use + reserved
            ),
        )
        .into());
    }
    licenses::update_spec(tx, old.id, &spec)?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: &cap.actor,
            action: "license.updated",
            account: Some((cap.account.id, &cap.account.name)),
            target: &format!("{}/{}", va.name, tag),
            detail: json!({
                "name": spec.name, "quantity": spec.quantity, "start": spec.start.to_string(),
                "end": spec.end.map(|e| e.to_string()), "export_controlled": spec.export_controlled,
                "substitutes": spec.substitutes, "rank": spec.rank,
                "previous_quantity": old.spec.quantity,
            }),
        },
    )?;
    Ok(spec)
}

pub fn remove(
    tx: &Connection,
    cap: &EditAccount,
    now: i64,
    today: NaiveDate,
    va: &VirtualAccount,
    tag: &str,
) -> Result<()> {
    not_synced(va)?;
    let old = licenses::find(tx, va.id, tag)?.ok_or_else(|| unknown(tag, va))?;
    let (in_use, reserved) = committed(tx, va, tag, today)?;
    if in_use > 0 || reserved > 0 {
        return Err(DomainError::conflict(
            "license_in_use",
            format!(
                "{} cannot be removed while {in_use} are in use and {reserved} reserved; \
                 remove or move those products (or return the reservations) first.",
                old.spec.name
            ),
        )
        .into());
    }
    licenses::delete(tx, old.id)?;
    counters::bump_va(tx, va.id, -1, 0)?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: &cap.actor,
            action: "license.removed",
            account: Some((cap.account.id, &cap.account.name)),
            target: &format!("{}/{}", va.name, tag),
            detail: json!({ "name": old.spec.name, "quantity": old.spec.quantity }),
        },
    )?;
    Ok(())
}

fn spec_json(spec: &LicenseSpec) -> serde_json::Value {
    json!({
        "tag": spec.tag, "name": spec.name, "type": spec.license_type.as_str(),
        "quantity": spec.quantity, "start": spec.start.to_string(),
        "end": spec.end.map(|e| e.to_string()), "export_controlled": spec.export_controlled,
        "substitutes": spec.substitutes, "rank": spec.rank,
    })
}

pub fn create(
    tx: &Connection,
    cap: &EditAccount,
    now: i64,
    va: &VirtualAccount,
    spec: &LicenseSpec,
) -> Result<()> {
    licenses::insert(tx, va.id, spec, now)?;
    events::record(
        tx,
        now,
        NewEvent {
            actor: &cap.actor,
            action: "license.created",
            account: Some((cap.account.id, &cap.account.name)),
            target: &format!("{}/{}", va.name, spec.tag),
            detail: spec_json(spec),
        },
    )?;
    Ok(())
}

/// A transfer as asked for: `quantity` of license `tag` to the virtual account named `to`.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub tag: String,
    pub quantity: i64,
    pub to: String,
}

/// Moves `quantity` of a license to another virtual account of the same account.
/// Refused when the source would no longer cover what it has in use and reserved.
pub fn transfer(
    tx: &Connection,
    cap: &EditAccount,
    now: i64,
    today: NaiveDate,
    from: &VirtualAccount,
    t: &Transfer,
) -> Result<()> {
    let (tag, quantity) = (t.tag.as_str(), t.quantity);
    if quantity < 1 {
        return Err(DomainError::invalid(
            "invalid_quantity",
            "quantity",
            "quantity is at least 1.",
        )
        .into());
    }
    let to = virtual_accounts::transfer_target(tx, &cap.account, from, &t.to)?;
    if from.synced || to.synced {
        return Err(DomainError::conflict(
            "synced_read_only",
            "Licenses of virtual accounts synced from the upstream are changed on the upstream.",
        )
        .into());
    }
    let license = licenses::find(tx, from.id, tag)?.ok_or_else(|| unknown(tag, from))?;
    let (_, evaluation) = licenses::evaluate(tx, from.id, today)?;
    let pool = evaluation.pools.get(tag);
    let committed = pool.map_or(0, |p| p.in_use) + license.reserved;
    if license.spec.quantity - quantity < committed {
        return Err(DomainError::conflict(
            "insufficient_licenses",
            format!(
                "'{}' has {} of {tag}, with {committed} in use or reserved; it can give at most {}.",
                from.name,
                license.spec.quantity,
                (license.spec.quantity - committed).max(0)
            ),
        )
        .into());
    }
    let remaining = license.spec.quantity - quantity;
    if remaining == 0 {
        licenses::delete(tx, license.id)?;
        counters::bump_va(tx, from.id, -1, 0)?;
    } else {
        licenses::set_quantity(tx, license.id, remaining)?;
    }
    match licenses::find(tx, to.id, tag)? {
        Some(existing) => licenses::add_quantity(tx, existing.id, quantity)?,
        None => {
            let spec = LicenseSpec {
                quantity,
                ..license.spec.clone()
            };
            licenses::insert(tx, to.id, &spec, now)?;
        }
    }
    events::record(
        tx,
        now,
        NewEvent {
            actor: &cap.actor,
            action: "license.transferred",
            account: Some((cap.account.id, &cap.account.name)),
            target: tag,
            detail: json!({ "from": from.name, "to": to.name, "quantity": quantity }),
        },
    )?;
    Ok(())
}

/// A virtual account's licenses and their evaluation on `today`.
pub fn evaluate(
    conn: &Connection,
    _cap: &ReadAccount,
    va: &VirtualAccount,
    today: NaiveDate,
) -> Result<(Vec<License>, Evaluation)> {
    Ok(licenses::evaluate(conn, va.id, today)?)
}
