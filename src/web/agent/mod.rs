//! The agent protocol (`/agent/v1`, CONTRACT.md section 4): what product instances call.
//! Every response under `/agent/v1`, errors included, carries the authority's signature.

mod authority_pem;
mod body;
mod certificate;
mod export;
pub mod keys;
mod lifecycle;
mod register;
pub mod signing;
mod usage;
pub mod verifier;
mod verify;

use crate::web::AppError;
use actix_web::{http::StatusCode, web, HttpRequest};

async fn method_not_allowed(req: HttpRequest) -> Result<actix_web::HttpResponse, AppError> {
    Err(AppError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.path()),
    ))
}

fn post_only(path: &str, route: actix_web::Route) -> actix_web::Resource {
    web::resource(path)
        .route(route)
        .default_service(web::to(method_not_allowed))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/agent/v1/authority")
            .route(web::get().to(register::authority))
            .default_service(web::to(method_not_allowed)),
    )
    .service(post_only(
        "/agent/v1/register",
        web::post().to(register::register),
    ))
    .service(
        web::resource("/agent/v1/authority.pem")
            .route(web::get().to(authority_pem::get))
            .default_service(web::to(method_not_allowed)),
    )
    .service(post_only("/agent/v1/usage", web::post().to(usage::report)))
    .service(post_only(
        "/agent/v1/renew",
        web::post().to(lifecycle::renew),
    ))
    .service(post_only(
        "/agent/v1/deregister",
        web::post().to(lifecycle::deregister),
    ))
    .service(
        web::resource("/agent/v1/export")
            .route(web::get().to(export::list))
            .default_service(web::to(method_not_allowed)),
    )
    .service(post_only(
        "/agent/v1/export/request",
        web::post().to(export::request),
    ))
    .service(post_only(
        "/agent/v1/export/return",
        web::post().to(export::give_back),
    ))
    .service(post_only(
        "/agent/v1/export/cancel",
        web::post().to(export::cancel),
    ));
}
