//! Listing product instances across virtual accounts: every VA of an account (anyone who
//! sees the account) or of every account (system admins), filtered, sorted and paged by
//! an opaque keyset cursor in either direction.

use super::access::{ReadAccount, SystemAdmin};
use super::Result;
use crate::domain::instance::InstanceStatus;
use crate::store::instance_list::{self, Direction, Filter, Key, Position, SortBy, VaRef};
use crate::store::instances::{self, Instance};
use crate::store::page::Page;
use crate::store::reported::{self, ReportedBy};
use crate::store::{accounts, StoreError};
use base64::Engine;
use rusqlite::Connection;
use serde_json::{json, Value};

/// A list request, parsed at the edge.
#[derive(Clone, Debug, Default)]
pub struct ListInput {
    /// Only this virtual account (by name).
    pub virtual_account: Option<String>,
    pub sort: SortBy,
    pub filter: Filter,
    /// Where the page starts, and which way it goes.
    pub from: Option<(Position, Direction)>,
    pub limit: u32,
}

pub struct Item {
    pub instance: Instance,
    pub va: VaRef,
    pub usage: Vec<(String, i64)>,
    /// Set for an instance a satellite reported (upstream): read-only here.
    pub reported_by: Option<ReportedBy>,
}

pub struct Listed {
    pub items: Vec<Item>,
    /// Cursor for the next page (`after=`), none on the last page.
    pub next_after: Option<String>,
    /// Cursor for the previous page (`before=`), none on the first page.
    pub prev_before: Option<String>,
    /// Instances matching the VA and status filters (from the status counters; the search
    /// `q` is not counted, that would read every row).
    pub total: i64,
}

/// An opaque cursor: base64url of `{"s": sort, "k": key, "id": id}`. The sort travels
/// with it so a cursor of another order is refused rather than misread.
pub fn encode_cursor(sort: SortBy, i: &Instance) -> String {
    encode_position(
        sort,
        &Position {
            key: sort.key_of(i),
            id: i.id.clone(),
        },
    )
}

fn encode_position(sort: SortBy, p: &Position) -> String {
    let key = match &p.key {
        Key::None => Value::Null,
        Key::Int(n) => json!(n),
        Key::Text(t) => json!(t),
    };
    let raw = json!({ "s": sort.as_str(), "k": key, "id": p.id }).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// Reads a cursor made by `encode_cursor` for `sort`; None when it is not one.
pub fn decode_cursor(sort: SortBy, raw: &str) -> Option<Position> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw.trim())
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    if v["s"].as_str()? != sort.as_str() {
        return None;
    }
    let id = v["id"].as_str()?.to_string();
    let key = match (sort, &v["k"]) {
        (SortBy::Id, Value::Null) => Key::None,
        (SortBy::LastContact, k) => Key::Int(k.as_i64()?),
        (SortBy::Pid | SortBy::Status, k) => Key::Text(k.as_str()?.to_string()),
        _ => return None,
    };
    Some(Position { key, id })
}

/// Every VA of the account the caller may read.
pub fn account(conn: &Connection, cap: &ReadAccount, input: &ListInput) -> Result<Listed> {
    let vas = match &input.virtual_account {
        Some(name) => {
            let va = accounts::find_va(conn, &cap.account, name)?;
            vec![VaRef {
                id: va.id,
                name: va.name,
                account_id: cap.account.id,
                account_name: cap.account.name.clone(),
            }]
        }
        None => instance_list::vas(conn, Some(cap.account.id))?,
    };
    let scope = match &input.virtual_account {
        Some(_) => Scope::Va,
        None => Scope::Account(cap.account.id),
    };
    list(conn, vas, scope, input)
}

/// Every VA of every account.
pub fn all(conn: &Connection, _cap: &SystemAdmin, input: &ListInput) -> Result<Listed> {
    let vas = instance_list::vas(conn, None)?;
    list(conn, vas, Scope::All, input)
}

/// What the total counts.
#[derive(Clone, Copy)]
enum Scope {
    Va,
    Account(i64),
    All,
}

