//! Reports (CONTRACT section 7): licenses, instances and usage over time, per account or
//! VA, scoped like everything else (the daily snapshot they read is `usage_snapshot`).

use super::access::Visible;
use super::Result;
use crate::domain::compliance::PoolStatus;
use crate::domain::instance::InstanceStatus;
use crate::domain::DomainError;
use crate::store::usage_history::{self, HistoryFilter, PoolDay};
use crate::store::{accounts, licenses, reports};
use chrono::NaiveDate;
use rusqlite::Connection;

pub use super::usage_snapshot::{snapshot_day, HISTORY_DAYS};

/// Which part of the estate a report covers, checked against the caller once.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub account_id: Option<i64>,
    pub va_id: Option<i64>,
}

/// Resolves `account=` and `virtual_account=` for `who`: an account it may not see is not
/// found; an account-scoped caller is held to its own account even when it names none.
pub fn scope(
    conn: &Connection,
    visible: Visible,
    account: Option<&str>,
    virtual_account: Option<&str>,
) -> Result<Scope> {
    let account = account.map(str::trim).filter(|a| !a.is_empty());
    let va = virtual_account.map(str::trim).filter(|v| !v.is_empty());
    let Some(name) = account else {
        if va.is_some() {
            return Err(DomainError::invalid(
                "account_required",
                "account",
                "Name the account of the virtual account (account=...).",
            )
            .into());
        }
        return Ok(Scope {
            account_id: visible.account_filter(),
            va_id: None,
        });
    };
    let account = visible.account(conn, name)?;
    let va_id = match va {
        Some(v) => Some(accounts::find_va(conn, &account, v)?.id),
        None => None,
    };
    Ok(Scope {
        account_id: Some(account.id),
        va_id,
    })
}

/// One row of the licenses report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LicenseRow {
    pub account: String,
    pub virtual_account: String,
    pub tag: String,
    pub name: String,
    #[serde(rename = "type")]
    pub license_type: &'static str,
    pub quantity: i64,
    pub in_use: i64,
    pub reserved: i64,
    pub available: i64,
    pub status: &'static str,
    pub start: String,
    pub end: Option<String>,
}

pub const LICENSE_COLUMNS: [&str; 12] = [
    "account",
    "virtual_account",
    "tag",
    "name",
    "type",
    "quantity",
    "in_use",
    "reserved",
    "available",
    "status",
    "start",
    "end",
];

impl LicenseRow {
    pub fn cells(&self) -> [String; 12] {
        [
            self.account.clone(),
            self.virtual_account.clone(),
            self.tag.clone(),
            self.name.clone(),
            self.license_type.to_string(),
            self.quantity.to_string(),
            self.in_use.to_string(),
            self.reserved.to_string(),
            self.available.to_string(),
            self.status.to_string(),
            self.start.clone(),
            self.end.clone().unwrap_or_default(),
        ]
    }
}

/// Every license the scope covers, with its figures as of `today`.
pub fn licenses(
    conn: &Connection,
    visible: Visible,
    scope: &Scope,
    today: NaiveDate,
) -> Result<Vec<LicenseRow>> {
    let mut out = vec![];
    for (account, va) in accounts::vas_with_licenses(conn, visible.account_filter())? {
        if scope.account_id.is_some_and(|a| a != va.account_id)
            || scope.va_id.is_some_and(|v| v != va.id)
        {
            continue;
        }
        let (ls, evaluation) = licenses::evaluate(conn, va.id, today)?;
        for l in ls {
            let pool = evaluation.pools.get(&l.spec.tag);
            out.push(LicenseRow {
                account: account.clone(),
                virtual_account: va.name.clone(),
                tag: l.spec.tag.clone(),
                name: l.spec.name.clone(),
                license_type: l.spec.license_type.as_str(),
                quantity: l.spec.quantity,
                in_use: pool.map_or(0, |p| p.in_use),
                reserved: l.reserved,
                available: pool.map_or(0, |p| p.available),
                status: pool.map_or(PoolStatus::InCompliance, |p| p.status).as_str(),
                start: l.spec.start.to_string(),
                end: l.spec.end.map(|d| d.to_string()),
            });
        }
    }
    Ok(out)
}

pub const INSTANCE_COLUMNS: [&str; 12] = [
    "account",
    "virtual_account",
    "id",
    "pid",
    "sn",
    "product",
    "version",
    "hostname",
    "status",
    "registered_at",
    "last_contact",
    "licenses",
];

/// One row of the instances report, as JSON and CSV show it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct InstanceReportRow {
    pub account: String,
    pub virtual_account: String,
    pub id: String,
    pub pid: String,
    pub sn: String,
    pub product: String,
    pub version: String,
    pub hostname: Option<String>,
    pub status: String,
    pub registered_at: String,
    pub last_contact: String,
    pub licenses: String,
}

impl InstanceReportRow {
    pub fn cells(&self) -> [String; 12] {
        [
            self.account.clone(),
            self.virtual_account.clone(),
            self.id.clone(),
            self.pid.clone(),
            self.sn.clone(),
            self.product.clone(),
            self.version.clone(),
            self.hostname.clone().unwrap_or_default(),
            self.status.clone(),
            self.registered_at.clone(),
            self.last_contact.clone(),
            self.licenses.clone(),
        ]
    }
}

