//! `/api/v1/accounts`: list, create, show, update (rename, describe), delete.

use super::{List, ListQuery};
use crate::service::access;
use crate::service::accounts as service_accounts;
use crate::store::{accounts, page};
use crate::web::auth::ApiCaller;
use crate::web::{AppError, State};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct AccountDto {
    pub name: String,
    pub description: String,
}

impl From<&accounts::Account> for AccountDto {
    fn from(a: &accounts::Account) -> Self {
        Self {
            name: a.name.clone(),
            description: a.description.clone(),
        }
    }
}

#[derive(Deserialize, ToSchema)]
pub struct NewAccount {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// Fields to change; absent fields stay as they are.
#[derive(Deserialize, ToSchema)]
pub struct AccountChanges {
    pub name: Option<String>,
    pub description: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/accounts", tag = "accounts", params(ListQuery),
    responses((status = 200, body = inline(List<AccountDto>))), security(("bearer" = [])))]
pub async fn list(
    state: State,
    ApiCaller(who): ApiCaller,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    let q = q.into_inner();
    let limit = page::clamp_limit(q.limit);
    let page = state
        .store
        .read(move |c| {
            let scope = access::visible(&who);
            Ok(service_accounts::list(c, scope, q.after.as_deref(), limit)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(List::from_page(page, |a| AccountDto::from(a))))
}

#[utoipa::path(post, path = "/api/v1/accounts", tag = "accounts", request_body = NewAccount,
    responses((status = 201, body = AccountDto), (status = 403, body = super::ErrorBody),
              (status = 422, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn create(
    state: State,
    ApiCaller(who): ApiCaller,
    body: web::Json<NewAccount>,
) -> Result<HttpResponse, AppError> {
    let body = body.into_inner();
    let now = state.clock.unix();
    let account = state
        .store
        .write(move |tx| {
            let cap = access::system_admin_to(&who, "create accounts")?;
            Ok(service_accounts::create(
                tx,
                &cap,
                now,
                &body.name,
                &body.description,
            )?)
        })
        .await?;
    Ok(HttpResponse::Created().json(AccountDto::from(&account)))
}

#[utoipa::path(get, path = "/api/v1/accounts/{a}", tag = "accounts",
    params(("a" = String, Path, description = "account name")),
    responses((status = 200, body = AccountDto), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn show(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let name = path.into_inner();
    let account = state
        .store
        .read(move |c| Ok(access::read_account(c, &who, &name)?.account))
        .await?;
    Ok(HttpResponse::Ok().json(AccountDto::from(&account)))
}

#[utoipa::path(patch, path = "/api/v1/accounts/{a}", tag = "accounts",
    params(("a" = String, Path, description = "account name")), request_body = AccountChanges,
    responses((status = 200, body = AccountDto), (status = 409, body = super::ErrorBody),
              (status = 422, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn update(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
    body: web::Json<AccountChanges>,
) -> Result<HttpResponse, AppError> {
    let (name, body) = (path.into_inner(), body.into_inner());
    let now = state.clock.unix();
    let account = state
        .store
        .write(move |tx| {
            let cap = access::edit_account(tx, &who, &name)?;
            let admin = access::system_admin(&who).ok();
            let changes = service_accounts::Changes {
                name: body.name,
                description: body.description,
            };
            Ok(service_accounts::update(
                tx,
                &cap,
                admin.as_ref(),
                now,
                &changes,
            )?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(AccountDto::from(&account)))
}

#[utoipa::path(delete, path = "/api/v1/accounts/{a}", tag = "accounts",
    params(("a" = String, Path, description = "account name")),
    responses((status = 204), (status = 409, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn delete(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let name = path.into_inner();
    let now = state.clock.unix();
    state
        .store
        .write(move |tx| {
            let seen = access::read_account(tx, &who, &name)?;
            let cap = access::system_admin_to(&who, "delete accounts")?;
            Ok(service_accounts::delete(tx, &seen, &cap, now)?)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/accounts", web::get().to(list))
        .route("/api/v1/accounts", web::post().to(create))
        .route("/api/v1/accounts/{a}", web::get().to(show))
        .route("/api/v1/accounts/{a}", web::patch().to(update))
        .route("/api/v1/accounts/{a}", web::delete().to(delete));
}
