//! Why an instance's licenses have the status they have: each license it reports with its
//! status and the reason in words, from the VA's current evaluation (domain::explain).

use super::access::ReadAccount;
use super::Result;
use crate::domain::explain::{self, LicenseReason};
use crate::store::accounts::VirtualAccount;
use crate::store::instances;
use crate::store::licenses::{self, License};
use chrono::NaiveDate;
use rusqlite::Connection;
use std::collections::BTreeMap;

/// Each license the instance reports, explained; `_cap` proves the caller sees the account.
pub fn licenses_of(
    conn: &Connection,
    _cap: &ReadAccount,
    va: &VirtualAccount,
    instance_id: &str,
    export_controlled: bool,
    today: NaiveDate,
) -> Result<Vec<LicenseReason>> {
    let (list, evaluation) = licenses::evaluate(conn, va.id, today)?;
    let pools: Vec<_> = list.iter().map(License::pool).collect();
    let names = names_of(&list);
    Ok(instances::usage_of(conn, instance_id)?
        .into_iter()
        .map(|(tag, count)| {
            explain::license_reason(&pools, &evaluation, &names, &tag, count, export_controlled)
        })
        .collect())
}

/// Tag → license name, for sentences.
pub fn names_of(list: &[License]) -> BTreeMap<String, String> {
    list.iter()
        .map(|l| (l.spec.tag.clone(), l.spec.name.clone()))
        .collect()
}
