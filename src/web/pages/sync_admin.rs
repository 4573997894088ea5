//! Changing sync links from the pages. On the upstream: revoke an unused satellite token,
//! deregister a satellite (after a confirmation page that says what happens). On a
//! satellite: switch a registered link's mode, deregister it (confirmed likewise).
//! Every change answers with a redirect (post/redirect/get) and a sentence.

use crate::config::ServerRole;
use crate::crypto::keys::key_fingerprint;
use crate::domain::Principal;
use crate::service::sync_link::{self, Mode, ModeChange};
use crate::service::{access, satellites};
use crate::store;
use crate::store::sync_state::Satellite;
use crate::web::auth::SessionUser;
use crate::web::calls::sync::require_role;
use crate::web::render::{self, path_segment, FormErrors, Layout};
use crate::web::{AppError, PageError, State};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use rusqlite::Connection;
use serde::Deserialize;

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

/// Which server a change belongs on, and what it is called when refused on the other.
type Side = (ServerRole, &'static str);
const SATELLITE_TOKENS: Side = (ServerRole::Upstream, "Satellite tokens");
const SATELLITES: Side = (ServerRole::Upstream, "Satellite administration");
const LINK: Side = (ServerRole::Satellite, "Changing the link to an upstream");

/// A confirmation step: what will happen, in a list, and one button.
#[derive(Template)]
#[template(path = "sync/confirm.html")]
struct ConfirmPage {
    layout: Layout,
    heading: String,
    consequences: Vec<String>,
    action: String,
    button: String,
    cancel: String,
}

/// What a confirmation page says; `confirm` adds the layout.
struct Confirm {
    title: &'static str,
    heading: String,
    consequences: Vec<String>,
    action: String,
    button: &'static str,
    cancel: String,
}

/// The GET of a confirm-then-act pair: the server's role, one read, and the page that
/// says what the POST will do.
async fn confirm<T, L>(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    (role, what): Side,
    load: L,
    say: impl FnOnce(T) -> Result<Confirm, AppError>,
) -> Result<HttpResponse, PageError>
where
    T: Send + 'static,
    L: FnOnce(&Connection, &Principal) -> store::Result<T> + Send + 'static,
{
    require_role(state, role, what)?;
    let who = user.principal.clone();
    let loaded = state.store.read(move |c| load(c, &who)).await?;
    let c = say(loaded)?;
    let page = ConfirmPage {
        layout: Layout::new(req, user, "sync", c.title),
        heading: c.heading,
        consequences: c.consequences,
        action: c.action,
        button: c.button.into(),
        cancel: c.cancel,
    };
    Ok(render::page(req, &page)?)
}

/// The POST of a confirmed change (and of the one-click token revoke): the CSRF check,
/// the server's role, one write, and a redirect to `done`'s page with its sentence.
async fn act<T, W>(
    state: &State,
    user: &SessionUser,
    csrf: &str,
    (role, what): Side,
    write: W,
    done: impl FnOnce(T) -> (String, String),
) -> Result<HttpResponse, PageError>
where
    T: Send + 'static,
    W: FnOnce(&Connection, &Principal, i64) -> store::Result<T> + Send + 'static,
{
    user.check_csrf(csrf)?;
    require_role(state, role, what)?;
    let (who, now) = (user.principal.clone(), state.clock.unix());
    let changed = state.store.write(move |tx| write(tx, &who, now)).await?;
    let (to, said) = done(changed);
    Ok(render::redirect_with_flash(&to, &said))
}

async fn revoke_token(
    state: State,
    user: SessionUser,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let (a, id) = path.into_inner();
    let write = move |tx: &Connection, who: &Principal, now| {
        let cap = access::edit_account(tx, who, &a)?;
        Ok(satellites::revoke_token(tx, &cap, now, &id)?)
    };
    act(&state, &user, &form.csrf, SATELLITE_TOKENS, write, |t| {
        (
            "/sync#satellite-tokens".into(),
            format!(
                "Revoked satellite token {} of {}: no satellite can register with it now.",
                t.row.id, t.row.account
            ),
        )
    })
    .await
}

fn satellite_path(a: &str, id: i64) -> String {
    format!("/sync/satellites/{}/{id}/deregister", path_segment(a))
}

async fn confirm_satellite(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let (a, id) = path.into_inner();
    let load = move |c: &Connection, who: &Principal| {
        let cap = access::edit_account(c, who, &a)?;
        let id = satellites::parse_satellite_id(&id)?;
        crate::store::satellite_admin::satellite(c, cap.account.id, id)
    };
    confirm(&req, &state, &user, SATELLITES, load, |sat| {
        Ok(satellite_consequences(sat))
    })
    .await
}

/// What deregistering a satellite does, as its confirmation page says it.
fn satellite_consequences(sat: Satellite) -> Confirm {
    Confirm {
        title: "Deregister a satellite",
        heading: format!(
            "Deregister satellite {} (its account '{}')?",
            sat.authority_id, sat.local_account
        ),
        consequences: vec![
            format!(
                "The {} product instances it reported stop counting in {}'s license pools at once.",
                sat.instance_count, sat.account
            ),
            "Its sync requests, connected or carried by hand, are refused from now on, saying it was deregistered.".into(),
            "Its own products keep working on the satellite; it keeps the licenses it synced last.".into(),
            "To bring it back, create a new satellite token and register it again.".into(),
            format!("Its key: {}.", key_fingerprint(&sat.public_key)),
        ],
        action: satellite_path(&sat.account, sat.id),
        button: "Deregister the satellite",
        cancel: "/sync".into(),
    }
}

async fn revoke_satellite(
    state: State,
    user: SessionUser,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let (a, id) = path.into_inner();
    let write = move |tx: &Connection, who: &Principal, now| {
        let cap = access::edit_account(tx, who, &a)?;
        let id = satellites::parse_satellite_id(&id)?;
        Ok(satellites::revoke_satellite(tx, &cap, now, id)?)
    };
    act(&state, &user, &form.csrf, SATELLITES, write, |sat| {
        (
            "/sync".into(),
            format!(
                "Deregistered satellite {} (its account '{}') from {}: its {} instances no longer count, and its bundles are refused.",
                sat.authority_id, sat.local_account, sat.account, sat.instance_count
            ),
        )
    })
    .await
}

fn sync_url(a: &str) -> String {
    format!("/accounts/{}/sync", path_segment(a))
}

#[derive(Deserialize)]
struct ModeForm {
    csrf: String,
    mode: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    ca_cert_pem: String,
}

async fn switch_mode(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<ModeForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    require_role(&state, LINK.0, LINK.1)?;
    let (a, f) = (path.into_inner(), form.into_inner());
    let (who, now, name) = (user.principal.clone(), state.clock.unix(), a.clone());
    let tried_url = f.url.clone();
    let result = state
        .store
        .write(move |tx| {
            let admin = access::system_admin(&who)?;
            let cap = access::read_account(tx, &who, &name)?;
            let change = ModeChange::parse(&f.mode, &f.url, &f.ca_cert_pem)?;
            Ok(sync_link::switch_mode(tx, &admin, &cap, now, change)?)
        })
        .await
        .map_err(AppError::from);
    match result {
        Ok(link) => {
            let what = if link.mode == Mode::Connected {
                format!(
                    "Account {a} now syncs connected, with {} on its schedule. Use \"Sync now\" to check the link.",
                    link.url.unwrap_or_default()
                )
            } else {
                format!(
                    "Account {a} now syncs disconnected: download sync requests here and carry them to the upstream."
                )
            };
            Ok(render::redirect_with_flash(&sync_url(&a), &what))
        }
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            let tried = super::sync::Tried::switch(tried_url);
            super::sync::account_with_errors(&req, &state, &user, a, errors, tried).await
        }
    }
}

