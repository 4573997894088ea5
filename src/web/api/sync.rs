//! Sync endpoints: `POST /sync/v1/exchange` (upstream, for connected satellites), bundle
//! import, and per-account upstream registration, export, sync now, schedule, history.

use super::List;
use crate::clock::rfc3339;
use crate::config::ServerRole;
use crate::domain::sync::BundleKind;
use crate::service::access;
use crate::store::{page, sync_state};
use crate::sync::import::{self, Outcome};
use crate::web::auth::ApiCaller;
use crate::web::calls::sync::{
    bundle_response, bundle_response_once, export, import_upload, load_schedule, register,
    require_role, require_sync, run_now, save_schedule, upstream_state, Schedule, UpstreamRequest,
    UpstreamState,
};
use crate::web::upload::{body_in_memory, declared_length};
use crate::web::{AppError, State};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

fn outcome_json(o: &Outcome) -> serde_json::Value {
    json!({ "result": o.result.as_str(), "kind": o.kind.as_str(), "bundle_id": o.bundle_id, "summary": o.summary })
}

/// `POST /sync/v1/exchange`: a satellite's request in, our response out. The bundle's
/// signature is the credential, so until it verifies the peer is anonymous: its body is
/// bounded (`exchange_body_max_bytes`), held in memory, and nothing of it is kept.
pub async fn exchange(
    state: State,
    req: actix_web::HttpRequest,
    mut payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    require_role(&state, ServerRole::Upstream, "The sync exchange")?;
    // The per-address rate limit (web/throttle.rs) has already run, before the body.
    let limit = state.sync.limits.exchange_body_max_bytes;
    let body = body_in_memory(&mut payload, declared_length(&req), limit).await?;
    let ctx = state.sync.clone();
    let outcome = web::block(move || import::import_exchange(&ctx, body)).await??;
    match &outcome.answer {
        Some(w) => bundle_response_once(&w.path),
        None => Err(AppError::unprocessable(
            "bundle_rejected",
            "Only request bundles can be exchanged.",
        )),
    }
}

#[utoipa::path(post, path = "/api/v1/bundles/import", tag = "sync",
    request_body(content = Vec<u8>, content_type = "application/gzip"),
    responses((status = 200, description = "applied or duplicate; on the upstream a request is answered with the response bundle"),
              (status = 422, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn import_bundle(
    state: State,
    ApiCaller(who): ApiCaller,
    payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    require_sync(&who)?;
    let outcome = import_upload(&state, payload).await?;
    match &outcome.answer {
        Some(w) if state.settings.role == ServerRole::Upstream => bundle_response(&w.path),
        _ => Ok(HttpResponse::Ok().json(outcome_json(&outcome))),
    }
}

#[derive(Deserialize, ToSchema)]
pub struct SatelliteTokenRequest {
    #[serde(default)]
    pub description: String,
    pub expires_in_days: i64,
}

#[utoipa::path(post, path = "/api/v1/accounts/{a}/satellite-tokens", tag = "sync",
    params(("a" = String, Path)), request_body = SatelliteTokenRequest,
    responses((status = 201, description = "{token, expires_at}")), security(("bearer" = [])))]
pub async fn satellite_token(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
    body: web::Json<SatelliteTokenRequest>,
) -> Result<HttpResponse, AppError> {
    require_role(
        &state,
        ServerRole::Upstream,
        "Satellite registration tokens",
    )?;
    let (a, b) = (path.into_inner(), body.into_inner());
    let now = state.clock.unix();
    let (expires_at, token) = state
        .store
        .write(move |tx| {
            let account = access::edit_account(tx, &who, &a)?.account;
            sync_state::create_satellite_token(
                tx,
                account.id,
                &b.description,
                b.expires_in_days,
                now,
            )
        })
        .await?;
    Ok(HttpResponse::Created().json(json!({ "token": token, "expires_at": rfc3339(expires_at) })))
}

#[utoipa::path(get, path = "/api/v1/accounts/{a}/upstream", tag = "sync", params(("a" = String, Path)),
    responses((status = 200, body = UpstreamState)), security(("bearer" = [])))]
pub async fn get_upstream(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(upstream_state(&state, who, path.into_inner()).await?))
}

#[utoipa::path(post, path = "/api/v1/accounts/{a}/upstream", tag = "sync", params(("a" = String, Path)),
    request_body = UpstreamRequest,
    responses((status = 200, body = UpstreamState, description = "connected: the registration state; disconnected: the registration-request bundle (application/gzip)")),
    security(("bearer" = [])))]
