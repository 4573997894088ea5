//! `/api/v1/accounts/{a}/settings` and `/api/v1/accounts/{a}/virtual-accounts/{va}/settings`
//! (CONTRACT.md section 5): read by anyone who sees the account, patched by its editors.

use crate::service::settings;
use crate::service::settings::{AccountSettingsPatch, VaSettingsPatch};
use crate::store::accounts;
use crate::store::settings::{AccountSettings, VaSettings};
use crate::web::auth::ApiCaller;
use crate::web::{calls, AppError, State};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct AccountSettingsDto {
    /// The account may reserve licenses (default true).
    pub reservation_enabled: bool,
    /// The account may hold export-controlled licenses and export keys (default true).
    pub export_allowed: bool,
}

impl From<AccountSettings> for AccountSettingsDto {
    fn from(s: AccountSettings) -> Self {
        Self {
            reservation_enabled: s.reservation_enabled,
            export_allowed: s.export_allowed,
        }
    }
}

/// Fields to change; a left-out field stays as it is, an unknown one is refused (400).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountSettingsChanges {
    pub reservation_enabled: Option<bool>,
    pub export_allowed: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct VaSettingsDto {
    /// Export key requests in this virtual account wait for an admin (default false).
    pub export_approval: bool,
}

impl From<VaSettings> for VaSettingsDto {
    fn from(s: VaSettings) -> Self {
        Self {
            export_approval: s.export_approval,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VaSettingsChanges {
    pub export_approval: Option<bool>,
}

#[utoipa::path(get, path = "/api/v1/accounts/{a}/settings", tag = "settings",
    params(("a" = String, Path, description = "account name")),
    responses((status = 200, body = AccountSettingsDto), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_account(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let name = path.into_inner();
    let s = calls::read_account(&state, &who, &name, |c, cap, _| settings::account(c, cap)).await?;
    Ok(HttpResponse::Ok().json(AccountSettingsDto::from(s)))
}

#[utoipa::path(patch, path = "/api/v1/accounts/{a}/settings", tag = "settings",
    params(("a" = String, Path, description = "account name")), request_body = AccountSettingsChanges,
    responses((status = 200, body = AccountSettingsDto), (status = 400, body = super::ErrorBody),
              (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch_account(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
    body: web::Json<AccountSettingsChanges>,
) -> Result<HttpResponse, AppError> {
    let (name, body) = (path.into_inner(), body.into_inner());
    let patch = AccountSettingsPatch {
        reservation_enabled: body.reservation_enabled,
        export_allowed: body.export_allowed,
    };
    let s = calls::edit_account(&state, &who, &name, move |tx, cap, now| {
        settings::patch_account(tx, cap, now.unix, patch)
    })
    .await?;
    Ok(HttpResponse::Ok().json(AccountSettingsDto::from(s)))
}

#[utoipa::path(get, path = "/api/v1/accounts/{a}/virtual-accounts/{va}/settings", tag = "settings",
    params(("a" = String, Path, description = "account name"), ("va" = String, Path, description = "virtual account name")),
    responses((status = 200, body = VaSettingsDto), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_va(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (a, va) = path.into_inner();
    let s = calls::read_account(&state, &who, &a, move |c, cap, _| {
        let va = accounts::find_va(c, &cap.account, &va)?;
        settings::va(c, cap, &va)
    })
    .await?;
    Ok(HttpResponse::Ok().json(VaSettingsDto::from(s)))
}

#[utoipa::path(patch, path = "/api/v1/accounts/{a}/virtual-accounts/{va}/settings", tag = "settings",
    params(("a" = String, Path, description = "account name"), ("va" = String, Path, description = "virtual account name")),
    request_body = VaSettingsChanges,
    responses((status = 200, body = VaSettingsDto), (status = 400, body = super::ErrorBody),
              (status = 403, body = super::ErrorBody), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn patch_va(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String)>,
    body: web::Json<VaSettingsChanges>,
) -> Result<HttpResponse, AppError> {
    let ((a, va), body) = (path.into_inner(), body.into_inner());
    let patch = VaSettingsPatch {
        export_approval: body.export_approval,
    };
    let s = calls::edit_account(&state, &who, &a, move |tx, cap, now| {
        let va = accounts::find_va(tx, &cap.account, &va)?;
        settings::patch_va(tx, cap, now.unix, &va, patch)
    })
    .await?;
    Ok(HttpResponse::Ok().json(VaSettingsDto::from(s)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let account = "/api/v1/accounts/{a}/settings";
    let va = "/api/v1/accounts/{a}/virtual-accounts/{va}/settings";
    cfg.route(account, web::get().to(get_account))
        .route(account, web::patch().to(patch_account))
        .route(va, web::get().to(get_va))
        .route(va, web::patch().to(patch_va));
}
