//! Reservation use cases (CONTRACT section 5): create from a request code, update,
//! confirm, cancel, remove, return. Each runs in the caller's write transaction, checks
//! the rules before it changes anything, keeps `licenses.reserved` in step and records
//! its event, so a refusal changes nothing. This file holds the inputs, the reads and
//! what both halves share; `issue` signs codes (create, update), `lifecycle` moves a
//! reservation on (confirm, cancel, remove, return).

mod issue;
mod lifecycle;

pub use issue::{create, update};
pub use lifecycle::{cancel, confirm, remove, return_code};

use super::access::ReadAccount;
use super::Result;
use crate::domain::license::QUANTITY_MAX;
use crate::domain::reservation::{RequestCode, ReservationState};
use crate::domain::DomainError;
use crate::store::events::{self, NewEvent};
use crate::store::page::Page;
use crate::store::reservations::{self as repo, Held, Reservation};
use crate::store::StoreError;
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
