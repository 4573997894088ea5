//! `GET /api/v1/events`: the event log, newest first.

use super::List;
use crate::clock;
use crate::service::access::visible;
use crate::service::events as service_events;
use crate::store::page;
use crate::web::auth::ApiCaller;
use crate::web::exports::{events_csv as csv_export, Format};
use crate::web::{AppError, State};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct EventDto {
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    /// `user:NAME`, `client:NAME`, `cli` or `system`.
    pub actor: String,
    pub action: String,
    pub account: Option<String>,
    pub target: String,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct EventQuery {
    pub limit: Option<u32>,
    /// The `next_after` of the previous page.
    pub after: Option<i64>,
    pub actor: Option<String>,
    pub action: Option<String>,
    pub account: Option<String>,
    /// First day, YYYY-MM-DD (UTC), inclusive.
    pub from: Option<String>,
    /// Last day, YYYY-MM-DD (UTC), inclusive.
    pub to: Option<String>,
    /// json (default) or csv: every matching event, newest first, unpaged.
    pub format: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventQuery),
    responses((status = 200, body = inline(List<EventDto>)), (status = 422, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: State,
    ApiCaller(who): ApiCaller,
    q: web::Query<EventQuery>,
) -> Result<HttpResponse, AppError> {
    let q = q.into_inner();
    let limit = page::clamp_limit(q.limit);
    let format = Format::parse(q.format.as_deref())?;
    let filter = service_events::filter(&service_events::RawFilter {
        actor: q.actor,
        action: q.action,
        account: q.account,
        from: q.from,
        to: q.to,
    })?;
    if format == Format::Csv {
        return Ok(csv_export(&state, who, filter));
    }
    let page = state
        .store
        .read(move |c| {
            Ok(service_events::list(
                c,
                visible(&who),
                &filter,
                q.after,
                limit,
            )?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(List::from_page(page, |e| EventDto {
        id: e.id,
        at: clock::rfc3339(e.at),
        actor: e.actor.clone(),
        action: e.action.clone(),
        account: e.account.clone(),
        target: e.target.clone(),
        detail: serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null),
    })))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/events", web::get().to(list));
}
