//! `GET /api/v1/alerts` (what needs attention now, `from=`/`to=` by day raised) and
//! `POST /api/v1/alerts/{id}/acknowledge`.

use crate::service::access;
use crate::service::alerts::{self as service, DateFilter};
use crate::web::auth::ApiCaller;
use crate::web::calls::alerts::{load_full, now};
use crate::web::{AppError, State};
use actix_web::{web, HttpResponse};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct ListQuery {
    from: Option<String>,
    to: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts",
    params(("from" = Option<String>, Query, description = "raised on or after this day (YYYY-MM-DD)"),
           ("to" = Option<String>, Query, description = "raised on or before this day (YYYY-MM-DD)")),
    responses((status = 200, description = "{items: [{id, kind, severity, account, virtual_account?, subject, message, raised_at, acknowledged_at?}], next_after: null}"),
              (status = 422, description = "invalid_date")),
    security(("bearer" = [])))]
pub async fn list(
    state: State,
    ApiCaller(who): ApiCaller,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    let filter = DateFilter::parse(q.from.as_deref(), q.to.as_deref())?;
    let items = load_full(&state, who, filter).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items, "next_after": null })))
}

#[utoipa::path(post, path = "/api/v1/alerts/{id}/acknowledge", tag = "alerts",
    responses((status = 200, description = "the alert, with acknowledged_at and acknowledged_by"),
              (status = 404, description = "no such alert now (or not the caller's)")),
    security(("bearer" = [])))]
pub async fn acknowledge(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let at = now(&state);
    let alert = state
        .store
        .write(move |tx| {
            let (visible, editor) = (access::visible(&who), access::editable(&who));
            Ok(service::acknowledge(tx, visible, &editor, at, &id)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(alert))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/alerts", web::get().to(list)).route(
        "/api/v1/alerts/{id}/acknowledge",
        web::post().to(acknowledge),
    );
}