async fn confirm_deregister(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let a = path.into_inner();
    let load = move |c: &Connection, who: &Principal| {
        access::system_admin(who)?;
        let cap = access::read_account(c, who, &a)?;
        let link = crate::store::sync_state::link(c, cap.account.id)?;
        Ok((cap.account.name, link))
    };
    confirm(&req, &state, &user, LINK, load, |(account, link)| {
        let Some(link) = link else {
            return Err(AppError::new(
                StatusCode::CONFLICT,
                "not_registered",
                format!("Account '{account}' is not registered with an upstream."),
            ));
        };
        Ok(Confirm {
            title: "Deregister from the upstream",
            heading: format!("Deregister account {account} from its upstream?"),
            consequences: vec![
                format!(
                    "This satellite stops syncing {account} ({} mode): no more scheduled or manual syncs, no sync requests to download.",
                    link.mode.as_str()
                ),
                "The virtual accounts and licenses that came from the upstream stay here as last synced (read-only), and products keep reporting against them.".into(),
                "The upstream still lists this satellite until its admin deregisters it there; ask them to, so the instances it reported last stop counting there.".into(),
                "To sync again, register with a new satellite token from the upstream.".into(),
            ],
            action: format!("{}/deregister", sync_url(&account)),
            button: "Deregister",
            cancel: sync_url(&account),
        })
    })
    .await
}

async fn deregister(
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let a = path.into_inner();
    let name = a.clone();
    let write = move |tx: &Connection, who: &Principal, now| {
        let admin = access::system_admin(who)?;
        let cap = access::read_account(tx, who, &name)?;
        Ok(sync_link::deregister(tx, &admin, &cap, now)?)
    };
    act(&state, &user, &form.csrf, LINK, write, |_| {
        (
            sync_url(&a),
            format!("Account {a} is no longer registered with an upstream. Its synced licenses stay as they were."),
        )
    })
    .await
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/sync/satellite-tokens/{a}/{id}/revoke",
        web::post().to(revoke_token),
    )
    .route(
        "/sync/satellites/{a}/{id}/deregister",
        web::get().to(confirm_satellite),
    )
    .route(
        "/sync/satellites/{a}/{id}/deregister",
        web::post().to(revoke_satellite),
    )
    .route("/accounts/{a}/sync/mode", web::post().to(switch_mode))
    .route(
        "/accounts/{a}/sync/deregister",
        web::get().to(confirm_deregister),
    )
    .route("/accounts/{a}/sync/deregister", web::post().to(deregister));
}
