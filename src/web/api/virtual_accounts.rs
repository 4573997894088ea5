//! `/api/v1/accounts/{a}/virtual-accounts`: list, create, show, update, delete.

use super::accounts::AccountChanges;
use super::{List, ListQuery};
use crate::service::access;
use crate::service::virtual_accounts as service_vas;
use crate::store::{accounts, page};
use crate::web::auth::ApiCaller;
use crate::web::{AppError, State};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct VirtualAccountDto {
    pub name: String,
    pub description: String,
    /// True when the virtual account comes from the upstream (read-only here).
    pub synced: bool,
}

impl From<&accounts::VirtualAccount> for VirtualAccountDto {
    fn from(v: &accounts::VirtualAccount) -> Self {
        Self {
            name: v.name.clone(),
            description: v.description.clone(),
            synced: v.synced,
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct NewVirtualAccount {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

#[utoipa::path(get, path = "/api/v1/accounts/{a}/virtual-accounts", tag = "virtual accounts",
    params(("a" = String, Path, description = "account name"), ListQuery),
    responses((status = 200, body = inline(List<VirtualAccountDto>)), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    let (name, q) = (path.into_inner(), q.into_inner());
    let limit = page::clamp_limit(q.limit);
    let page = state
        .store
        .read(move |c| {
            let cap = access::read_account(c, &who, &name)?;
            Ok(service_vas::list(c, &cap, q.after.as_deref(), limit)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(List::from_page(page, |v| VirtualAccountDto::from(v))))
}

#[utoipa::path(post, path = "/api/v1/accounts/{a}/virtual-accounts", tag = "virtual accounts",
    params(("a" = String, Path, description = "account name")), request_body = NewVirtualAccount,
    responses((status = 201, body = VirtualAccountDto), (status = 403, body = super::ErrorBody),
              (status = 422, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn create(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
    body: web::Json<NewVirtualAccount>,
) -> Result<HttpResponse, AppError> {
    let (name, body) = (path.into_inner(), body.into_inner());
    let now = state.clock.unix();
    let va = state
        .store
        .write(move |tx| {
            let cap = access::edit_account(tx, &who, &name)?;
            Ok(service_vas::create(
                tx,
                &cap,
                now,
                &body.name,
                &body.description,
            )?)
        })
        .await?;
    Ok(HttpResponse::Created().json(VirtualAccountDto::from(&va)))
}

#[utoipa::path(get, path = "/api/v1/accounts/{a}/virtual-accounts/{va}", tag = "virtual accounts",
    params(("a" = String, Path, description = "account name"), ("va" = String, Path, description = "virtual account name")),
    responses((status = 200, body = VirtualAccountDto), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (a, va) = path.into_inner();
    let va = state
        .store
        .read(move |c| {
            let (_, va) = access::read_va(c, &who, &a, &va)?;
            Ok(va)
        })
        .await?;
    Ok(HttpResponse::Ok().json(VirtualAccountDto::from(&va)))
}

#[utoipa::path(patch, path = "/api/v1/accounts/{a}/virtual-accounts/{va}", tag = "virtual accounts",
    params(("a" = String, Path, description = "account name"), ("va" = String, Path, description = "virtual account name")),
    request_body = AccountChanges,
    responses((status = 200, body = VirtualAccountDto), (status = 409, body = super::ErrorBody),
              (status = 422, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn update(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String)>,
    body: web::Json<AccountChanges>,
) -> Result<HttpResponse, AppError> {
    let ((a, va), body) = (path.into_inner(), body.into_inner());
    let now = state.clock.unix();
    let va = state
        .store
        .write(move |tx| {
            let (cap, va) = access::edit_va(tx, &who, &a, &va)?;
            let changes = service_vas::Changes {
                name: body.name,
                description: body.description,
            };
            Ok(service_vas::update(tx, &cap, now, &va, &changes)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(VirtualAccountDto::from(&va)))
}

#[utoipa::path(delete, path = "/api/v1/accounts/{a}/virtual-accounts/{va}", tag = "virtual accounts",
    params(("a" = String, Path, description = "account name"), ("va" = String, Path, description = "virtual account name")),
    responses((status = 204), (status = 409, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (a, va) = path.into_inner();
    let now = state.clock.unix();
    state
        .store
        .write(move |tx| {
            let (cap, va) = access::edit_va(tx, &who, &a, &va)?;
            Ok(service_vas::delete(tx, &cap, now, &va)?)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let base = "/api/v1/accounts/{a}/virtual-accounts";
    cfg.route(base, web::get().to(list))
        .route(base, web::post().to(create))
        .route(&format!("{base}/{{va}}"), web::get().to(show))
        .route(&format!("{base}/{{va}}"), web::patch().to(update))
        .route(&format!("{base}/{{va}}"), web::delete().to(delete));
}
