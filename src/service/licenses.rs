//! Changing and removing a license on the upstream (where licenses are owned): refused
//! while the change would leave demand or reservations without the units they hold.

use super::access::EditAccount;
use super::Result;
use crate::domain::license::{LicenseSpec, RawLicense};
use crate::domain::DomainError;
use crate::store::accounts::VirtualAccount;
use crate::store::events::{self, NewEvent};
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