/// The `status=` filter: one of the contract's instance statuses.
pub fn parse_status(raw: Option<&str>) -> Result<Option<String>> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) if InstanceStatus::parse(s).is_some() => Ok(Some(s.into())),
        Some(s) => Err(DomainError::invalid(
            "invalid_status",
            "status",
            format!(
                "'{s}' is not an instance status; use one of registered, authorized, \
                 out_of_compliance, not_authorized, authorization_expired, reserved."
            ),
        )
        .into()),
    }
}

/// Hands every instance the scope covers to `each`, one at a time, until it answers false.
pub fn for_each_instance(
    conn: &Connection,
    scope: &Scope,
    status: Option<&str>,
    mut each: impl FnMut(InstanceReportRow) -> bool,
) -> Result<()> {
    reports::for_each_instance(conn, scope.account_id, scope.va_id, status, |r| {
        each(InstanceReportRow {
            account: r.account,
            virtual_account: r.virtual_account,
            id: r.id,
            pid: r.pid,
            sn: r.sn,
            product: r.product,
            version: r.version,
            hostname: r.hostname,
            status: r.status,
            registered_at: crate::clock::rfc3339(r.registered_at),
            last_contact: crate::clock::rfc3339(r.last_contact),
            licenses: r.licenses,
        })
    })?;
    Ok(())
}

pub const USAGE_COLUMNS: [&str; 8] = [
    "date",
    "account",
    "virtual_account",
    "tag",
    "purchased",
    "in_use",
    "reserved",
    "available",
];

#[derive(Debug, Clone, serde::Serialize)]
pub struct UsageRow {
    pub date: String,
    pub account: String,
    pub virtual_account: String,
    pub tag: String,
    pub purchased: i64,
    pub in_use: i64,
    pub reserved: i64,
    pub available: i64,
}

impl UsageRow {
    pub fn cells(&self) -> [String; 8] {
        [
            self.date.clone(),
            self.account.clone(),
            self.virtual_account.clone(),
            self.tag.clone(),
            self.purchased.to_string(),
            self.in_use.to_string(),
            self.reserved.to_string(),
            self.available.to_string(),
        ]
    }
}

fn parse_day(field: &'static str, raw: Option<&str>) -> Result<Option<String>> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(|d| Some(d.to_string()))
            .map_err(|_| {
                DomainError::invalid(
                    "invalid_date",
                    field,
                    format!("'{s}' is not a date; write it as YYYY-MM-DD."),
                )
                .into()
            }),
    }
}

/// The history filter from a scope and the raw `tag=`, `from=` and `to=` parameters.
pub fn history_filter(
    scope: &Scope,
    tag: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<HistoryFilter> {
    Ok(HistoryFilter {
        account_id: scope.account_id,
        va_id: scope.va_id,
        tag: tag
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from),
        from: parse_day("from", from)?,
        to: parse_day("to", to)?,
    })
}

/// Today's figures, computed live from the pool counters for the VAs the filter selects.
fn live_day(conn: &Connection, filter: &HistoryFilter, today: NaiveDate) -> Result<Vec<PoolDay>> {
    let mut out = vec![];
    for va in usage_history::tracked_vas(conn)? {
        if filter.va_id.is_some_and(|v| v != va.va_id)
            || filter.account_id.is_some_and(|a| a != va.account_id)
        {
            continue;
        }
        let (ls, evaluation) = licenses::evaluate(conn, va.va_id, today)?;
        for l in ls {
            if filter.tag.as_deref().is_some_and(|t| t != l.spec.tag) {
                continue;
            }
            let pool = evaluation.pools.get(&l.spec.tag);
            out.push(PoolDay {
                day: today.to_string(),
                account: va.account.clone(),
                virtual_account: va.va.clone(),
                tag: l.spec.tag.clone(),
                purchased: l.spec.quantity,
                in_use: pool.map_or(0, |p| p.in_use),
                reserved: l.reserved,
                available: pool.map_or(0, |p| p.available),
            });
        }
    }
    Ok(out)
}

/// One row per day and pool. Earlier days come from the stored history; today, when the
/// range includes it, is computed live, so it is always current.
pub fn usage_history(
    conn: &Connection,
    filter: &HistoryFilter,
    today: NaiveDate,
) -> Result<Vec<UsageRow>> {
    let day = today.to_string();
    let mut days: Vec<PoolDay> = usage_history::pools(conn, filter)?
        .into_iter()
        .filter(|p| p.day < day)
        .collect();
    let wants_today = filter.from.as_deref().is_none_or(|f| f <= day.as_str())
        && filter.to.as_deref().is_none_or(|t| t >= day.as_str());
    if wants_today {
        days.extend(live_day(conn, filter, today)?);
    }
    Ok(days
        .into_iter()
        .map(|p: PoolDay| UsageRow {
            date: p.day,
            account: p.account,
            virtual_account: p.virtual_account,
            tag: p.tag,
            purchased: p.purchased,
            in_use: p.in_use,
            reserved: p.reserved,
            available: p.available,
        })
        .collect())
}
