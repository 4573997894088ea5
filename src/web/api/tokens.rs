//! `/api/v1/accounts/{a}/virtual-accounts/{va}/tokens`: registration tokens.

use super::{List, ListQuery};
use crate::clock::rfc3339;
use crate::service::access;
use crate::service::tokens as service_tokens;
use crate::store::{page, tokens};
use crate::web::auth::ApiCaller;
use crate::web::{AppError, State};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
pub struct NewToken {
    #[serde(default)]
    pub description: String,
    /// 1 to 365.
    pub expires_in_days: i64,
    /// Leave out for no limit.
    pub max_uses: Option<i64>,
    /// Left out: false (CONTRACT section 3).
    #[serde(default)]
    pub export_controlled: bool,
}

/// A token as created: the secret `token` appears here only.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    pub id: String,
    pub token: String,
    pub expires_at: String,
    pub max_uses: Option<i64>,
    pub uses: i64,
    pub export_controlled: bool,
}

#[derive(Serialize, ToSchema)]
pub struct TokenDto {
    pub id: String,
    pub description: String,
    pub created_at: String,
    pub created_by: String,
    pub expires_at: String,
    pub max_uses: Option<i64>,
    pub uses: i64,
    pub export_controlled: bool,
    /// active, expired, revoked or exhausted.
    pub state: &'static str,
}

pub fn dto(t: &tokens::Token, now: i64) -> TokenDto {
    TokenDto {
        id: t.id.clone(),
        description: t.description.clone(),
        created_at: rfc3339(t.created_at),
        created_by: t.created_by.clone(),
        expires_at: rfc3339(t.expires_at),
        max_uses: t.max_uses,
        uses: t.uses,
        export_controlled: t.export_controlled,
        state: t.state(now).as_str(),
    }
}

#[utoipa::path(get, path = "/api/v1/accounts/{a}/virtual-accounts/{va}/tokens", tag = "tokens",
    params(("a" = String, Path), ("va" = String, Path), ListQuery),
    responses((status = 200, body = inline(List<TokenDto>))), security(("bearer" = [])))]
pub async fn list(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String)>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    let ((a, va), q) = (path.into_inner(), q.into_inner());
    let limit = page::clamp_limit(q.limit);
    let page = state
        .store
        .read(move |c| {
            let (cap, va) = access::read_va(c, &who, &a, &va)?;
            Ok(service_tokens::list(
                c,
                &cap,
                &va,
                q.after.as_deref(),
                limit,
            )?)
        })
        .await?;
    let now = state.clock.unix();
    Ok(HttpResponse::Ok().json(List::from_page(page, |t| dto(t, now))))
}

#[utoipa::path(post, path = "/api/v1/accounts/{a}/virtual-accounts/{va}/tokens", tag = "tokens",
    params(("a" = String, Path), ("va" = String, Path)), request_body = NewToken,
    responses((status = 201, body = CreatedToken), (status = 422, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String)>,
    body: web::Json<NewToken>,
) -> Result<HttpResponse, AppError> {
    let ((a, va), b) = (path.into_inner(), body.into_inner());
    let now = state.clock.unix();
    let (token, secret) = state
        .store
        .write(move |tx| {
            let (cap, va) = access::edit_va(tx, &who, &a, &va)?;
            let new = service_tokens::NewToken {
                description: &b.description,
                expires_in_days: b.expires_in_days,
                max_uses: b.max_uses,
                export_controlled: b.export_controlled,
            };
            Ok(service_tokens::create(tx, &cap, now, &va, new)?)
        })
        .await?;
    Ok(HttpResponse::Created().json(CreatedToken {
        id: token.id,
        token: secret,
        expires_at: rfc3339(token.expires_at),
        max_uses: token.max_uses,
        uses: token.uses,
        export_controlled: token.export_controlled,
    }))
}

#[utoipa::path(delete, path = "/api/v1/accounts/{a}/virtual-accounts/{va}/tokens/{id}", tag = "tokens",
    params(("a" = String, Path), ("va" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = TokenDto), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, AppError> {
    let (a, va, id) = path.into_inner();
    let now = state.clock.unix();
    let token = state
        .store
        .write(move |tx| {
            let (cap, va) = access::edit_va(tx, &who, &a, &va)?;
            Ok(service_tokens::revoke(tx, &cap, now, &va, &id)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(dto(&token, now)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let base = "/api/v1/accounts/{a}/virtual-accounts/{va}/tokens";
    cfg.route(base, web::get().to(list))
        .route(base, web::post().to(create))
        .route(&format!("{base}/{{id}}"), web::delete().to(revoke));
}
