//! The instance list's query (`virtual_account`, `status`, `q`, `sort`, `limit`, `after`,
//! `before`), parsed at the edge the same way for the page and the API.

use crate::domain::instance::InstanceStatus;
use crate::service::instance_list::{self, ListInput};
use crate::store::instance_list::{Direction, Filter, SortBy};
use crate::store::page;
use crate::web::AppError;
use serde::Deserialize;

#[derive(Deserialize, Default, Clone, utoipa::IntoParams)]
pub struct Query {
    /// Only this virtual account.
    pub virtual_account: Option<String>,
    /// registered, authorized, out_of_compliance, not_authorized, authorization_expired.
    pub status: Option<String>,
    /// A substring of the id, PID, serial number, hostname or product name.
    pub q: Option<String>,
    /// last_contact (newest first), pid or status; by id when left out.
    pub sort: Option<String>,
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next_after` cursor of the page before.
    pub after: Option<String>,
    /// The `prev_before` cursor of the page after (paging back).
    pub before: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Parses the query at the edge: anything malformed is a 400 naming the parameter.
pub fn parse(q: &Query) -> Result<ListInput, AppError> {
    let sort = match nonempty(&q.sort) {
        None => SortBy::default(),
        Some(s) => s.parse().map_err(|_| {
            AppError::bad_request(format!(
                "sort is one of last_contact, pid, status (not '{s}')."
            ))
        })?,
    };
    let status = match nonempty(&q.status) {
        None => None,
        Some(s) => Some(
            InstanceStatus::parse(s)
                .ok_or_else(|| AppError::bad_request(format!("Unknown instance status '{s}'.")))?,
        ),
    };
    let cursor = |raw: &str, name: &str| {
        instance_list::decode_cursor(sort, raw).ok_or_else(|| {
            AppError::bad_request(format!(
                "{name} is not a cursor of this list in this sort order; start again from the first page."
            ))
        })
    };
    let from = match (nonempty(&q.after), nonempty(&q.before)) {
        (Some(_), Some(_)) => return Err(AppError::bad_request("Pass after or before, not both.")),
        (Some(a), None) => Some((cursor(a, "after")?, Direction::Forward)),
        (None, Some(b)) => Some((cursor(b, "before")?, Direction::Backward)),
        (None, None) => None,
    };
    Ok(ListInput {
        virtual_account: nonempty(&q.virtual_account).map(str::to_string),
        sort,
        filter: Filter {
            status,
            q: nonempty(&q.q).map(str::to_string),
        },
        from,
        limit: page::clamp_limit(q.limit),
    })
}
