//! Who is calling: a person with a session cookie (pages) or a machine client with a
//! bearer token (`/api/v1`). Both become a `domain::Principal`.

use super::{AppError, PageError, State};
use crate::crypto::secrets;
use crate::domain::Principal;
use crate::store::{api_clients, sessions, users::User};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::{http::header, FromRequest, HttpMessage, HttpRequest};
use std::future::Future;
use std::pin::Pin;

/// Cookie names without the per-server suffix (used before `init_cookie_names`).
const SESSION_BASE: &str = "satellite_session";
const LOGIN_CSRF_BASE: &str = "satellite_login_csrf";
const FLASH_BASE: &str = "satellite_flash";

/// Browsers key cookies by host, not port, so an upstream and a satellite on one host
/// would overwrite each other's cookies: each name carries a suffix derived from the
/// authority id (CONTRACT section 8). One server per process, so set once at start.
struct CookieNames {
    session: String,
    login_csrf: String,
    flash: String,
}

static COOKIE_NAMES: std::sync::OnceLock<CookieNames> = std::sync::OnceLock::new();

/// The suffix for an authority id: the first 12 hex digits of its SHA-256.
pub fn cookie_suffix(authority_id: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(authority_id.as_bytes());
    hex::encode(&digest[..6])
}

/// Fixes this process's cookie names; later calls keep the first names.
pub fn init_cookie_names(authority_id: &str) {
    let suffix = cookie_suffix(authority_id);
    let _ = COOKIE_NAMES.set(CookieNames {
        session: format!("{SESSION_BASE}_{suffix}"),
        login_csrf: format!("{LOGIN_CSRF_BASE}_{suffix}"),
        flash: format!("{FLASH_BASE}_{suffix}"),
    });
}

pub fn session_cookie() -> &'static str {
    COOKIE_NAMES
        .get()
        .map_or(SESSION_BASE, |n| n.session.as_str())
}

pub fn login_csrf_cookie() -> &'static str {
    COOKIE_NAMES
        .get()
        .map_or(LOGIN_CSRF_BASE, |n| n.login_csrf.as_str())
}

pub fn flash_cookie() -> &'static str {
    COOKIE_NAMES.get().map_or(FLASH_BASE, |n| n.flash.as_str())
}

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
        let token = req.cookie(session_cookie()).map(|c| c.value().to_string());
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
            // Idle timeout: each use moves the deadline out, written at most once a minute.
            let idle = state.settings.session_idle_minutes.max(1) * 60;
            if session.expires_at - now < idle - 60 {
                let hash = session.token_hash.clone();
                state
                    .store
                    .write(move |tx| sessions::touch(tx, &hash, now, idle))
                    .await?;
            }
            if session.user.must_change_password && path != "/account/password" && path != "/logout"
            {
                return Err(PageError::Redirect("/account/password".into()));
            }
            let principal = crate::service::access::user_principal(&session.user);
            let alert_count = state
                .alert_badge
                .count(
                    &state.store,
                    &principal,
                    state.clock.unix(),
                    state.clock.now().date_naive(),
                    state.settings.sync_overdue_days,
                )
                .await;
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

/// Keeps `next` a local path so the login redirect cannot send people elsewhere: anything
/// but a same-site absolute path becomes `/`.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        // Names may hold spaces; a Location header carries them encoded.
        Some(n) if is_safe_next(n) => n.replace(' ', "%20"),
        _ => "/".to_string(),
    }
}

/// Longest `next` kept; a real page path is far shorter.
const NEXT_MAX: usize = 2048;

/// A same-site absolute path: `/` then not `/` nor `\`; visible ASCII only (no control
/// characters, no spaces: browsers drop tabs and newlines, turning `/\t/evil` into
/// `//evil`); no backslash anywhere; and no percent-encoded control character, slash or
/// backslash that a decoding hop could turn into one of those.
pub fn is_safe_next(n: &str) -> bool {
    let b = n.as_bytes();
    if b.is_empty() || b.len() > NEXT_MAX || b[0] != b'/' {
        return false;
    }
    if matches!(b.get(1), Some(b'/') | Some(b'\\')) {
        return false;
    }
    if !b.iter().all(|c| (0x20..=0x7e).contains(c) && *c != b'\\') {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let decoded = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match decoded {
                Some(c) if !(0x20..0x7f).contains(&c) || c == b'\\' || c == b'/' || c == b'%' => {
                    return false
                }
                Some(_) => i += 3,
                None => return false,
            }
        } else {
            i += 1;
        }
    }
    true
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

