//! `/api/v1/reports/*` (CONTRACT section 7): licenses, instances and usage history as
//! `{"items": [...]}` or CSV with the same columns (`format=csv`). The instances report
//! streams, so an estate of a million instances never sits in memory.

use crate::service::access;
use crate::service::reports::{self, Scope};
use crate::web::auth::ApiCaller;
use crate::web::download;
use crate::web::exports::{instances_body, Format};
use crate::web::{AppError, State};
use actix_web::{web, HttpResponse};
use serde::Deserialize;

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ReportQuery {
    /// Account name; an account-scoped caller sees only its own.
    pub account: Option<String>,
    /// Virtual account name (with `account`).
    pub virtual_account: Option<String>,
    /// Instances report: an instance status.
    pub status: Option<String>,
    /// Usage history: one tag.
    pub tag: Option<String>,
    /// Usage history: first day, YYYY-MM-DD.
    pub from: Option<String>,
    /// Usage history: last day, YYYY-MM-DD.
    pub to: Option<String>,
    /// json (default) or csv.
    pub format: Option<String>,
}

async fn resolve(
    state: &State,
    who: crate::domain::Principal,
    q: &ReportQuery,
) -> Result<Scope, AppError> {
    let (account, va) = (q.account.clone(), q.virtual_account.clone());
    Ok(state
        .store
        .read(move |c| {
            Ok(reports::scope(
                c,
                access::visible(&who),
                account.as_deref(),
                va.as_deref(),
            )?)
        })
        .await?)
}

#[utoipa::path(get, path = "/api/v1/reports/licenses", tag = "reports", params(ReportQuery),
    responses((status = 200, description = "{items} or CSV"), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn licenses(
    state: State,
    ApiCaller(who): ApiCaller,
    q: web::Query<ReportQuery>,
) -> Result<HttpResponse, AppError> {
    let format = Format::parse(q.format.as_deref())?;
    let scope = resolve(&state, who.clone(), &q).await?;
    let today = state.clock.now().date_naive();
    let rows = state
        .store
        .read(move |c| Ok(reports::licenses(c, access::visible(&who), &scope, today)?))
        .await?;
    match format {
        Format::Json => Ok(HttpResponse::Ok().json(serde_json::json!({ "items": rows }))),
        Format::Csv => {
            let doc =
                download::csv_document(&reports::LICENSE_COLUMNS, rows.iter().map(|r| r.cells()))
                    .map_err(AppError::internal)?;
            Ok(download::csv_response("licenses.csv", doc))
        }
    }
}

#[utoipa::path(get, path = "/api/v1/reports/instances", tag = "reports", params(ReportQuery),
    responses((status = 200, description = "{items} or CSV"), (status = 422, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn instances(
    state: State,
    ApiCaller(who): ApiCaller,
    q: web::Query<ReportQuery>,
) -> Result<HttpResponse, AppError> {
    let format = Format::parse(q.format.as_deref())?;
    let status = reports::parse_status(q.status.as_deref())?;
    let scope = resolve(&state, who, &q).await?;
    let body = instances_body(&state, scope, status, format);
    Ok(match format {
        Format::Json => HttpResponse::Ok()
            .content_type("application/json")
            .streaming(body),
        Format::Csv => HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header(download::attachment("instances.csv"))
            .streaming(body),
    })
}

#[utoipa::path(get, path = "/api/v1/reports/usage-history", tag = "reports", params(ReportQuery),
    responses((status = 200, description = "{items} or CSV"), (status = 422, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn usage_history(
    state: State,
    ApiCaller(who): ApiCaller,
    q: web::Query<ReportQuery>,
) -> Result<HttpResponse, AppError> {
    let format = Format::parse(q.format.as_deref())?;
    let scope = resolve(&state, who, &q).await?;
    let filter =
        reports::history_filter(&scope, q.tag.as_deref(), q.from.as_deref(), q.to.as_deref())?;
    let today = state.clock.now().date_naive();
    let rows = state
        .store
        .read(move |c| Ok(reports::usage_history(c, &filter, today)?))
        .await?;
    match format {
        Format::Json => Ok(HttpResponse::Ok().json(serde_json::json!({ "items": rows }))),
        Format::Csv => {
            let doc =
                download::csv_document(&reports::USAGE_COLUMNS, rows.iter().map(|r| r.cells()))
                    .map_err(AppError::internal)?;
            Ok(download::csv_response("usage-history.csv", doc))
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/reports/licenses", web::get().to(licenses))
        .route("/api/v1/reports/instances", web::get().to(instances))
        .route(
            "/api/v1/reports/usage-history",
            web::get().to(usage_history),
        );
}
