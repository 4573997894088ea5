//! The VA page's "Change" and "Remove" of a license (upstream only): post/redirect/get on
//! success, the page again with the reason on refusal.

use super::virtual_accounts::{render_page, Extra};
use crate::config::ServerRole;
use crate::service::access::{self, EditAccount};
use crate::service::licenses::{self, LicensePatch};
use crate::service::ServiceError;
use crate::store::accounts::{self, VirtualAccount};
use crate::web::auth::SessionUser;
use crate::web::render::{self, path_segment};
use crate::web::{AppError, PageError, State};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDate;
use rusqlite::Connection;
use serde::Deserialize;

#[derive(Deserialize)]
struct EditForm {
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    quantity: String,
    #[serde(default)]
    rank: String,
}

#[derive(Deserialize)]
struct CsrfOnly {
    csrf: String,
}

fn va_url(a: &str, va: &str) -> String {
    format!(
        "/accounts/{}/virtual-accounts/{}",
        path_segment(a),
        path_segment(va)
    )
}

fn whole(field: &'static str, label: &str, raw: &str) -> Result<Option<i64>, AppError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    raw.parse().map(Some).map_err(|_| {
        let mut e = AppError::unprocessable(
            "invalid_number",
            format!("{label} is a whole number, like 10."),
        );
        e.field = Some(field);
        e
    })
}

/// Re-renders the VA page with the reason a change was refused.
async fn refused(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    names: (String, String),
    e: AppError,
) -> Result<HttpResponse, PageError> {
    if e.status.is_server_error() {
        return Err(e.into());
    }
    let status = e.status;
    let x = Extra {
        problem: Some(e.message),
        ..Extra::default()
    };
    render_page(req, state, user, names, x, status).await
}

async fn edit(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<(String, String, String)>,
    form: web::Form<EditForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let (a, va, tag) = path.into_inner();
    let names = (a.clone(), va.clone());
    let parsed = (|| -> Result<LicensePatch, AppError> {
        if state.settings.role != ServerRole::Upstream {
            return Err(AppError::forbidden(
                "Licenses are changed on the upstream and arrive here by sync.",
            ));
        }
        Ok(LicensePatch {
            name: Some(form.name.clone()).filter(|n| !n.trim().is_empty()),
            quantity: whole("quantity", "The quantity", &form.quantity)?,
            rank: whole("rank", "The rank", &form.rank)?,
            ..LicensePatch::default()
        })
    })();
    let patch = match parsed {
        Ok(p) => p,
        Err(e) => return refused(&req, &state, &user, names, e).await,
    };
    change(
        &req,
        &state,
        &user,
        (a, va, tag),
        move |tx, cap, now, today, va, tag| licenses::update(tx, cap, now, today, va, tag, patch),
        |spec| {
            format!(
                "{} now has {} units (rank {}).",
                spec.name, spec.quantity, spec.rank
            )
        },
    )
    .await
}

async fn remove(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<(String, String, String)>,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let (a, va, tag) = path.into_inner();
    let names = (a.clone(), va.clone());
    if state.settings.role != ServerRole::Upstream {
        let e = AppError::forbidden("Licenses are removed on the upstream.");
        return refused(&req, &state, &user, names, e).await;
    }
    let said = format!("License {tag} removed.");
    change(&req, &state, &user, (a, va, tag), licenses::remove, |()| {
        said
    })
    .await
}

/// Runs one change of a VA's license in one transaction; answers with a redirect to the
/// VA page and `said(outcome)` as its flash, or the VA page again with the reason.
async fn change<T, F>(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    (a, va, tag): (String, String, String),
    op: F,
    said: impl FnOnce(T) -> String,
) -> Result<HttpResponse, PageError>
where
    T: Send + 'static,
    F: FnOnce(
            &Connection,
            &EditAccount,
            i64,
            NaiveDate,
            &VirtualAccount,
            &str,
        ) -> Result<T, ServiceError>
        + Send
        + 'static,
{
    let (who, now, today) = (
        user.principal.clone(),
        state.clock.unix(),
        state.clock.now().date_naive(),
    );
    let (a2, va2) = (a.clone(), va.clone());
    let result = state
        .store
        .write(move |tx| {
            let cap = access::edit_account(tx, &who, &a2)?;
            let va = accounts::find_va(tx, &cap.account, &va2)?;
            Ok(op(tx, &cap, now, today, &va, &tag)?)
        })
        .await;
    match result {
        Ok(outcome) => Ok(render::redirect_with_flash(
            &va_url(&a, &va),
            &said(outcome),
        )),
        Err(e) => refused(req, state, user, (a, va), e.into()).await,
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let one = "/accounts/{a}/virtual-accounts/{va}/licenses/{tag}";
    cfg.route(&format!("{one}/edit"), web::post().to(edit))
        .route(&format!("{one}/remove"), web::post().to(remove));
}
