//! One account's link to its upstream, on a satellite: its page (state, schedule,
//! history), registering connected or disconnected, export, sync now, and import.

use super::super::import_preview;
use super::{history_views, upload_error, HistoryView};
use crate::clock;
use crate::config::ServerRole;
use crate::domain::sync::{LinkMode, LinkState};
use crate::store::sync_state;
use crate::web::auth::SessionUser;
use crate::web::calls::sync::{self as api, bundle_response, UpstreamRequest};
use crate::web::calls::{self, sentences};
use crate::web::render::{self, path_segment, FormErrors, Layout};
use crate::web::{AppError, PageError, State};
use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "sync/account.html")]
struct AccountPage {
    layout: Layout,
    account: String,
    base: String,
    state: String,
    mode: String,
    upstream_authority_id: String,
    upstream_account: String,
    last_sync: String,
    last_sequence: i64,
    last_acked: i64,
    registration_expires: String,
    cron: String,
    next_runs: Vec<String>,
    can_sync: bool,
    /// May switch the mode and deregister (system admins).
    is_admin: bool,
    /// The connected URL the link has (prefills the switch to connected).
    link_url: String,
    errors: FormErrors,
    problem: Option<String>,
    history: Vec<HistoryView>,
    /// What a failed registration attempt typed, shown again in its form.
    tried: Tried,
}

/// A registration form as submitted: kept when the attempt fails.
#[derive(Default, Clone)]
pub struct Tried {
    pub mode: String,
    pub url: String,
    pub token: String,
    pub ca_cert_pem: String,
}

impl Tried {
    /// A mode switch to connected, at `url`, as typed.
    pub fn switch(url: String) -> Self {
        Tried {
            mode: "switch".into(),
            url,
            ..Tried::default()
        }
    }
}

/// What a re-rendered sync page shows besides the link: a failed form's errors and what
/// it typed, or the sentence of a refusal.
#[derive(Default)]
struct Shown {
    errors: FormErrors,
    problem: Option<String>,
    tried: Tried,
}

async fn account_page(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    name: String,
    shown: Shown,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    if state.settings.role != ServerRole::Satellite {
        return Err(AppError::not_found("The upstream has no upstream of its own.").into());
    }
    let (account, link, history) =
        calls::read_account(state, &user.principal, &name, |c, cap, _| {
            let link = sync_state::link(c, cap.account.id)?;
            let history = sync_state::history(c, Some(cap.account.id), None, 20)?.items;
            Ok((cap.account.clone(), link, history))
        })
        .await?;
    let schedule = api::load_schedule(state, user.principal.clone(), name).await?;
    let page = AccountPage {
        layout: Layout::new(req, user, "sync", &format!("Sync · {}", account.name)),
        base: format!("/accounts/{}/sync", path_segment(&account.name)),
        account: account.name,
        state: link
            .as_ref()
            .map_or(LinkState::Unregistered, |l| l.state)
            .as_str()
            .to_string(),
        mode: link
            .as_ref()
            .map(|l| l.mode.as_str().to_string())
            .unwrap_or_default(),
        upstream_authority_id: link
            .as_ref()
            .and_then(|l| l.upstream_authority_id.clone())
            .unwrap_or_default(),
        upstream_account: link
            .as_ref()
            .and_then(|l| l.upstream_account.clone())
            .unwrap_or_default(),
        last_sync: link
            .as_ref()
            .and_then(|l| l.last_sync)
            .map(clock::human)
            .unwrap_or_else(|| "never".into()),
        last_sequence: link.as_ref().map_or(0, |l| l.last_sequence),
        last_acked: link.as_ref().map_or(0, |l| l.last_acked_sequence),
        registration_expires: link
            .as_ref()
            .and_then(|l| l.registration_expires_at)
            .map(clock::human)
            .unwrap_or_default(),
        cron: schedule.cron,
        next_runs: schedule
            .next_runs
            .iter()
            .map(|t| t.replace('T', " ").replace('Z', " UTC"))
            .collect(),
        can_sync: user.principal.can_sync(),
        is_admin: user.principal.is_system_admin(),
        link_url: link
            .as_ref()
            .and_then(|l| l.url.clone())
            .unwrap_or_default(),
        errors: shown.errors,
        problem: shown.problem,
        history: history_views(history),
        tried: shown.tried,
    };
    Ok(render::page_with_status(req, status, &page)?)
}

async fn account(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    account_page(
        &req,
        &state,
        &user,
        path.into_inner(),
        Shown::default(),
        StatusCode::OK,
    )
    .await
}

/// The page again with a failed form's errors next to its fields and what it typed.
pub async fn with_errors(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    name: String,
    errors: FormErrors,
    tried: Tried,
) -> Result<HttpResponse, PageError> {
    let status = errors.status();
    let shown = Shown {
        errors,
        tried,
        ..Shown::default()
    };
    account_page(req, state, user, name, shown, status).await
}

