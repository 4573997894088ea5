//! The users page's management forms (issue #16): change role and account, reset a
//! password (the new one is shown once, after a redirect, never put in a cookie or a URL),
//! disable and enable. Thin handlers over `service::user_admin`.

use super::accounts::CsrfForm;
use super::users::{redirect_showing, show_list};
use crate::crypto::{password, secrets};
use crate::service::{access, user_admin};
use crate::store::StoreError;
use crate::web::auth::SessionUser;
use crate::web::render;
use crate::web::shown_once::SecretKind;
use crate::web::{AppError, PageError, State};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

#[derive(Deserialize)]
struct RoleForm {
    #[serde(default)]
    csrf: String,
    role: String,
    #[serde(default)]
    account: String,
}

/// A refused change (4xx) is shown on the list page; anything else is an error page.
async fn outcome(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    result: Result<(), StoreError>,
    done: String,
) -> Result<HttpResponse, PageError> {
    match result.map_err(AppError::from) {
        Ok(()) => Ok(render::redirect_with_flash("/users", &done)),
        Err(e) if e.status.is_client_error() => {
            let status = e.status;
            show_list(req, state, user, Some(e.message), None, status).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn update(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<RoleForm>,
) -> Result<HttpResponse, PageError> {
    let cap = access::system_admin(&user.principal).map_err(AppError::from)?;
    user.check_csrf(&form.csrf)?;
    let username = path.into_inner();
    let (now, target) = (state.clock.unix(), username.clone());
    let form = form.into_inner();
    let result = state
        .store
        .write(move |tx| {
            let change = user_admin::RoleChange::parse(&form.role, &form.account)?;
            Ok(user_admin::change_role(tx, &cap, now, &target, &change)?)
        })
        .await;
    outcome(
        &req,
        &state,
        &user,
        result,
        format!("User '{username}' updated."),
    )
    .await
}

async fn reset_password(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let cap = access::system_admin(&user.principal).map_err(AppError::from)?;
    user.check_csrf(&form.csrf)?;
    let username = path.into_inner();
    let generated = secrets::random_password();
    let to_hash = generated.clone();
    let hash = web::block(move || password::hash(&to_hash)).await??;
    let (now, target) = (state.clock.unix(), username.clone());
    let result = state
        .store
        .write(move |tx| Ok(user_admin::reset_password(tx, &cap, now, &target, &hash)?))
        .await;
    match result.map_err(AppError::from) {
        Ok(()) => Ok(redirect_showing(
            &state,
            &user,
            SecretKind::PasswordReset,
            username,
            generated,
        )),
        Err(e) if e.status.is_client_error() => {
            let status = e.status;
            show_list(&req, &state, &user, Some(e.message), None, status).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn set_disabled(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    username: String,
    csrf: &str,
    disabled: bool,
) -> Result<HttpResponse, PageError> {
    let cap = access::system_admin(&user.principal).map_err(AppError::from)?;
    user.check_csrf(csrf)?;
    let (now, target) = (state.clock.unix(), username.clone());
    let result = state
        .store
        .write(move |tx| Ok(user_admin::set_disabled(tx, &cap, now, &target, disabled)?))
        .await;
    let done = if disabled {
        format!("User '{username}' disabled; their sessions have ended.")
    } else {
        format!("User '{username}' enabled.")
    };
    outcome(&req, &state, &user, result, done).await
}

async fn disable(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    set_disabled(req, state, user, path.into_inner(), &form.csrf, true).await
}

async fn enable(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    set_disabled(req, state, user, path.into_inner(), &form.csrf, false).await
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/users/{u}/update", web::post().to(update))
        .route("/users/{u}/reset-password", web::post().to(reset_password))
        .route("/users/{u}/disable", web::post().to(disable))
        .route("/users/{u}/enable", web::post().to(enable));
}