/// From the status counters, never from the instances.
fn total(conn: &Connection, vas: &[VaRef], scope: Scope, input: &ListInput) -> Result<i64> {
    let counts = match scope {
        Scope::Va => match vas.first() {
            Some(v) => instances::status_counts(conn, Some(v.id), None)?,
            None => vec![],
        },
        Scope::Account(id) => instances::status_counts(conn, None, Some(id))?,
        Scope::All => instances::status_counts(conn, None, None)?,
    };
    let direct: i64 = counts
        .into_iter()
        .filter(|(status, _)| input.filter.status.is_none_or(|s| s.as_str() == status))
        .map(|(_, n)| n)
        .sum();
    // Instances satellites reported have no status counters: counted on their index.
    let ids: Vec<i64> = vas.iter().map(|v| v.id).collect();
    let status = input.filter.status.map(|s| s.as_str());
    Ok(direct + reported::count(conn, &ids, status)?)
}

fn list(conn: &Connection, vas: Vec<VaRef>, scope: Scope, input: &ListInput) -> Result<Listed> {
    let limit = input.limit.max(1);
    let ids: Vec<i64> = vas.iter().map(|v| v.id).collect();
    let (from, direction) = match &input.from {
        Some((p, d)) => (Some(p), *d),
        None => (None, Direction::Forward),
    };
    let mut rows = instance_list::page(
        conn,
        &ids,
        input.sort,
        &input.filter,
        from,
        direction,
        limit + 1,
    )?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    if direction == Direction::Backward {
        rows.reverse();
    }
    let cursor =
        |i: Option<&instance_list::ListRow>| i.map(|i| encode_cursor(input.sort, &i.instance));
    // Coming from a position, the way back starts there even when this page is empty.
    let back = from.map(|p| cursor(rows.first()).unwrap_or_else(|| encode_position(input.sort, p)));
    let (next_after, prev_before) = match direction {
        Direction::Forward => (if more { cursor(rows.last()) } else { None }, back),
        Direction::Backward => (
            from.map(|p| cursor(rows.last()).unwrap_or_else(|| encode_position(input.sort, p))),
            if more { cursor(rows.first()) } else { None },
        ),
    };
    let total = total(conn, &vas, scope, input)?;
    let mut items = Vec::with_capacity(rows.len());
    for instance_list::ListRow {
        instance,
        reported_by,
    } in rows
    {
        let va = vas
            .iter()
            .find(|v| v.id == instance.va_id)
            .cloned()
            .ok_or_else(|| StoreError::not_found("virtual account"))?;
        let usage = match &reported_by {
            Some(r) => reported::usage_of(conn, r.satellite_id, &instance.id)?,
            None => instances::usage_of(conn, &instance.id)?,
        };
        items.push(Item {
            instance,
            va,
            usage,
            reported_by,
        });
    }
    Ok(Listed {
        items,
        next_after,
        prev_before,
        total,
    })
}

/// One VA's instances by id (`GET .../virtual-accounts/{va}/instances`): registered here
/// and, on an upstream, reported by satellites, merged in id order; `search` is a prefix of
/// the id, pid, sn or hostname; `after` the last id of the page before.
pub fn va_by_id(
    conn: &Connection,
    cap: &ReadAccount,
    va: &crate::store::accounts::VirtualAccount,
    search: Option<&str>,
    after: Option<&str>,
    limit: u32,
) -> Result<(Vec<Item>, Option<String>)> {
    let va = VaRef {
        id: va.id,
        name: va.name.clone(),
        account_id: cap.account.id,
        account_name: cap.account.name.clone(),
    };
    let direct = instances::list(conn, va.id, search, after, limit)?;
    let reported = reported::va_page(conn, va.id, search, after, limit + 1)?;
    let (rows, next_after) = merge_by_id(direct, reported, limit);
    let mut items = Vec::with_capacity(rows.len());
    for (instance, reported_by) in rows {
        let usage = match &reported_by {
            Some(r) => reported::usage_of(conn, r.satellite_id, &instance.id)?,
            None => instances::usage_of(conn, &instance.id)?,
        };
        items.push(Item {
            instance,
            va: va.clone(),
            usage,
            reported_by,
        });
    }
    Ok((items, next_after))
}

/// A merged page of one VA: each instance with who reported it (when a satellite did),
/// and the cursor after the page when more follow.
pub type VaPage = (Vec<(Instance, Option<ReportedBy>)>, Option<String>);

