//! HTTP: admin pages, the admin API and (later) the agent protocol, behind one rustls
//! listener. This module builds the app; handlers live one resource per file.

pub mod agent;
pub mod api;
pub mod assets;
pub mod auth;
pub mod badge;
pub mod calls;
pub mod charts;
pub mod download;
pub mod error;
pub mod exports;
pub mod health;
pub mod limits;
pub mod metrics;
pub mod middleware;
pub mod pages;
pub mod pending_imports;
pub mod render;
pub mod shown_once;
pub mod sqlite_metrics;
pub mod throttle;
pub mod upload;

pub use error::{AppError, PageError};

use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::AuthorityKey;
use crate::store::Store;
use actix_web::{web, App, HttpRequest, HttpServer};
use std::sync::Arc;

/// What every handler can reach.
pub struct AppState {
    pub store: Store,
    pub settings: Settings,
    pub authority: Arc<AuthorityKey>,
    pub clock: Clock,
    pub login_throttle: throttle::LoginThrottle,
    /// Per-address and per-credential rate limits (web/throttle.rs).
    pub rates: throttle::RateLimits,
    pub sync: crate::sync::SyncContext,
    /// Parsed keys of instances that signed requests lately (a hint; see agent/keys.rs).
    pub agent_keys: agent::keys::KeyCache,
    /// Checks agent request signatures in batches (agent/verifier.rs).
    pub signatures: agent::verifier::Verifier,
    pub metrics: Arc<metrics::Metrics>,
    /// The menu's alert count, kept a few seconds per visibility scope.
    pub alert_badge: badge::AlertBadge,
    /// Uploads the Sync page previewed, waiting for Apply or Discard (in memory only).
    pub pending_imports: pending_imports::PendingImports,
    /// Secrets kept for one showing after a post/redirect/get (in memory only).
    pub shown_once: shown_once::ShownOnce,
}

pub type State = web::Data<AppState>;

/// How long requests in flight may take to finish once a stop is asked for.
pub const SHUTDOWN_GRACE_SECONDS: u64 = 25;

/// What extractors may buffer at most; each route's real limit is a setting applied by
/// `limits::guard_bodies` (larger bodies get 413).
pub const BODY_LIMIT: usize = limits::EXTRACTOR_CEILING;

/// Registers every route, extractor config and middleware on an app.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(BODY_LIMIT)
            .error_handler(|e, _| AppError::from_json_error(e).into()),
    )
    .app_data(
        web::FormConfig::default()
            .limit(BODY_LIMIT)
            .error_handler(|e, _| limits::form_error(e).into()),
    )
    .app_data(
        web::QueryConfig::default()
            .error_handler(|e, _| AppError::bad_request(e.to_string()).into()),
    )
    .app_data(
        web::PathConfig::default()
            .error_handler(|e, _| AppError::bad_request(e.to_string()).into()),
    )
    .configure(health::configure)
    .configure(metrics::configure)
    .configure(assets::configure)
    .app_data(web::PayloadConfig::default().limit(BODY_LIMIT))
    .configure(agent::configure)
    .configure(api::configure)
    .configure(pages::configure);
}

/// Answers unknown routes: JSON under the machine prefixes, the 404 page elsewhere.
async fn not_found(req: HttpRequest) -> actix_web::HttpResponse {
    let path = req.path();
    let err = AppError::not_found(format!("No route for {} {path}", req.method()));
    if api::is_machine_path(path) {
        actix_web::ResponseError::error_response(&err)
    } else {
        actix_web::ResponseError::error_response(&PageError::App(err))
    }
}

/// The `--metrics-listen` listener: plain HTTP, `/metrics` only, one worker.
pub fn serve_metrics(
    state: State,
    listener: std::net::TcpListener,
) -> std::io::Result<actix_web::dev::Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/metrics", web::get().to(metrics::metrics_open))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?;
    Ok(server.run())
}

/// Starts serving on an already-bound listener (so callers learn the real port first).
pub fn serve(
    state: State,
    listener: std::net::TcpListener,
    tls: Option<rustls::ServerConfig>,
) -> std::io::Result<actix_web::dev::Server> {
    let tls_on = tls.is_some();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let budget = limits::ConnectionBudget::from_settings(&state.settings, workers);
    let per_address = limits::PerAddress::new(state.settings.max_connections_per_address);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .configure(configure)
            .default_service(web::to(not_found))
            // The last wrapped runs first. Before routing: HEAD as GET, then (inside the
            // agent response signing) the per-address rate limit, the `/api/v1` bearer
            // token, and the body limit and deadline (docs/security.md).
            .wrap(actix_web::middleware::from_fn(limits::guard_bodies))
            .wrap(actix_web::middleware::from_fn(auth::bearer_first))
            .wrap(actix_web::middleware::from_fn(throttle::limit_by_address))
            .wrap(actix_web::middleware::from_fn(
                agent::signing::sign_agent_responses,
            ))
            .wrap(actix_web::middleware::from_fn(middleware::head_as_get))
            .wrap(actix_web::middleware::from_fn(middleware::security_headers))
            .wrap(actix_web::middleware::from_fn(metrics::record))
            .wrap(actix_web::middleware::from_fn(middleware::request_context))
    })
    .on_connect(move |conn, ext| per_address.on_connect(conn, ext))
    .workers(workers)
    .max_connections(budget.max_connections_per_worker)
    .client_request_timeout(budget.header_timeout)
    .client_disconnect_timeout(budget.disconnect_timeout)
    .keep_alive(budget.keep_alive)
    .tls_handshake_timeout(budget.tls_handshake_timeout)
    .max_connection_rate(budget.max_handshakes_per_worker)
    // The caller decides when to stop (SIGTERM and SIGINT alike, see cli/serve.rs);
    // requests in flight get this long to finish, inside the 30 s the contract allows.
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_GRACE_SECONDS);
    let server = match tls {
        Some(config) => server.listen_rustls_0_23(listener, config)?,
        None => server.listen(listener)?,
    };
    tracing::info!(tls = tls_on, "listening");
    Ok(server.run())
}
