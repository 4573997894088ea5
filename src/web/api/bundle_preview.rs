//! `POST /api/v1/bundles/preview`: the import route's body and auth, answered with what
//! importing would change. Nothing is applied and nothing of the body is kept: it is read
//! into memory (bounded by `preview_body_max_bytes`) and dropped after the answer.

use crate::service::bundle_preview::{preview_bundle, run_sync};
use crate::web::auth::ApiCaller;
use crate::web::upload::{body_in_memory_under, declared_length};
use crate::web::{AppError, State};
use actix_web::{web, HttpResponse};

#[utoipa::path(post, path = "/api/v1/bundles/preview", tag = "sync",
    request_body(content = Vec<u8>, content_type = "application/gzip"),
    responses((status = 200, description = "what importing would change: {result: would_apply|duplicate, kind, bundle_id, sequence, account, changes_account, virtual_accounts: [{name, created, licenses_added, licenses_changed, licenses_removed, instances_new, instances_moved, instances_gone, usage, compliance}], turns_short}; nothing applied, nothing kept"),
              (status = 413, body = super::ErrorBody),
              (status = 422, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn preview(
    state: State,
    req: actix_web::HttpRequest,
    ApiCaller(who): ApiCaller,
    mut payload: web::Payload,
) -> Result<HttpResponse, AppError> {
    let cap = run_sync(&who)?;
    let limit = state.settings.preview_body_max_bytes;
    let body = body_in_memory_under(
        &mut payload,
        declared_length(&req),
        limit,
        "preview_body_max_bytes",
    )
    .await?;
    let ctx = state.sync.clone();
    let report = web::block(move || preview_bundle(&cap, &ctx, body)).await??;
    Ok(HttpResponse::Ok().json(report))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/bundles/preview", web::post().to(preview));
}
