//! Sync endpoints: `POST /sync/v1/exchange` (upstream, for connected satellites), bundle
//! import, and per-account upstream registration, export, sync now, schedule, history.

use super::List;
use crate::clock::rfc3339;
use crate::config::ServerRole;
use crate::domain::{schedule, DomainError, Principal};
use crate::store::{accounts, page, sync_state};
use crate::sync::import::{self, Outcome};
use crate::sync::{outbound, transport, SyncError};
use crate::web::auth::ApiCaller;
use crate::web::upload::{body_in_memory, declared_length, save_body};
use crate::web::{AppError, State};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::path::Path;
use utoipa::ToSchema;

impl From<SyncError> for AppError {
    fn from(e: SyncError) -> Self {
        match e {
            SyncError::Rejected(reason) => AppError::unprocessable("bundle_rejected", reason),
            SyncError::Duplicate(id) => AppError::new(
                StatusCode::CONFLICT,
                "duplicate",
                format!("Bundle {id} was imported before."),
            ),
            SyncError::Store(e) => e.into(),
            SyncError::Invalid(d) => d.into(),
            SyncError::Network(m) => {
                AppError::new(StatusCode::BAD_GATEWAY, "upstream_unreachable", m)
            }
            SyncError::Untrusted(m) => {
                AppError::new(StatusCode::BAD_GATEWAY, "upstream_untrusted", m)
            }
            SyncError::Refused(m) => AppError::new(StatusCode::BAD_GATEWAY, "upstream_refused", m),
            SyncError::Io(m) => AppError::internal(m),
        }
    }
}

/// Chunks of a file read on a blocking thread, handed to the response as they come.
struct FileChunks(tokio::sync::mpsc::Receiver<std::io::Result<web::Bytes>>);

impl futures_core::Stream for FileChunks {
    type Item = std::io::Result<web::Bytes>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// Sends a bundle file as the response body, streamed in 64 KiB chunks (a bundle can be
/// far larger than memory should hold). The file's place on disk is nobody's business.
pub fn bundle_response(path: &Path) -> Result<HttpResponse, AppError> {
    let file = std::fs::File::open(path).map_err(AppError::internal)?;
    stream_file(file, path)
}

/// As `bundle_response`, and the file is deleted once open: an answer over the exchange is
/// delivered in the response (a lost one is recovered by sending the request again), so
/// outbox/ does not grow with every exchange, nor with replays of a captured request.
fn bundle_response_once(path: &Path) -> Result<HttpResponse, AppError> {
    let file = std::fs::File::open(path).map_err(AppError::internal)?;
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(error = %e, file = %path.display(), "cannot remove a delivered answer");
    }
    stream_file(file, path)
}

fn stream_file(mut file: std::fs::File, path: &Path) -> Result<HttpResponse, AppError> {
    use std::io::Read;
    let len = file.metadata().map_err(AppError::internal)?.len();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle.tar.gz".into());
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || loop {
        let mut buf = vec![0u8; 64 << 10];
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                buf.truncate(n);
                if tx.blocking_send(Ok(web::Bytes::from(buf))).is_err() {
                    break;
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                break;
            }
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("application/gzip")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        ))
        .no_chunking(len)
        .streaming(FileChunks(rx)))
}

fn require_sync(who: &Principal) -> Result<(), AppError> {
    if who.can_sync() {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "Only system admins and operators run sync.",
        ))
    }
}

fn require_role(state: &State, role: ServerRole, what: &str) -> Result<(), AppError> {
    if state.settings.role == role {
        Ok(())
    } else {
        Err(AppError::new(
            StatusCode::FORBIDDEN,
            if role == ServerRole::Upstream {
                "upstream_only"
            } else {
                "satellite_only"
            },
            format!("{what} is only available on a {}.", role.as_str()),
        ))
    }
}

/// Imports an authenticated admin's uploaded body (streamed to disk, gone from inbox/
/// afterwards whatever happens); answers JSON, or the response bundle on the upstream.
pub async fn import_upload(state: &State, payload: web::Payload) -> Result<Outcome, AppError> {
    let path = save_body(payload, &state.sync.dir("inbox")).await?;
    let ctx = state.sync.clone();
    Ok(web::block(move || import::import_upload(&ctx, &path)).await??)
}

