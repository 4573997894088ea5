//! `GET /api/v1/alerts`: what needs attention now.

use crate::domain::alerts::Alert;
use crate::store::alerts;
use crate::web::auth::ApiCaller;
use crate::web::{AppError, State};
use actix_web::{web, HttpResponse};

pub async fn load(state: &State, who: crate::domain::Principal) -> Result<Vec<Alert>, AppError> {
    let (now, today) = (state.clock.unix(), state.clock.now().date_naive());
    let overdue = state.settings.sync_overdue_days;
    Ok(state
        .store
        .read(move |c| alerts::collect(c, &who, now, today, overdue))
        .await?)
}

#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts",
    responses((status = 200, description = "{items: [{severity, kind, account, subject, message}], next_after: null}")),
    security(("bearer" = [])))]
pub async fn list(state: State, ApiCaller(who): ApiCaller) -> Result<HttpResponse, AppError> {
    let items = load(&state, who).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items, "next_after": null })))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/alerts", web::get().to(list));
}
