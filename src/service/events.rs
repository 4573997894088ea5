//! Reading the event log: filters parsed once (dates are `YYYY-MM-DD`, UTC, both ends
//! inclusive), pages for lists and a row-at-a-time walk for CSV exports. An account-scoped
//! caller sees its account's events only (`access::Visible`).

use super::access::Visible;
use super::Result;
use crate::domain::DomainError;
use crate::store::events::{self, EventFilter, EventRow};
use crate::store::page::Page;
use chrono::NaiveDate;
use rusqlite::Connection;

/// The filters as typed at the edge (query string or form), before parsing.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct RawFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub account: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn day(field: &'static str, raw: Option<&str>) -> Result<Option<NaiveDate>> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Some)
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

fn midnight(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp())
}

/// Parses the filters: bad dates, or `from` after `to`, are 422 on their field.
pub fn filter(raw: &RawFilter) -> Result<EventFilter> {
    let from = day("from", raw.from.as_deref())?;
    let to = day("to", raw.to.as_deref())?;
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(DomainError::invalid(
                "invalid_range",
                "to",
                format!("'to' ({t}) is before 'from' ({f})."),
            )
            .into());
        }
    }
    Ok(EventFilter {
        actor: non_empty(raw.actor.as_deref()),
        action: non_empty(raw.action.as_deref()),
        account: non_empty(raw.account.as_deref()),
        from: from.map(midnight),
        // Inclusive: everything before the next day's midnight.
        until: to.and_then(|t| t.succ_opt()).map(midnight),
    })
}

pub fn list(
    conn: &Connection,
    scope: Visible,
    filter: &EventFilter,
    after: Option<i64>,
    limit: u32,
) -> Result<Page<EventRow>> {
    Ok(events::list(
        conn,
        scope.account_filter(),
        filter,
        after,
        limit,
    )?)
}

pub const CSV_COLUMNS: [&str; 7] = ["id", "at", "actor", "action", "account", "target", "detail"];

/// One event as CSV cells, in `CSV_COLUMNS` order.
pub fn cells(e: &EventRow) -> [String; 7] {
    [
        e.id.to_string(),
        crate::clock::rfc3339(e.at),
        e.actor.clone(),
        e.action.clone(),
        e.account.clone().unwrap_or_default(),
        e.target.clone(),
        e.detail.clone(),
    ]
}

/// Every event the filter selects, newest first, one at a time.
pub fn for_each(
    conn: &Connection,
    scope: Visible,
    filter: &EventFilter,
    each: impl FnMut(EventRow) -> bool,
) -> Result<()> {
    Ok(events::for_each(
        conn,
        scope.account_filter(),
        filter,
        each,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_inclusive_utc_days_and_bad_ones_name_their_field() {
        let f = filter(&RawFilter {
            from: Some("2026-11-01".into()),
            to: Some("2026-11-01".into()),
            ..RawFilter::default()
        })
        .unwrap();
        assert_eq!(f.from, Some(1_793_491_200));
        assert_eq!(f.until, Some(1_793_491_200 + 86_400));
        for (from, to, field) in [
            ("2026-13-01", "", "from"),
            ("", "yesterday", "to"),
            ("2026-11-02", "2026-11-01", "to"),
        ] {
            let e = filter(&RawFilter {
                from: Some(from.into()),
                to: Some(to.into()),
                ..RawFilter::default()
            })
            .unwrap_err();
            match e {
                super::super::ServiceError::Domain(DomainError::Invalid { field: f, .. }) => {
                    assert_eq!(f, field)
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