/// One VA's instances for its instance page: registered here and reported by
/// satellites, merged in id order, filtered as `instances::list_filtered` filters.
#[allow(clippy::too_many_arguments)]
pub fn va_filtered(
    conn: &Connection,
    _cap: &ReadAccount,
    va_id: i64,
    search: Option<&str>,
    status: Option<InstanceStatus>,
    after: Option<&str>,
    limit: u32,
) -> Result<VaPage> {
    let direct = instances::list_filtered(conn, va_id, search, status, after, limit)?;
    let status = status.map(InstanceStatus::as_str);
    let reported = reported::va_filtered(conn, va_id, search, status, after, limit + 1)?;
    Ok(merge_by_id(direct, reported, limit))
}

/// A page of direct instances (cut at `limit`, saying whether more follow) and up to
/// `limit + 1` reported ones after the same id, merged: the first `limit` by id and the
/// cursor after them when more follow on either side.
fn merge_by_id(
    direct: Page<Instance>,
    reported: Vec<(Instance, ReportedBy)>,
    limit: u32,
) -> VaPage {
    let direct_more = direct.next_after.is_some();
    let mut rows: Vec<(Instance, Option<ReportedBy>)> = direct
        .items
        .into_iter()
        .map(|i| (i, None))
        .chain(reported.into_iter().map(|(i, r)| (i, Some(r))))
        .collect();
    rows.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    // Every direct row up to the cut is here, so the first `limit` merged rows are right.
    let more = direct_more || rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_after = if more {
        rows.last().map(|r| r.0.id.clone())
    } else {
        None
    };
    (rows, next_after)
}

/// A satellite-reported instance of a VA (read-only), when no instance registered here
/// has that id.
pub fn reported_instance(
    conn: &Connection,
    cap: &ReadAccount,
    va: &str,
    id: &str,
) -> Result<Option<Item>> {
    let va = accounts::find_va(conn, &cap.account, va)?;
    if instances::find_by_id(conn, id)?.is_some_and(|i| i.va_id == va.id) {
        return Ok(None);
    }
    let Some((instance, r)) = reported::find(conn, va.id, id)? else {
        return Ok(None);
    };
    let usage = reported::usage_of(conn, r.satellite_id, id)?;
    Ok(Some(Item {
        instance,
        va: VaRef {
            id: va.id,
            name: va.name,
            account_id: cap.account.id,
            account_name: cap.account.name.clone(),
        },
        usage,
        reported_by: Some(r),
    }))
}

/// Refuses a change to an instance a satellite reported (upstream): it is managed on
/// that satellite, so removing or moving it here would be undone by the next sync.
pub fn refuse_reported(conn: &Connection, va_id: i64, id: &str) -> Result<()> {
    if instances::find_by_id(conn, id)?.is_some_and(|i| i.va_id == va_id) {
        return Ok(());
    }
    match reported::find(conn, va_id, id)? {
        Some((_, by)) => Err(crate::domain::DomainError::conflict(
            "synced_read_only",
            format!(
                "Instance {id} is registered on satellite {}: remove or move it there, and sync.",
                by.authority_id
            ),
        )
        .into()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::instance::Udi;

    #[test]
    fn cursors_round_trip_and_keep_their_sort() {
        let i = Instance {
            key: 0,
            id: "inst_1".into(),
            va_id: 1,
            udi: Udi {
                pid: "C9300".into(),
                sn: "FOC1".into(),
                uuid: None,
            },
            public_key: vec![],
            product_name: "p".into(),
            product_version: "1".into(),
            hostname: None,
            export_controlled: false,
            registered_at: 0,
            last_contact: 42,
            cert_renew_after: 0,
            cert_expires_at: 0,
            auth_renew_after: None,
            auth_expires_at: None,
            status: crate::domain::instance::InstanceStatus::Authorized,
            last_report_id: None,
            last_measured_at_us: None,
        };
        for sort in SortBy::ALL {
            let c = encode_cursor(sort, &i);
            let p = decode_cursor(sort, &c).unwrap();
            assert_eq!(p.id, "inst_1");
            assert_eq!(p.key, sort.key_of(&i));
            let other = SortBy::ALL.into_iter().find(|s| *s != sort).unwrap();
            assert!(
                decode_cursor(other, &c).is_none(),
                "a cursor of another sort"
            );
        }
        assert!(decode_cursor(SortBy::Id, "not a cursor!").is_none());
    }
}
