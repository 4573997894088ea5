//! `GET /api/v1/accounts/{a}/instances` (every VA of an account) and `GET /api/v1/instances`
//! (every account, system admins): filters, sort and keyset paging both ways.

use super::instances::{item_dto, InstanceDto};
use crate::service::access;
use crate::service::instance_list::{self, Listed};
use crate::web::auth::ApiCaller;
use crate::web::calls::instance_list::{parse, Query};
use crate::web::{AppError, State};
use actix_web::{web, HttpResponse};
use serde::Serialize;

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
            .map(|i| {
                let account = i.va.account_name.clone();
                Item {
                    instance: item_dto(i),
                    account,
                }
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
