//! Static files, compiled into the binary so the server is one file to deploy.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

const APP_CSS: &str = include_str!("../../static/app.css");
const APP_JS: &str = include_str!("../../static/app.js");

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(body)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/static/app.css",
        web::get().to(|| async { asset("text/css; charset=utf-8", APP_CSS) }),
    )
    .route(
        "/static/app.js",
        web::get().to(|| async { asset("text/javascript; charset=utf-8", APP_JS) }),
    );
}