fn bearer_token(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

/// Resolves a bearer token to its principal, or the contract's 401.
async fn principal_for(state: &State, token: Option<String>) -> Result<Principal, AppError> {
    let token = token.ok_or_else(|| {
        AppError::unauthorized(
            "unauthorized",
            "Send Authorization: Bearer <token> from POST /oauth/token.",
        )
    })?;
    let now = state.clock.unix();
    state
        .store
        .read(move |c| api_clients::client_for_token(c, &token, now))
        .await?
        .map(|client| crate::service::access::client_principal(&client))
        .ok_or_else(|| {
            AppError::unauthorized("unauthorized", "The bearer token is invalid or expired.")
        })
}

/// Middleware: every `/api/v1` call proves its bearer token before any extractor reads
/// the body, so `Bearer garbage` with a bad body is a 401, never a 400. The principal is
/// kept in the request for `ApiCaller`.
pub async fn bearer_first(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    if !req.path().starts_with("/api/v1/") {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let state = match state_of(req.request()) {
        Ok(s) => s,
        Err(e) => return Ok(req.error_response(e)),
    };
    match principal_for(&state, bearer_token(req.request())).await {
        Ok(principal) => {
            req.extensions_mut().insert(ApiCaller(principal));
            Ok(next.call(req).await?.map_into_boxed_body())
        }
        Err(e) => Ok(req.error_response(e)),
    }
}

impl FromRequest for ApiCaller {
    type Error = AppError;
    type Future = BoxFuture<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Normally `bearer_first` has checked the token already.
        if let Some(ApiCaller(p)) = req.extensions().get::<ApiCaller>() {
            let p = p.clone();
            return Box::pin(async move { Ok(ApiCaller(p)) });
        }
        let state = state_of(req);
        let token = bearer_token(req);
        Box::pin(async move { principal_for(&state?, token).await.map(ApiCaller) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn next_accepts_local_paths_only() {
        for ok in ["/", "/accounts/Acme", "/instances?q=a&after=3", "/a%20b"] {
            assert!(is_safe_next(ok), "{ok}");
        }
        for bad in [
            "",
            "//evil.example/",
            "/\\evil.example",
            "/\t/evil.example/",
            "/\n",
            "/\r/x",
            "\t//evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "evil.example",
            "/%2F%2Fevil.example",
            "/%5Cevil.example",
            "/%09/evil.example",
            "/%0d%0aSet-Cookie:x",
            "/%",
            "/%zz",
            "/caf\u{e9}",
        ] {
            assert!(!is_safe_next(bad), "{bad:?}");
            assert_eq!(safe_next(Some(bad)), "/");
        }
        assert_eq!(safe_next(None), "/");
        assert_eq!(
            safe_next(Some("/accounts/Acme Corp")),
            "/accounts/Acme%20Corp"
        );
    }

    proptest! {
        /// Whatever comes in, what goes out is `/` or a path a browser resolves on this
        /// site, and it always fits in a Location header.
        #[test]
        fn next_is_always_same_site(raw in ".{0,64}") {
            let out = safe_next(Some(&raw));
            prop_assert!(out.starts_with('/'));
            prop_assert!(!out.starts_with("//") && !out.starts_with("/\\"));
            prop_assert!(out.bytes().all(|c| (0x21..=0x7e).contains(&c) && c != b'\\'));
            prop_assert!(actix_web::http::header::HeaderValue::from_str(&out).is_ok());
            prop_assert!(out == "/" || out == raw.replace(' ', "%20"));
        }

        #[test]
        fn next_refuses_every_control_character(
            prefix in "/[a-z]{0,8}",
            c in proptest::char::range('\u{0}', '\u{1f}'),
            suffix in "[a-z/]{0,8}",
        ) {
            let raw = format!("{prefix}{c}{suffix}");
            prop_assert_eq!(safe_next(Some(&raw)), "/");
        }

        #[test]
        fn next_refuses_encoded_separators(
            prefix in "/[a-z]{0,8}",
            code in prop::sample::select(vec!["%2f", "%2F", "%5c", "%5C", "%09", "%0a", "%0D", "%00", "%25"]),
        ) {
            let raw = format!("{prefix}{code}/evil.example");
            prop_assert_eq!(safe_next(Some(&raw)), "/");
        }
    }
}
