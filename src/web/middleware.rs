//! Middleware: a request id and tracing span per request, and security headers.

use super::error::REQUEST_ID;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::Error;
use std::time::Instant;
use tracing::Instrument;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// A request id unique within this process's life and unlikely to repeat across
/// restarts: a random prefix drawn once, then a counter (no system call per request).
fn next_request_id() -> String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| uuid::Uuid::new_v4().simple().to_string()[..8].to_string());
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}{:08x}", n & 0xffff_ffff)
}

/// Gives each request an id (echoed in `X-Request-Id` and shown on error pages), a span,
/// and one log line when it completes.
pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = next_request_id();
    // The path only: query strings may carry values that are not for the log.
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.path());
    let started = Instant::now();
    let result = REQUEST_ID
        .scope(id.clone(), next.call(req).instrument(span.clone()))
        .await;
    let mut res = result?;
    let status = res.status().as_u16();
    span.in_scope(|| {
        // request_id on the line itself too, so JSON lines carry it at the top level.
        tracing::info!(request_id = %id, status, ms = started.elapsed().as_millis() as u64, "served");
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), value);
    }
    Ok(res)
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What a machine-only path's answers may load or be framed by: nothing.
const MACHINE_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Security headers on every response. HSTS only makes sense over TLS.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let is_static = req.path().starts_with("/static/");
    // Agents and peers get JSON and bundles, never a document to render: the short
    // policy for APIs, a fifth of the page policy's bytes on every agent reply.
    let machine_only = ["/agent/", "/sync/"]
        .iter()
        .any(|p| req.path().starts_with(p));
    let tls = req.connection_info().scheme() == "https";
    let mut res = next.call(req).await?;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(if machine_only { MACHINE_CSP } else { CSP }),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if tls {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    if !is_static && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(res)
}

/// `HEAD` on a page answers what `GET` would, headers and status, without the body (the
/// HTTP layer leaves the body out of a HEAD response). Machine paths keep their own routes.
pub async fn head_as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    if req.method() == actix_web::http::Method::HEAD && !super::api::is_machine_path(req.path()) {
        req.head_mut().method = actix_web::http::Method::GET;
    }
    next.call(req).await
}
