//! Rendering pages: the layout every page shares, flash messages, form errors.

use super::auth::SessionUser;
use super::AppError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use base64::Engine;

use super::auth::flash_cookie;

/// What `base.html` needs: who is signed in, where they are, the CSRF token for forms.
pub struct Layout {
    pub title: String,
    pub nav: &'static str,
    pub signed_in: bool,
    /// The site menu shows (on every page but the login page, error pages included).
    pub menu: bool,
    pub username: String,
    pub role: &'static str,
    pub is_system_admin: bool,
    pub csrf: String,
    pub flash: Option<String>,
    pub version: &'static str,
    pub alert_count: usize,
    pub is_upstream: bool,
}

impl Layout {
    pub fn anonymous(title: &str) -> Self {
        Self {
            title: title.to_string(),
            nav: "",
            signed_in: false,
            menu: false,
            username: String::new(),
            role: "",
            is_system_admin: false,
            csrf: String::new(),
            flash: None,
            version: env!("CARGO_PKG_VERSION"),
            alert_count: 0,
            is_upstream: false,
        }
    }

    /// An error page: it keeps the site menu (CONTRACT section 8) even where the error came
    /// before anyone was known; links a visitor may not follow lead to the login page.
    pub fn error_page(title: &str) -> Self {
        Self {
            menu: true,
            ..Self::anonymous(title)
        }
    }

    pub fn new(req: &HttpRequest, user: &SessionUser, nav: &'static str, title: &str) -> Self {
        Self {
            menu: true,
            nav,
            signed_in: true,
            username: user.user.username.clone(),
            role: user.user.role.as_str(),
            is_system_admin: user.principal.is_system_admin(),
            csrf: user.csrf.clone(),
            flash: read_flash(req),
            alert_count: user.alert_count,
            is_upstream: req
                .app_data::<crate::web::State>()
                .is_some_and(|s| s.settings.role == crate::config::ServerRole::Upstream),
            ..Self::anonymous(title)
        }
    }
}

fn read_flash(req: &HttpRequest) -> Option<String> {
    let raw = req.cookie(flash_cookie())?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw.value())
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// Renders a page with the given status; a flash message shown on it is cleared.
pub fn page_with_status<T: Template>(
    req: &HttpRequest,
    status: StatusCode,
    page: &T,
) -> Result<HttpResponse, AppError> {
    let html = page.render()?;
    let mut res = HttpResponse::build(status);
    res.content_type("text/html; charset=utf-8");
    if req.cookie(flash_cookie()).is_some() {
        res.cookie(super::auth::cookie(flash_cookie(), String::new(), 0));
    }
    Ok(res.body(html))
}

pub fn page<T: Template>(req: &HttpRequest, page: &T) -> Result<HttpResponse, AppError> {
    page_with_status(req, StatusCode::OK, page)
}

/// 303 to `to`, with a message shown once on the next page.
pub fn redirect_with_flash(to: &str, message: &str) -> HttpResponse {
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(message);
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .cookie(super::auth::cookie(flash_cookie(), value, 60))
        .finish()
}

pub fn redirect(to: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// Errors to show next to form fields.
#[derive(Default)]
pub struct FormErrors {
    errors: Vec<(&'static str, String)>,
    status: Option<StatusCode>,
}

impl FormErrors {
    pub fn get(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, m)| m.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The status a page showing these errors answers with: the error's own (409 for a
    /// duplicate), else 422.
    pub fn status(&self) -> StatusCode {
        self.status.unwrap_or(StatusCode::UNPROCESSABLE_ENTITY)
    }

    /// An error about one field (422 invalid, 409 duplicate) becomes a field error so the
    /// form is shown again; anything else stays an error.
    pub fn from_error(e: AppError) -> Result<Self, AppError> {
        match e.field {
            Some(field) if e.status.is_client_error() => Ok(Self {
                errors: vec![(field, e.message)],
                status: Some(e.status),
            }),
            _ => Err(e),
        }
    }

    /// Adds one more field's error (forms that report every problem at once).
    pub fn push(&mut self, field: &'static str, message: impl Into<String>) {
        self.errors.push((field, message.into()));
    }

    /// One field's error answered with `status` (a failure of something the field named,
    /// such as an upstream refusing a token, 502).
    pub fn at(field: &'static str, message: impl Into<String>, status: StatusCode) -> Self {
        Self {
            errors: vec![(field, message.into())],
            status: Some(status),
        }
    }

    pub fn single(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            errors: vec![(field, message.into())],
            status: None,
        }
    }
}

/// Percent-encodes a name for use in a URL path segment.
pub fn path_segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
