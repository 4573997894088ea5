//! Who is calling: a person with a session cookie (pages) or a machine client with a
//! bearer token (`/api/v1`). Both become a `domain::Principal`.

use super::{AppError, PageError, State};
use crate::crypto::secrets;
use crate::domain::Principal;
use crate::store::{api_clients, sessions, users::User};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{http::header, FromRequest, HttpRequest};
use std::future::Future;
use std::pin::Pin;

pub const SESSION_COOKIE: &str = "satellite_session";
pub const LOGIN_CSRF_COOKIE: &str = "satellite_login_csrf";

type BoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Builds a cookie with the flags every satellite cookie has.
pub fn cookie(name: &'static str, value: String, max_age_seconds: i64) -> Cookie<'static> {
    Cookie::build(name, value)
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .max_age(actix_web::cookie::time::Duration::seconds(max_age_seconds))
        .finish()
}

/// A signed-in person.
pub struct SessionUser {
    pub user: User,
    pub principal: Principal,
    pub csrf: String,
    pub token_hash: String,
    /// For the badge every page shows.
    pub alert_count: usize,
}

impl SessionUser {
    /// Every state-changing form carries the session's CSRF token.
    pub fn check_csrf(&self, submitted: &str) -> Result<(), AppError> {
        if secrets::constant_time_eq(&self.csrf, submitted) {
            Ok(())
        } else {
            Err(AppError::forbidden(
                "The form has expired or did not come from this site. Reload the page and try again.",
            ))
        }
    }
}

fn state_of(req: &HttpRequest) -> Result<State, AppError> {
    req.app_data::<State>()
        .cloned()
        .ok_or_else(|| AppError::internal("application state missing"))
}

impl FromRequest for SessionUser {
    type Error = PageError;
    type Future = BoxFuture<Result<Self, PageError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = state_of(req);
        let token = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
        let path = req.path().to_string();
        Box::pin(async move {
            let state = state?;
            let login = || PageError::Redirect(format!("/login?next={}", encode_next(&path)));
            let token = token.ok_or_else(login)?;
            let hash = secrets::secret_hash(&token);
            let now = state.clock.unix();
            let session = state
                .store
                .read(move |c| sessions::find(c, &hash, now))
                .await?
                .ok_or_else(login)?;
            if session.user.must_change_password && path != "/account/password" && path != "/logout"
            {
                return Err(PageError::Redirect("/account/password".into()));
            }
            let principal = session.user.principal();
            let alert_count = crate::web::api::alerts::load(&state, principal.clone())
                .await
                .map(|a| a.len())
                .unwrap_or(0);
            Ok(SessionUser {
                principal,
                user: session.user,
                csrf: session.csrf_token,
                token_hash: session.token_hash,
                alert_count,
            })
        })
    }
}

/// Keeps `next` a local path so the login redirect cannot send people elsewhere.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_string(),
        _ => "/".to_string(),
    }
}

fn encode_next(path: &str) -> String {
    path.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A machine client authenticated by `Authorization: Bearer <token>`.
pub struct ApiCaller(pub Principal);

impl FromRequest for ApiCaller {
    type Error = AppError;
    type Future = BoxFuture<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = state_of(req);
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(|t| t.trim().to_string());
        Box::pin(async move {
            let state = state?;
            let token = token.filter(|t| !t.is_empty()).ok_or_else(|| {
                AppError::unauthorized(
                    "unauthorized",
                    "Send Authorization: Bearer <token> from POST /oauth/token.",
                )
            })?;
            let now = state.clock.unix();
            state
                .store
                .read(move |c| api_clients::principal_for_token(c, &token, now))
                .await?
                .map(ApiCaller)
                .ok_or_else(|| {
                    AppError::unauthorized(
                        "unauthorized",
                        "The bearer token is invalid or expired.",
                    )
                })
        })
    }
}
