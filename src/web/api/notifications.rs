//! `GET PUT /api/v1/accounts/{a}/notifications` and `POST .../notifications/test`
//! (CONTRACT section 7). The webhook secret is accepted, never answered.

use crate::service::access;
use crate::service::notifications::{self as service, NotificationSettingsInput};
use crate::web::auth::ApiCaller;
use crate::web::calls::notifications::run_test;
use crate::web::{AppError, State};
use actix_web::{web, HttpResponse};

#[utoipa::path(get, path = "/api/v1/accounts/{a}/notifications", tag = "notifications",
    params(("a" = String, Path, description = "account name")),
    responses((status = 200, description = "{emails, webhook_url, webhook_secret_set, kinds}")),
    security(("bearer" = [])))]
pub async fn get(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let name = path.into_inner();
    let out = state
        .store
        .read(move |c| {
            let cap = access::read_account(c, &who, &name)?;
            Ok(service::get(c, &cap)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(put, path = "/api/v1/accounts/{a}/notifications", tag = "notifications",
    params(("a" = String, Path, description = "account name")),
    responses((status = 200, description = "the settings, without the secret"),
              (status = 422, description = "invalid_email, invalid_url, invalid_secret, invalid_kind")),
    security(("bearer" = [])))]
pub async fn put(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
    body: web::Json<NotificationSettingsInput>,
) -> Result<HttpResponse, AppError> {
    let (name, body) = (path.into_inner(), body.into_inner());
    let now = state.clock.unix();
    let out = state
        .store
        .write(move |tx| {
            let cap = access::edit_account(tx, &who, &name)?;
            Ok(service::put(tx, &cap, now, body.try_into()?)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(out))
}

#[utoipa::path(post, path = "/api/v1/accounts/{a}/notifications/test", tag = "notifications",
    params(("a" = String, Path, description = "account name")),
    responses((status = 200, description = "{email: \"sent\" | \"failed: …\", webhook: …}")),
    security(("bearer" = [])))]
pub async fn test(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let result = run_test(&state, who, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(result))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/accounts/{a}/notifications", web::get().to(get))
        .route("/api/v1/accounts/{a}/notifications", web::put().to(put))
        .route(
            "/api/v1/accounts/{a}/notifications/test",
            web::post().to(test),
        );
}
