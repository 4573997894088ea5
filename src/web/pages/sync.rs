//! The /sync overview (every account's link, the history) and the upstream's side of
//! sync: its registered satellites, their tokens, and the request-in / response-out page.
//! One account's link on a satellite is `sync/account.rs`.

use super::import_preview;
use crate::clock;
use crate::config::ServerRole;
use crate::crypto::keys::key_fingerprint;
use crate::domain::sync::{BundleKind, LinkState};
use crate::service::access;
use crate::service::satellites::{self, SatelliteToken, TokenState};
use crate::store::sync_state;
use crate::web::auth::SessionUser;
use crate::web::render::{self, path_segment, FormErrors, Layout};
use crate::web::shown_once::{no_store, shown_url, Reveal, Secret, SecretKind, ShownQuery};
use crate::web::{AppError, PageError, State};
use actix_multipart::Multipart;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

mod account;

pub(super) use account::with_errors as account_with_errors;
pub use account::Tried;

pub struct HistoryView {
    pub at: String,
    pub account: String,
    pub kind: String,
    pub direction: &'static str,
    pub sequence: i64,
    pub records: i64,
    pub result: String,
    pub duration_ms: i64,
    pub detail: String,
    pub bundle_id: String,
}

pub(super) fn history_views(rows: Vec<sync_state::History>) -> Vec<HistoryView> {
    rows.into_iter()
        .map(|h| HistoryView {
            at: clock::human(h.at),
            account: h.account.unwrap_or_default(),
            kind: h.kind.map_or("unknown", BundleKind::as_str).to_string(),
            direction: h.direction.as_str(),
            sequence: h.sequence,
            records: h.records,
            result: h.result.as_str().to_string(),
            duration_ms: h.duration_ms,
            detail: h.detail,
            bundle_id: h.bundle_id,
        })
        .collect()
}

pub struct LinkRow {
    pub account: String,
    pub url: String,
    pub state: String,
    pub mode: String,
    pub last_sync: String,
}

pub struct SatelliteRow {
    /// Where its deregistration is confirmed (None when the viewer may not deregister it).
    pub deregister_url: Option<String>,
    pub authority_id: String,
    pub account: String,
    pub local_account: String,
    pub fingerprint: String,
    pub last_sync: String,
    pub last_sequence: i64,
    pub instance_count: i64,
}

/// A satellite token as the upstream's Satellites page lists it.
pub struct TokenView {
    pub id: String,
    pub account: String,
    pub description: String,
    pub created: String,
    pub expires: String,
    pub state: &'static str,
    /// Set when the viewer may revoke it (unused or expired, and an editor of its account).
    pub revoke_url: Option<String>,
}

impl TokenView {
    fn new(t: SatelliteToken, user: &SessionUser) -> Self {
        let revocable = matches!(t.state, TokenState::Unused | TokenState::Expired)
            && user.principal.can_edit_account(t.row.account_id);
        Self {
            revoke_url: revocable.then(|| {
                format!(
                    "/sync/satellite-tokens/{}/{}/revoke",
                    path_segment(&t.row.account),
                    path_segment(&t.row.id)
                )
            }),
            id: t.row.id,
            account: t.row.account,
            description: t.row.description,
            created: clock::human(t.row.created_at),
            expires: clock::human(t.row.expires_at),
            state: t.state.as_str(),
        }
    }
}

#[derive(Template)]
#[template(path = "sync/index.html")]
struct IndexPage {
    layout: Layout,
    upstream: bool,
    links: Vec<LinkRow>,
    /// Some account here is not registered yet: the page says how.
    has_unregistered: bool,
    satellites: Vec<SatelliteRow>,
    token_accounts: Vec<String>,
    tokens: Vec<TokenView>,
    created_token: Option<(String, String, String)>,
    errors: FormErrors,
    history: Vec<HistoryView>,
    /// The new satellite token form as typed (kept when it is refused).
    typed: SatelliteTokenForm,
}

async fn index_page(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    created_token: Option<(String, String, String)>,
    errors: FormErrors,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let typed = SatelliteTokenForm::default();
    index_page_typed(req, state, user, created_token, errors, status, typed).await
}

/// The Satellites/Sync page with the new satellite token form as typed.
#[allow(clippy::too_many_arguments)]
async fn index_page_typed(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    created_token: Option<(String, String, String)>,
    errors: FormErrors,
    status: StatusCode,
    typed: SatelliteTokenForm,
) -> Result<HttpResponse, PageError> {
    let who = user.principal.clone();
    let now = state.clock.unix();
    let (visible, links, sats, history, tokens) = state
        .store
        .read(move |c| {
            let visible =
                crate::service::accounts::list(c, access::visible(&who), None, 500)?.items;
            let links = sync_state::links(c)?;
            let sats = sync_state::satellites(c, who.account_filter())?;
            let history = sync_state::history(c, who.account_filter(), None, 20)?.items;
            let tokens = satellites::visible_tokens(c, who.account_filter(), now, 50)?;
            Ok((visible, links, sats, history, tokens))
        })
        .await?;
    let links: Vec<LinkRow> = visible
        .iter()
        .map(|a| {
            let link = links.iter().find(|l| l.account_id == a.id);
            LinkRow {
                account: a.name.clone(),
                url: format!("/accounts/{}/sync", path_segment(&a.name)),
                state: link
                    .map_or(LinkState::Unregistered, |l| l.state)
                    .as_str()
                    .to_string(),
                mode: link
                    .map(|l| l.mode.as_str().to_string())
                    .unwrap_or_default(),
                last_sync: link
                    .and_then(|l| l.last_sync)
                    .map(clock::human)
                    .unwrap_or_else(|| "never".into()),
            }
        })
        .collect();
    let page = IndexPage {
        layout: Layout::new(
            req,
            user,
            "sync",
            if state.settings.role == ServerRole::Upstream {
                "Satellites"
            } else {
                "Sync"
            },
        ),
        upstream: state.settings.role == ServerRole::Upstream,
        has_unregistered: links
            .iter()
            .any(|l| l.state == LinkState::Unregistered.as_str()),
        links,
        satellites: sats
            .into_iter()
            .map(|s| SatelliteRow {
                deregister_url: user.principal.can_edit_account(s.account_id).then(|| {
                    format!(
                        "/sync/satellites/{}/{}/deregister",
                        path_segment(&s.account),
                        s.id
                    )
                }),
                fingerprint: key_fingerprint(&s.public_key),
                authority_id: s.authority_id,
                account: s.account,
                local_account: s.local_account,
                last_sync: s
                    .last_sync
                    .map(clock::human)
                    .unwrap_or_else(|| "never".into()),
                last_sequence: s.last_sequence,
                instance_count: s.instance_count,
            })
            .collect(),
        token_accounts: visible
            .iter()
            .filter(|a| user.principal.can_edit_account(a.id))
            .map(|a| a.name.clone())
            .collect(),
        tokens: tokens
            .into_iter()
            .map(|t| TokenView::new(t, user))
            .collect(),
        created_token,
        errors,
        history: history_views(history),
        typed,
    };
    Ok(render::page_with_status(req, status, &page)?)
}