pub async fn post_upstream(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
    body: web::Json<UpstreamRequest>,
) -> Result<HttpResponse, AppError> {
    match register(&state, who, path.into_inner(), body.into_inner()).await? {
        Ok(s) => Ok(HttpResponse::Ok().json(s)),
        Err(bundle) => bundle_response(&bundle),
    }
}

#[utoipa::path(post, path = "/api/v1/accounts/{a}/sync/export", tag = "sync", params(("a" = String, Path)),
    responses((status = 200, description = "the sync-request bundle (application/gzip)")), security(("bearer" = [])))]
pub async fn export_bundle(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let p = export(&state, who, path.into_inner()).await?;
    bundle_response(&p)
}

#[utoipa::path(post, path = "/api/v1/accounts/{a}/sync/now", tag = "sync", params(("a" = String, Path)),
    responses((status = 200, description = "{result, kind, bundle_id, summary}")), security(("bearer" = [])))]
pub async fn sync_now(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let outcome = run_now(&state, who, path.into_inner()).await?;
    Ok(HttpResponse::Ok().json(outcome_json(&outcome)))
}

#[utoipa::path(get, path = "/api/v1/accounts/{a}/sync/schedule", tag = "sync", params(("a" = String, Path)),
    responses((status = 200, body = Schedule)), security(("bearer" = [])))]
pub async fn get_schedule(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok().json(load_schedule(&state, who, path.into_inner()).await?))
}

#[utoipa::path(put, path = "/api/v1/accounts/{a}/sync/schedule", tag = "sync", params(("a" = String, Path)),
    request_body = Schedule, responses((status = 200, body = Schedule), (status = 422, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn put_schedule(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
    body: web::Json<Schedule>,
) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::Ok()
        .json(save_schedule(&state, who, path.into_inner(), body.into_inner().cron).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct HistoryQuery {
    pub limit: Option<u32>,
    pub after: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryDto {
    pub id: i64,
    pub at: String,
    pub account: Option<String>,
    pub bundle_id: String,
    pub kind: String,
    /// in or out.
    pub direction: String,
    pub sequence: i64,
    pub records: i64,
    /// written, failed (a connected attempt that did not complete), applied, duplicate or rejected.
    pub result: String,
    pub duration_ms: i64,
    pub detail: String,
}

#[utoipa::path(get, path = "/api/v1/sync/history", tag = "sync", params(HistoryQuery),
    responses((status = 200, body = inline(List<HistoryDto>))), security(("bearer" = [])))]
pub async fn history(
    state: State,
    ApiCaller(who): ApiCaller,
    q: web::Query<HistoryQuery>,
) -> Result<HttpResponse, AppError> {
    let q = q.into_inner();
    let limit = page::clamp_limit(q.limit);
    let page = state
        .store
        .read(move |c| sync_state::history(c, who.account_filter(), q.after, limit))
        .await?;
    Ok(
        HttpResponse::Ok().json(List::from_page(page, |h| HistoryDto {
            id: h.id,
            at: rfc3339(h.at),
            account: h.account.clone(),
            bundle_id: h.bundle_id.clone(),
            kind: h.kind.map_or("unknown", BundleKind::as_str).to_string(),
            direction: h.direction.as_str().to_string(),
            sequence: h.sequence,
            records: h.records,
            result: h.result.as_str().to_string(),
            duration_ms: h.duration_ms,
            detail: h.detail.clone(),
        })),
    )
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let a = "/api/v1/accounts/{a}";
    cfg.route("/sync/v1/exchange", web::post().to(exchange))
        .route("/api/v1/bundles/import", web::post().to(import_bundle))
        .route("/api/v1/sync/history", web::get().to(history))
        .route(
            &format!("{a}/satellite-tokens"),
            web::post().to(satellite_token),
        )
        .route(&format!("{a}/upstream"), web::get().to(get_upstream))
        .route(&format!("{a}/upstream"), web::post().to(post_upstream))
        .route(&format!("{a}/sync/export"), web::post().to(export_bundle))
        .route(&format!("{a}/sync/now"), web::post().to(sync_now))
        .route(&format!("{a}/sync/schedule"), web::get().to(get_schedule))
        .route(&format!("{a}/sync/schedule"), web::put().to(put_schedule));
}
