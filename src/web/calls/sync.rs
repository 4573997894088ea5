//! Sync as both the pages and the admin API run it: registering an account with its
//! upstream, exporting a request, syncing now, the schedule, admin uploads, and bundles
//! streamed back as responses. Handlers on either side call these; neither calls the
//! other's.

use crate::clock::rfc3339;
use crate::config::ServerRole;
use crate::domain::sync::{LinkMode, LinkState};
use crate::domain::{schedule, DomainError, Principal};
use crate::service::access;
use crate::store::sync_state;
use crate::sync::import::{self, Outcome};
use crate::sync::{outbound, transport, SyncError};
use crate::web::upload::save_body;
use crate::web::{download, AppError, State};
use actix_web::http::StatusCode;
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

/// Sends a bundle file as the response body, streamed in 64 KiB chunks (a bundle can be
/// far larger than memory should hold). The file's place on disk is nobody's business.
pub fn bundle_response(path: &Path) -> Result<HttpResponse, AppError> {
    let file = std::fs::File::open(path).map_err(AppError::internal)?;
    stream_file(file, path)
}

/// As `bundle_response`, and the file is deleted once open: an answer over the exchange is
/// delivered in the response (a lost one is recovered by sending the request again), so
/// outbox/ does not grow with every exchange, nor with replays of a captured request.
pub fn bundle_response_once(path: &Path) -> Result<HttpResponse, AppError> {
    let file = std::fs::File::open(path).map_err(AppError::internal)?;
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(error = %e, file = %path.display(), "cannot remove a delivered answer");
    }
    stream_file(file, path)
}

fn stream_file(mut file: std::fs::File, path: &Path) -> Result<HttpResponse, AppError> {
    let len = file.metadata().map_err(AppError::internal)?.len();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle.tar.gz".into());
    let body = download::stream_blocking(move |out| std::io::copy(&mut file, out).map(|_| ()));
    Ok(HttpResponse::Ok()
        .content_type("application/gzip")
        .insert_header(download::attachment(&name))
        .no_chunking(len)
        .streaming(body))
}

pub fn require_sync(who: &Principal) -> Result<(), AppError> {
    if who.can_sync() {
        Ok(())
    } else {
        Err(AppError::forbidden(
            "Only system admins and operators run sync.",
        ))
    }
}

pub fn require_role(state: &State, role: ServerRole, what: &str) -> Result<(), AppError> {
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

pub async fn upstream_state(
    state: &State,
    who: Principal,
    a: String,
) -> Result<UpstreamState, AppError> {
    let link = state
        .store
        .read(move |c| {
            let account = access::read_account(c, &who, &a)?.account;
            sync_state::link(c, account.id)
        })
        .await?;
    Ok(match link {
        None => UpstreamState {
            state: LinkState::Unregistered.as_str().into(),
            mode: None,
            upstream_authority_id: None,
            last_sync: None,
            last_sequence: None,
            last_acked_sequence: None,
            registration_expires_at: None,
        },
        Some(l) => UpstreamState {
            state: l.state.as_str().into(),
            mode: Some(l.mode.as_str().into()),
            upstream_authority_id: l.upstream_authority_id,
            last_sync: l.last_sync.map(rfc3339),
            last_sequence: Some(l.last_sequence),
            last_acked_sequence: Some(l.last_acked_sequence),
            registration_expires_at: l.registration_expires_at.map(rfc3339),
        },
    })
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
        .read(move |c| Ok(access::read_account(c, &w, &name)?.account))
        .await?;
    let ctx = state.sync.clone();
    // The token's shape is checked before any request is written (after the URL, which
    // says more when both are wrong).
    let token = || crate::domain::token::satellite_token(&b.token);
    let mode: LinkMode = b.mode.parse().map_err(AppError::from)?;
    match mode {
        LinkMode::Connected => {
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
        LinkMode::Disconnected => {
            let token = token()?;
            let acc = account.name.clone();
            let w = web::block(move || {
                outbound::registration_request(
                    &ctx,
                    &acc,
                    LinkMode::Disconnected,
                    &token,
                    None,
                    None,
                )
            })
            .await??;
            Ok(Err(w.path))
        }
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
        .read(move |c| Ok(access::read_account(c, &who, &a)?.account))
        .await?;
    let ctx = state.sync.clone();
    let w = web::block(move || outbound::sync_request(&ctx, &account.name, &|_| {})).await??;
    Ok(w.path)
}

pub async fn run_now(state: &State, who: Principal, a: String) -> Result<Outcome, AppError> {
    require_sync(&who)?;
    require_role(state, ServerRole::Satellite, "Sync now")?;
    let account = state
        .store
        .read(move |c| Ok(access::read_account(c, &who, &a)?.account))
        .await?;
    let ctx = state.sync.clone();
    Ok(web::block(move || transport::sync_now(&ctx, &account.name)).await??)
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
            let account = access::read_account(c, &who, &a)?.account;
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
            let account = access::read_account(tx, &w, &name)?.account;
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
