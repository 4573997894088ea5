//! `/api/v1/api-clients` (CONTRACT section 7): machine clients, system admins only.

use crate::clock::rfc3339;
use crate::service::{access, api_clients};
use crate::store::api_clients::ApiClient;
use crate::web::auth::ApiCaller;
use crate::web::{AppError, State};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiClientBody {
    pub name: String,
    /// system-admin, operator, account-admin or viewer.
    pub role: String,
    /// Required for account-admin and viewer; not allowed for the others.
    pub account: Option<String>,
}

/// A client as listed: never its secret.
#[derive(Serialize, ToSchema)]
pub struct ApiClientDto {
    pub id: i64,
    pub client_id: String,
    pub name: String,
    pub role: &'static str,
    pub account: Option<String>,
    pub created_at: String,
    /// When it last exchanged its credentials for a token.
    pub last_used_at: Option<String>,
}

/// A client as created: `client_secret` appears here only.
#[derive(Serialize, ToSchema)]
pub struct CreatedApiClientDto {
    pub id: i64,
    pub client_id: String,
    pub client_secret: String,
    pub name: String,
    pub role: &'static str,
    pub account: Option<String>,
}

fn dto(c: &ApiClient) -> ApiClientDto {
    ApiClientDto {
        id: c.id,
        client_id: c.client_id.clone(),
        name: c.name.clone(),
        role: c.role.as_str(),
        account: c.account.clone(),
        created_at: rfc3339(c.created_at),
        last_used_at: c.last_used_at.map(rfc3339),
    }
}

#[derive(Serialize, ToSchema)]
pub struct ApiClientList {
    pub items: Vec<ApiClientDto>,
}

#[utoipa::path(get, path = "/api/v1/api-clients", tag = "api-clients",
    responses((status = 200, body = ApiClientList), (status = 403, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(state: State, ApiCaller(who): ApiCaller) -> Result<HttpResponse, AppError> {
    let cap = access::system_admin(&who)?;
    let clients = state
        .store
        .read(move |c| Ok(api_clients::list(c, &cap)?))
        .await?;
    Ok(HttpResponse::Ok().json(ApiClientList {
        items: clients.iter().map(dto).collect(),
    }))
}

#[utoipa::path(post, path = "/api/v1/api-clients", tag = "api-clients",
    request_body = NewApiClientBody,
    responses((status = 201, body = CreatedApiClientDto), (status = 422, body = super::ErrorBody),
              (status = 409, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    state: State,
    ApiCaller(who): ApiCaller,
    body: web::Json<NewApiClientBody>,
) -> Result<HttpResponse, AppError> {
    let cap = access::system_admin(&who)?;
    let b = body.into_inner();
    let new = api_clients::NewApiClient::parse(b.name, &b.role, b.account)?;
    let now = state.clock.unix();
    let made = state
        .store
        .write(move |tx| Ok(api_clients::create(tx, &cap, now, new)?))
        .await?;
    let c = &made.client;
    Ok(HttpResponse::Created().json(CreatedApiClientDto {
        id: c.id,
        client_id: c.client_id.clone(),
        client_secret: made.client_secret,
        name: c.name.clone(),
        role: c.role.as_str(),
        account: c.account.clone(),
    }))
}

#[utoipa::path(delete, path = "/api/v1/api-clients/{id}", tag = "api-clients",
    params(("id" = i64, Path)),
    responses((status = 200, body = ApiClientDto), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let cap = access::system_admin(&who)?;
    let id = api_clients::parse_id(&path.into_inner())?;
    let now = state.clock.unix();
    let client = state
        .store
        .write(move |tx| Ok(api_clients::revoke(tx, &cap, now, id)?))
        .await?;
    Ok(HttpResponse::Ok().json(dto(&client)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/api-clients", web::get().to(list))
        .route("/api/v1/api-clients", web::post().to(create))
        .route("/api/v1/api-clients/{id}", web::delete().to(revoke));
}
