//! `PATCH` and `DELETE /api/v1/accounts/{a}/virtual-accounts/{va}/licenses/{tag}`: change
//! or remove a license on the upstream.

use super::licenses::{dto, LicenseDto};
use crate::config::ServerRole;
use crate::service::access;
use crate::service::licenses::{self, LicensePatch};
use crate::store::accounts;
use crate::store::licenses as store_licenses;
use crate::web::auth::ApiCaller;
use crate::web::{AppError, State};
use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};

fn upstream_only(state: &State) -> Result<(), AppError> {
    if state.settings.role != ServerRole::Upstream {
        return Err(AppError::new(
            StatusCode::FORBIDDEN,
            "upstream_only",
            "Licenses are changed on the upstream and arrive here by sync.",
        ));
    }
    Ok(())
}

#[utoipa::path(patch, path = "/api/v1/accounts/{a}/virtual-accounts/{va}/licenses/{tag}", tag = "licenses",
    params(("a" = String, Path), ("va" = String, Path), ("tag" = String, Path)),
    responses((status = 200, body = LicenseDto), (status = 403, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody),
              (status = 422, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String, String)>,
    body: web::Json<LicensePatch>,
) -> Result<HttpResponse, AppError> {
    upstream_only(&state)?;
    let ((a, va, tag), patch) = (path.into_inner(), body.into_inner());
    let (now, today) = (state.clock.unix(), state.clock.now().date_naive());
    let t = tag.clone();
    let (all, evaluation) = state
        .store
        .write(move |tx| {
            let cap = access::edit_account(tx, &who, &a)?;
            let va = accounts::find_va(tx, &cap.account, &va)?;
            licenses::update(tx, &cap, now, today, &va, &t, patch)?;
            store_licenses::evaluate(tx, va.id, today)
        })
        .await?;
    let changed = all
        .iter()
        .find(|l| l.spec.tag == tag)
        .map(|l| dto(l, &evaluation))
        .ok_or_else(|| AppError::internal("changed license not found"))?;
    Ok(HttpResponse::Ok().json(changed))
}

#[utoipa::path(delete, path = "/api/v1/accounts/{a}/virtual-accounts/{va}/licenses/{tag}", tag = "licenses",
    params(("a" = String, Path), ("va" = String, Path), ("tag" = String, Path)),
    responses((status = 204), (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody),
              (status = 409, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn remove(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, AppError> {
    upstream_only(&state)?;
    let (a, va, tag) = path.into_inner();
    let (now, today) = (state.clock.unix(), state.clock.now().date_naive());
    state
        .store
        .write(move |tx| {
            let cap = access::edit_account(tx, &who, &a)?;
            let va = accounts::find_va(tx, &cap.account, &va)?;
            Ok(licenses::remove(tx, &cap, now, today, &va, &tag)?)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let one = "/api/v1/accounts/{a}/virtual-accounts/{va}/licenses/{tag}";
    cfg.route(one, web::patch().to(update))
        .route(one, web::delete().to(remove));
}
