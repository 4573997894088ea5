//! `GET /api/v1/accounts/{a}/instances` (every VA of an account) and `GET /api/v1/instances`
//! (every account, system admins): filters, sort and keyset paging both ways.

use super::instances::{dto, InstanceDto};
use crate::domain::instance::InstanceStatus;
use crate::service::access;
use crate::service::instance_list::{self, ListInput, Listed};
use crate::store::instance_list::{Direction, Filter, SortBy};
use crate::store::page;
use crate::web::auth::ApiCaller;
use crate::web::{AppError, State};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

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

#[derive(Serialize)]
pub struct Item {
    #[serde(flatten)]
    pub instance: InstanceDto,
    pub account: String,
}

#[derive(Serialize)]
pub struct Answer {
    pub items: Vec<Item>,
    pub next_after: Option<String>,
    /// Cursor for the page before (pass as `before=`); null on the first page.
    pub prev_before: Option<String>,
    /// Instances matching the VA and status filters (the search is not counted).
    pub total: i64,
}

fn answer(listed: Listed) -> Answer {
    Answer {
        items: listed
            .items
            .into_iter()
            .map(|i| Item {
                instance: dto(&i.instance, &i.va.name, i.usage),
                account: i.va.account_name,
            })
            .collect(),
        next_after: listed.next_after,
        prev_before: listed.prev_before,
        total: listed.total,
    }
}

#[utoipa::path(get, path = "/api/v1/accounts/{a}/instances", tag = "instances",
    params(("a" = String, Path), Query),
    responses((status = 200, description = "{items, next_after, prev_before, total}"),
              (status = 400, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn account(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
    q: web::Query<Query>,
) -> Result<HttpResponse, AppError> {
    let input = parse(&q)?;
    let a = path.into_inner();
    let listed = state
        .store
        .read(move |c| {
            let cap = access::read_account(c, &who, &a)?;
            Ok(instance_list::account(c, &cap, &input)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(answer(listed)))
}

#[utoipa::path(get, path = "/api/v1/instances", tag = "instances",
    params(Query),
    responses((status = 200, description = "{items, next_after, prev_before, total}"),
              (status = 400, body = super::ErrorBody), (status = 403, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn all(
    state: State,
    ApiCaller(who): ApiCaller,
    q: web::Query<Query>,
) -> Result<HttpResponse, AppError> {
    let input = parse(&q)?;
    if input.virtual_account.is_some() {
        return Err(AppError::bad_request(
            "virtual_account needs an account: use /api/v1/accounts/{a}/instances.",
        ));
    }
    let cap = access::system_admin(&who)?;
    let listed = state
        .store
        .read(move |c| Ok(instance_list::all(c, &cap, &input)?))
        .await?;
    Ok(HttpResponse::Ok().json(answer(listed)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/accounts/{a}/instances", web::get().to(account))
        .route("/api/v1/instances", web::get().to(all));
}