async fn index(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    query: web::Query<ShownQuery>,
) -> Result<HttpResponse, PageError> {
    let mut errors = FormErrors::default();
    let created =
        match state
            .shown_once
            .reveal(&query, &user.token_hash, SecretKind::SatelliteToken)
        {
            Reveal::Nothing => None,
            Reveal::Now(s) => Some((s.label, s.value, s.detail)),
            Reveal::AlreadyShown => {
                // A refresh after the token showed: say so where a new one is made.
                errors.push(
                    "shown",
                    "That registration token was shown once already and is not kept. \
                 If you did not copy it, revoke it below and create a new one.",
                );
                None
            }
        };
    let res = index_page(&req, &state, &user, created, errors, StatusCode::OK).await?;
    Ok(no_store(res))
}

#[derive(Deserialize)]
struct SatelliteTokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    account: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    expires_in_days: String,
}

impl Default for SatelliteTokenForm {
    /// A month, the value offered until one is typed.
    fn default() -> Self {
        Self {
            csrf: String::new(),
            account: String::new(),
            description: String::new(),
            expires_in_days: "30".into(),
        }
    }
}

async fn create_satellite_token(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    form: web::Form<SatelliteTokenForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    if state.settings.role != ServerRole::Upstream {
        return Err(AppError::forbidden("Satellite tokens are made on the upstream.").into());
    }
    let form = form.into_inner();
    // Every field's error at once (the same rules as a VA token), what was typed kept.
    let mut checks = super::form_checks::Checks::default();
    checks.keep(crate::domain::names::description(&form.description));
    let days = checks.number(
        "expires_in_days",
        &form.expires_in_days,
        "Choose between 1 and 365 days.",
    );
    if let Some(d) = days {
        checks.keep(crate::domain::token::check_new(d, None, 0));
    }
    if let Err(errors) = checks.finish() {
        let status = errors.status();
        return index_page_typed(&req, &state, &user, None, errors, status, form).await;
    }
    let days = days.unwrap_or_default();
    let (who, now, name) = (
        user.principal.clone(),
        state.clock.unix(),
        form.account.clone(),
    );
    let result = state
        .store
        .write(move |tx| {
            let account = access::edit_account(tx, &who, &name)?.account;
            sync_state::create_satellite_token(tx, account.id, &form.description, days, now)
        })
        .await;
    match result.map_err(AppError::from) {
        Ok((expires, token)) => {
            // Kept in memory for the one GET that shows it (post/redirect/get).
            let kept = Secret {
                label: form.account,
                value: token,
                detail: clock::human(expires),
            };
            let id = state
                .shown_once
                .put(&user.token_hash, SecretKind::SatelliteToken, kept);
            Ok(render::redirect(&shown_url("/sync", &id)))
        }
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            let status = errors.status();
            index_page(&req, &state, &user, None, errors, status).await
        }
    }
}

/// Upstream: a request bundle in; its preview shows, and Apply downloads the response.
async fn upstream_upload(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    form: Multipart,
) -> Result<HttpResponse, PageError> {
    if !user.principal.can_sync() {
        return Err(
            AppError::forbidden("Only system admins and operators exchange bundles.").into(),
        );
    }
    match import_preview::start(&state, &user, form, "/sync".into()).await {
        Ok(to_preview) => Ok(to_preview),
        Err(e) => {
            let errors = FormErrors::from_error(upload_error(e))?;
            let status = errors.status();
            index_page(&req, &state, &user, None, errors, status).await
        }
    }
}

/// A refused upload as an error next to the file field, in words; a failure here (not
/// the file's fault) stays an error page.
pub(super) fn upload_error(mut e: AppError) -> AppError {
    if e.status.is_client_error() && e.status != StatusCode::FORBIDDEN {
        if e.code == "bundle_rejected" {
            e.message = format!(
                "This file was refused: {}. Choose the bundle file the other side gave you (a .tar.gz).",
                e.message.trim_end_matches('.')
            );
        }
        e.field = Some("bundle");
    }
    e
}
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/sync", web::get().to(index))
        .route(
            "/sync/satellite-tokens",
            web::post().to(create_satellite_token),
        )
        .route("/sync/upload", web::post().to(upstream_upload));
    account::configure(cfg);
}
