//! `/api/v1/accounts/{a}/virtual-accounts`: list, create, show, update, delete.

use super::accounts::AccountChanges;
use super::{List, ListQuery};
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
            let account = accounts::find(c, &who, &name)?;
            accounts::list_vas(c, &account, q.after.as_deref(), limit)
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
            let account = accounts::find(tx, &who, &name)?;
            accounts::create_va(tx, &who, now, &account, &body.name, &body.description)
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
            let account = accounts::find(c, &who, &a)?;
            accounts::find_va(c, &account, &va)
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
            let account = accounts::find(tx, &who, &a)?;
            accounts::update_va(
                tx,
                &who,
                now,
                &account,
                &va,
                body.name.as_deref(),
                body.description.as_deref(),
            )
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
            let account = accounts::find(tx, &who, &a)?;
            accounts::delete_va(tx, &who, now, &account, &va)
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
