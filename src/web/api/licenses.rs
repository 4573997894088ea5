//! `/api/v1/accounts/{a}/virtual-accounts/{va}/licenses`: pools, creation (upstream), transfer.

use crate::config::ServerRole;
use crate::domain::compliance::{Evaluation, PoolStatus};
use crate::domain::license::{LicenseSpec, RawLicense};
use crate::service::access;
use crate::service::licenses as service_licenses;
use crate::store::licenses::License;
use crate::web::auth::ApiCaller;
use crate::web::{AppError, State};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
pub struct NewLicense {
    pub tag: String,
    pub name: String,
    /// perpetual, term or subscription.
    #[serde(rename = "type")]
    pub license_type: String,
    pub quantity: i64,
    /// YYYY-MM-DD.
    pub start: String,
    /// YYYY-MM-DD, inclusive; required for term and subscription.
    pub end: Option<String>,
    #[serde(default)]
    pub export_controlled: bool,
    /// Tags this license may cover when their own pool is short.
    #[serde(default)]
    pub substitutes: Vec<String>,
    /// Substitution order among licenses covering the same tag: lowest first (default 100).
    pub rank: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct LicenseDto {
    pub tag: String,
    pub name: String,
    #[serde(rename = "type")]
    pub license_type: &'static str,
    pub quantity: i64,
    pub start: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    pub export_controlled: bool,
    pub substitutes: Vec<String>,
    pub rank: i64,
    pub in_use: i64,
    pub reserved: i64,
    pub available: i64,
    /// in_compliance, insufficient, expired or not_started.
    pub status: &'static str,
}

pub fn dto(l: &License, e: &Evaluation) -> LicenseDto {
    let pool = e.pools.get(&l.spec.tag);
    LicenseDto {
        tag: l.spec.tag.clone(),
        name: l.spec.name.clone(),
        license_type: l.spec.license_type.as_str(),
        quantity: l.spec.quantity,
        start: l.spec.start.to_string(),
        end: l.spec.end.map(|d| d.to_string()),
        export_controlled: l.spec.export_controlled,
        substitutes: l.spec.substitutes.clone(),
        rank: l.spec.rank,
        in_use: pool.map_or(0, |p| p.in_use),
        reserved: l.reserved,
        available: pool.map_or(0, |p| p.available),
        status: pool.map_or(PoolStatus::InCompliance, |p| p.status).as_str(),
    }
}

#[derive(Serialize, ToSchema)]
pub struct LicenseList {
    pub items: Vec<LicenseDto>,
    pub next_after: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/accounts/{a}/virtual-accounts/{va}/licenses", tag = "licenses",
    params(("a" = String, Path), ("va" = String, Path)),
    responses((status = 200, body = LicenseList)), security(("bearer" = [])))]
pub async fn list(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (a, va) = path.into_inner();
    let today = state.clock.now().date_naive();
    let (licenses, evaluation) = state
        .store
        .read(move |c| {
            let (cap, va) = access::read_va(c, &who, &a, &va)?;
            Ok(service_licenses::evaluate(c, &cap, &va, today)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(LicenseList {
        items: licenses.iter().map(|l| dto(l, &evaluation)).collect(),
        next_after: None,
    }))
}

#[utoipa::path(post, path = "/api/v1/accounts/{a}/virtual-accounts/{va}/licenses", tag = "licenses",
    params(("a" = String, Path), ("va" = String, Path)), request_body = NewLicense,
    responses((status = 201, body = LicenseDto), (status = 403, body = super::ErrorBody),
              (status = 409, body = super::ErrorBody), (status = 422, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String)>,
    body: web::Json<NewLicense>,
) -> Result<HttpResponse, AppError> {
    if state.settings.role != ServerRole::Upstream {
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            "upstream_only",
            "Licenses are created on the upstream and arrive here by sync.",
        ));
    }
    let ((a, va), b) = (path.into_inner(), body.into_inner());
    let spec = LicenseSpec::validate(RawLicense {
        tag: &b.tag,
        name: &b.name,
        license_type: &b.license_type,
        quantity: b.quantity,
        start: &b.start,
        end: b.end.as_deref(),
        export_controlled: b.export_controlled,
        substitutes: &b.substitutes,
        rank: b.rank,
    })?;
    let (now, today) = (state.clock.unix(), state.clock.now().date_naive());
    let tag = spec.tag.clone();
    let (licenses, evaluation) = state
        .store
        .write(move |tx| {
            let (cap, va) = access::edit_va(tx, &who, &a, &va)?;
            service_licenses::create(tx, &cap, now, &va, &spec)?;
            Ok(service_licenses::evaluate(tx, &cap.read(), &va, today)?)
        })
        .await?;
    let created = licenses
        .iter()
        .find(|l| l.spec.tag == tag)
        .map(|l| dto(l, &evaluation))
        .ok_or_else(|| AppError::internal("created license not found"))?;
    Ok(HttpResponse::Created().json(created))
}

#[derive(Deserialize, ToSchema)]
pub struct Transfer {
    pub tag: String,
    pub quantity: i64,
    pub to_virtual_account: String,
}

#[utoipa::path(post, path = "/api/v1/accounts/{a}/virtual-accounts/{va}/licenses/transfer", tag = "licenses",
    params(("a" = String, Path), ("va" = String, Path)), request_body = Transfer,
    responses((status = 200, body = LicenseList, description = "the source's licenses after the transfer"),
              (status = 409, body = super::ErrorBody), (status = 422, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn transfer(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String)>,
    body: web::Json<Transfer>,
) -> Result<HttpResponse, AppError> {
    let ((a, va), b) = (path.into_inner(), body.into_inner());
    let (now, today) = (state.clock.unix(), state.clock.now().date_naive());
    let (licenses, evaluation) = state
        .store
        .write(move |tx| {
            let (cap, from) = access::edit_va(tx, &who, &a, &va)?;
            let t = service_licenses::Transfer {
                tag: b.tag,
                quantity: b.quantity,
                to: b.to_virtual_account,
            };
            service_licenses::transfer(tx, &cap, now, today, &from, &t)?;
            Ok(service_licenses::evaluate(tx, &cap.read(), &from, today)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(LicenseList {
        items: licenses.iter().map(|l| dto(l, &evaluation)).collect(),
        next_after: None,
    }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let base = "/api/v1/accounts/{a}/virtual-accounts/{va}/licenses";
    cfg.route(base, web::get().to(list))
        .route(base, web::post().to(create))
        .route(&format!("{base}/transfer"), web::post().to(transfer));
}