fn outcome_json(o: &Outcome) -> serde_json::Value {
    json!({ "result": o.result, "kind": o.kind, "bundle_id": o.bundle_id, "summary": o.summary })
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
            let account = accounts::find_editable(tx, &who, &a)?;
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

#[derive(Deserialize, ToSchema)]
pub struct UpstreamRequest {
    /// connected or disconnected.
    pub mode: String,
    pub token: String,
    /// The upstream's base URL (connected mode).
    pub url: Option<String>,
    /// PEM of the CA (or self-signed certificate) that the upstream's TLS certificate chains to.
    pub ca_cert_pem: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct UpstreamState {
    /// unregistered, pending or registered.
    pub state: String,
    pub mode: Option<String>,
    pub upstream_authority_id: Option<String>,
    pub last_sync: Option<String>,
    pub last_sequence: Option<i64>,
    pub last_acked_sequence: Option<i64>,
    pub registration_expires_at: Option<String>,
}

async fn upstream_state(
    state: &State,
    who: Principal,
    a: String,
) -> Result<UpstreamState, AppError> {
    let link = state
        .store
        .read(move |c| {
            let account = accounts::find(c, &who, &a)?;
            sync_state::link(c, account.id)
        })
        .await?;
    Ok(match link {
        None => UpstreamState {
            state: "unregistered".into(),
            mode: None,
            upstream_authority_id: None,
            last_sync: None,
            last_sequence: None,
            last_acked_sequence: None,
            registration_expires_at: None,
        },
        Some(l) => UpstreamState {
            state: l.state,
            mode: Some(l.mode),
            upstream_authority_id: l.upstream_authority_id,
            last_sync: l.last_sync.map(rfc3339),
            last_sequence: Some(l.last_sequence),
            last_acked_sequence: Some(l.last_acked_sequence),
            registration_expires_at: l.registration_expires_at.map(rfc3339),
        },
    })
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

/// Registers an account with the upstream, connected (at once) or disconnected (answers
/// the request bundle, also written to outbox/).
pub async fn register(
    state: &State,
    who: Principal,
    a: String,
    b: UpstreamRequest,
) -> Result<Result<UpstreamState, std::path::PathBuf>, AppError> {
    require_sync(&who)?;
    require_role(state, ServerRole::Satellite, "Registering with an upstream")?;
    let w = who.clone();
    let name = a.clone();
    let account = state
        .store
        .read(move |c| accounts::find(c, &w, &name))
        .await?;
    let ctx = state.sync.clone();
    // The token's shape is checked before any request is written (after the URL, which
    // says more when both are wrong).
    let token = || crate::domain::token::satellite_token(&b.token);
    match b.mode.as_str() {
        "connected" => {
            // Only https: the registration token travels in this request.
            let url = b
                .url
                .map(|u| u.trim().to_string())
                .filter(|u| transport::is_https(u))
                .ok_or_else(|| {
                    AppError::from(DomainError::invalid(
                        "invalid_url",
                        "url",
                        "url must be the upstream's https:// address (plain http:// would send the registration token in cleartext).",
                    ))
                })?;
            let token = token()?;
            let ca = b.ca_cert_pem.clone().filter(|p| !p.trim().is_empty());
            let acc = account.name.clone();
            web::block(move || transport::connect(&ctx, &acc, &token, &url, ca.as_deref()))
                .await??;
            Ok(Ok(upstream_state(state, who, a).await?))
        }
        "disconnected" => {
            let token = token()?;
            let acc = account.name.clone();
            let w = web::block(move || {
                outbound::registration_request(&ctx, &acc, "disconnected", &token, None, None)
            })
            .await??;
            Ok(Err(w.path))
        }
        _ => {
            Err(
                DomainError::invalid("invalid_mode", "mode", "mode is connected or disconnected.")
                    .into(),
            )
        }
    }
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

/// Writes the account's next sync request (also left in outbox/).
pub async fn export(
    state: &State,
    who: Principal,
    a: String,
) -> Result<std::path::PathBuf, AppError> {
    require_sync(&who)?;
    require_role(state, ServerRole::Satellite, "Exporting a sync request")?;
    let account = state
        .store
        .read(move |c| accounts::find(c, &who, &a))
        .await?;
    let ctx = state.sync.clone();
    let w = web::block(move || outbound::sync_request(&ctx, &account.name, &|_| {})).await??;
    Ok(w.path)
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

pub async fn run_now(state: &State, who: Principal, a: String) -> Result<Outcome, AppError> {
    require_sync(&who)?;
    require_role(state, ServerRole::Satellite, "Sync now")?;
    let account = state
        .store
        .read(move |c| accounts::find(c, &who, &a))
        .await?;
    let ctx = state.sync.clone();
    Ok(web::block(move || transport::sync_now(&ctx, &account.name)).await??)
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

#[derive(Serialize, Deserialize, ToSchema)]
pub struct Schedule {
    /// 6-field cron with seconds, UTC.
    pub cron: String,
    #[serde(default)]
    pub next_runs: Vec<String>,
}

pub async fn load_schedule(state: &State, who: Principal, a: String) -> Result<Schedule, AppError> {
    let link = state
        .store
        .read(move |c| {
            let account = accounts::find(c, &who, &a)?;
            sync_state::link(c, account.id)
        })
        .await?;
    let cron = link
        .map(|l| l.cron)
        .unwrap_or_else(|| schedule::DEFAULT_CRON.to_string());
    let sched = schedule::parse(&cron)?;
    let next_runs = schedule::next_runs(&sched, state.clock.now(), 5)
        .iter()
        .map(|t| rfc3339(t.timestamp()))
        .collect();
    Ok(Schedule { cron, next_runs })
}

pub async fn save_schedule(
    state: &State,
    who: Principal,
    a: String,
    cron: String,
) -> Result<Schedule, AppError> {
    require_sync(&who)?;
    schedule::parse(&cron)?;
    // Stored in the 6-field form, so what is shown back is what runs.
    let (w, name, c) = (who.clone(), a.clone(), schedule::normalize(&cron)?);
    let now = state.clock.unix();
    state
        .store
        .write(move |tx| {
            let account = accounts::find(tx, &w, &name)?;
            sync_state::set_cron(tx, account.id, &c)?;
            crate::store::events::record(
                tx,
                now,
                crate::store::events::NewEvent {
                    actor: &w.actor,
                    action: "sync.schedule_changed",
                    account: Some((account.id, &account.name)),
                    target: &account.name,
                    detail: json!({ "cron": c }),
                },
            )
        })
        .await?;
    load_schedule(state, who, a).await
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
    /// written, applied, duplicate or rejected.
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
            kind: h.kind.clone(),
            direction: h.direction.to_string(),
            sequence: h.sequence,
            records: h.records,
            result: h.result.clone(),
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