/// Shows a failed action on the account's sync page.
async fn failed(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    name: String,
    e: AppError,
    tried: Tried,
) -> Result<HttpResponse, PageError> {
    if e.field.is_some() {
        let errors = FormErrors::from_error(e)?;
        return with_errors(req, state, user, name, errors, tried).await;
    }
    if e.status.is_server_error() && e.status != StatusCode::BAD_GATEWAY {
        return Err(e.into());
    }
    let status = e.status;
    let shown = Shown {
        problem: Some(sentences::sentence(&e.message)),
        tried,
        ..Shown::default()
    };
    account_page(req, state, user, name, shown, status).await
}

#[derive(Deserialize)]
struct RegisterForm {
    csrf: String,
    mode: String,
    token: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    ca_cert_pem: String,
}

async fn register(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<RegisterForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let (name, f) = (path.into_inner(), form.into_inner());
    let tried = Tried {
        mode: f.mode.clone(),
        url: f.url.clone(),
        token: f.token.clone(),
        ca_cert_pem: f.ca_cert_pem.clone(),
    };
    // A connected registration: the address and the token's shape at once, before
    // anything is written.
    if matches!(f.mode.parse(), Ok(LinkMode::Connected))
        && state.settings.role == ServerRole::Satellite
    {
        if let Err(errors) = super::super::form_checks::connected(&f.url, &f.token) {
            return with_errors(&req, &state, &user, name, errors, tried).await;
        }
    }
    // Registering again keeps the CA certificate the link already trusts unless a new one
    // is given.
    let ca_cert_pem = match Some(f.ca_cert_pem).filter(|p| !p.trim().is_empty()) {
        Some(pem) => Some(pem),
        None => {
            calls::read_account(&state, &user.principal, &name, |c, cap, _| {
                Ok(sync_state::link(c, cap.account.id)?.and_then(|l| l.ca_cert_pem))
            })
            .await?
        }
    };
    let body = UpstreamRequest {
        mode: f.mode,
        token: f.token,
        url: Some(f.url.trim().to_string()).filter(|u| !u.is_empty()),
        ca_cert_pem,
    };
    match api::register(&state, user.principal.clone(), name.clone(), body).await {
        Ok(Ok(_)) => Ok(render::redirect_with_flash(
            &format!("/accounts/{}/sync", path_segment(&name)),
            &format!(
                "Registered account {name} with the upstream; it syncs connected on its schedule."
            ),
        )),
        Ok(Err(bundle)) => Ok(bundle_response(&bundle)?),
        // The upstream refused the token: say so in words next to it (the previous
        // registration, if any, is still in place).
        Err(e) if e.field.is_none() && e.code == "upstream_refused" => {
            let errors = FormErrors::at("token", sentences::sentence(&e.message), e.status);
            with_errors(&req, &state, &user, name, errors, tried).await
        }
        Err(e) => failed(&req, &state, &user, name, e, tried).await,
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn export(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let name = path.into_inner();
    match api::export(&state, user.principal.clone(), name.clone()).await {
        Ok(p) => Ok(bundle_response(&p)?),
        Err(e) => failed(&req, &state, &user, name, e, Tried::default()).await,
    }
}

async fn now(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let name = path.into_inner();
    match api::run_now(&state, user.principal.clone(), name.clone()).await {
        Ok(o) => Ok(render::redirect_with_flash(
            &format!("/accounts/{}/sync", path_segment(&name)),
            &sentences::synced(&name, &o),
        )),
        Err(e) => failed(&req, &state, &user, name, e, Tried::default()).await,
    }
}

#[derive(Deserialize)]
struct ScheduleForm {
    csrf: String,
    cron: String,
}

async fn schedule(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<ScheduleForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let (name, f) = (path.into_inner(), form.into_inner());
    match api::save_schedule(&state, user.principal.clone(), name.clone(), f.cron).await {
        Ok(_) => Ok(render::redirect_with_flash(
            &format!("/accounts/{}/sync", path_segment(&name)),
            "Schedule saved.",
        )),
        Err(e) => failed(&req, &state, &user, name, e, Tried::default()).await,
    }
}

/// An upload shows its preview first (import_preview.rs); Apply imports it.
async fn import(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: Multipart,
) -> Result<HttpResponse, PageError> {
    let name = path.into_inner();
    if !user.principal.can_sync() {
        return Err(AppError::forbidden("Only system admins and operators import bundles.").into());
    }
    let back = import_preview::account_back(&name);
    match import_preview::start(&state, &user, form, back).await {
        Ok(to_preview) => Ok(to_preview),
        Err(e) => failed(&req, &state, &user, name, upload_error(e), Tried::default()).await,
    }
}

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/accounts/{a}/sync", web::get().to(account))
        .route("/accounts/{a}/sync/register", web::post().to(register))
        .route("/accounts/{a}/sync/export", web::post().to(export))
        .route("/accounts/{a}/sync/now", web::post().to(now))
        .route("/accounts/{a}/sync/schedule", web::post().to(schedule))
        .route("/accounts/{a}/sync/import", web::post().to(import));
}
