//! Log in and out. Failed attempts back off per (address, username) pair (web/throttle.rs)
//! and are kept in the event log; the route is also rate limited per address.

use crate::crypto::{password, secrets};
use crate::store::sessions;
use crate::web::auth::{cookie, login_csrf_cookie, safe_next, session_cookie, SessionUser};
use crate::web::render::{self, Layout};
use crate::web::{AppError, PageError, State};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    csrf: String,
    next: String,
    username: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

fn login_page(
    req: &HttpRequest,
    status: StatusCode,
    next: String,
    username: String,
    error: Option<String>,
) -> Result<HttpResponse, AppError> {
    // Double-submit token: the form's hidden field must match this cookie.
    let csrf = secrets::random_secret(24);
    let page = LoginPage {
        layout: Layout::anonymous("Log in"),
        csrf: csrf.clone(),
        next,
        username,
        error,
    };
    let mut res = render::page_with_status(req, status, &page)?;
    res.add_cookie(&cookie(login_csrf_cookie(), csrf, 3600))
        .map_err(AppError::internal)?;
    Ok(res)
}

async fn show(req: HttpRequest, q: web::Query<NextQuery>) -> Result<HttpResponse, PageError> {
    Ok(login_page(
        &req,
        StatusCode::OK,
        safe_next(q.next.as_deref()),
        String::new(),
        None,
    )?)
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    csrf: String,
    #[serde(default)]
    next: String,
}

async fn submit(
    req: HttpRequest,
    state: State,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let next = safe_next(Some(&form.next));
    let cookie_csrf = req
        .cookie(login_csrf_cookie())
        .map(|c| c.value().to_string());
    if !cookie_csrf.is_some_and(|c| secrets::constant_time_eq(&c, &form.csrf)) {
        return Ok(login_page(
            &req,
            StatusCode::FORBIDDEN,
            next,
            form.username,
            Some("The login form expired. Please try again.".into()),
        )?);
    }
    let username = form.username.trim().to_lowercase();
    let address = crate::web::throttle::peer_address(&req);
    let now = state.clock.unix();
    if let Err(wait) = state.login_throttle.check(&username, &address, now) {
        let mut res = login_page(
            &req,
            StatusCode::TOO_MANY_REQUESTS,
            next,
            form.username,
            Some(format!(
                "Too many failed attempts from here. Try again in {wait} second(s)."
            )),
        )?;
        res.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from(wait),
        );
        return Ok(res);
    }
    let lookup = username.clone();
    let user = state
        .store
        // A disabled user is refused exactly like an unknown one.
        .read(move |c| crate::store::user_admin::find_enabled(c, &lookup))
        .await?;
    let stored = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| password::dummy_hash().to_string());
    let given = form.password;
    let matches = web::block(move || password::verify(&given, &stored)).await?;
    let user = match user {
        Some(u) if matches => u,
        _ => {
            let out = state
                .login_throttle
                .record_failure(&username, &address, now);
            tracing::info!(%username, %address, failures = out.failures, wait_seconds = out.wait_seconds, "login failed");
            let (who, from) = (username.clone(), address.clone());
            state
                .store
                .write(move |tx| {
                    crate::service::sign_in::record_failure(
                        tx,
                        now,
                        &who,
                        &from,
                        out.failures,
                        out.wait_seconds,
                    )
                    .map_err(Into::into)
                })
                .await?;
            return Ok(login_page(
                &req,
                StatusCode::UNAUTHORIZED,
                next,
                form.username,
                Some("Wrong username or password.".into()),
            )?);
        }
    };
    state.login_throttle.record_success(&username, &address);
    let token = secrets::random_secret(32);
    let token_hash = secrets::secret_hash(&token);
    let csrf = secrets::random_secret(24);
    let user_id = user.id;
    let idle = state.settings.session_idle_minutes.max(1) * 60;
    state
        .store
        .write({
            let (who, from) = (user.username.clone(), address.clone());
            move |tx| {
                sessions::create(tx, user_id, &token_hash, &csrf, now, idle)?;
                crate::service::sign_in::record_success(tx, now, &who, &from).map_err(Into::into)
            }
        })
        .await?;
    tracing::info!(username = %user.username, "logged in");
    let to = if user.must_change_password {
        "/account/password".to_string()
    } else {
        next
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, to))
        .cookie(cookie(
            session_cookie(),
            token,
            sessions::SESSION_TTL_SECONDS,
        ))
        .cookie(cookie(login_csrf_cookie(), String::new(), 0))
        .finish())
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    state: State,
    user: SessionUser,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let hash = user.token_hash.clone();
    state
        .store
        .write(move |tx| sessions::delete(tx, &hash))
        .await?;
    let mut res = render::redirect("/login");
    res.add_cookie(&cookie(session_cookie(), String::new(), 0))
        .map_err(AppError::internal)?;
    Ok(res)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(show))
        .route("/login", web::post().to(submit))
        .route("/logout", web::post().to(logout));
}
