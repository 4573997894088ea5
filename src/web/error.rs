//! One error type for the web layer. It picks the status, logs the cause with the
//! request id, and renders the contract's JSON error body; `PageError` renders the same
//! error as an HTML page for people.

use crate::crypto::CryptoError;
use crate::domain::DomainError;
use crate::store::StoreError;
use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
use std::fmt;

tokio::task_local! {
    /// The current request's id, set by `middleware::request_context`.
    pub static REQUEST_ID: String;
}

/// An error and every cause under it, outermost first: `a: b: c`.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        // thiserror's `#[error(transparent)]` and `{0}` repeat the cause's own text.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(|id| id.clone())
        .unwrap_or_else(|_| "-".to_string())
}

#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The form field at fault, for pages that show errors next to the field.
    pub field: Option<&'static str>,
    pub retry_after: Option<u64>,
    /// What went wrong inside; logged, never shown.
    cause: Option<String>,
}

impl AppError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            cause: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unprocessable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    pub fn too_many_requests(message: impl Into<String>, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }

    /// A server-side failure that is an error value: its whole `source()` chain goes to
    /// the log line, the client sees only the generic message and the request id.
    pub fn internal_error(e: &(dyn std::error::Error + 'static)) -> Self {
        Self::internal(error_chain(e))
    }

    pub fn internal(cause: impl fmt::Display) -> Self {
        Self {
            cause: Some(cause.to_string()),
            ..Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Something went wrong on the server.",
            )
        }
    }

    pub fn from_json_error(e: actix_web::error::JsonPayloadError) -> Self {
        use actix_web::error::JsonPayloadError as J;
        match e {
            J::Overflow { .. } | J::OverflowKnownLength { .. } => super::limits::too_large(None),
            J::Payload(p) => super::limits::payload_error(&p),
            J::ContentType => Self::bad_request("Content-Type must be application/json."),
            other => Self::bad_request(format!("Request body is not valid: {other}")),
        }
    }

    /// The JSON error body from CONTRACT.md section 2.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({ "error": { "code": self.code, "message": self.message } })
    }

    fn log(&self) {
        let request_id = current_request_id();
        if self.status.is_server_error() {
            tracing::error!(%request_id, code = self.code, cause = self.cause.as_deref().unwrap_or(""), "request failed");
        } else {
            tracing::debug!(%request_id, code = self.code, message = %self.message, "request refused");
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        self.log();
        let mut res = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if self.status == StatusCode::UNAUTHORIZED && self.code == "unauthorized" {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        res.json(self.body())
    }
}

impl From<DomainError> for AppError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid {
                code,
                field,
                message,
            } => Self {
                field: Some(field),
                ..Self::unprocessable(code, message)
            },
            DomainError::Forbidden(message) => Self::forbidden(message),
            DomainError::Denied { code, message } => {
                Self::new(StatusCode::FORBIDDEN, code, message)
            }
            DomainError::Unauthorized { code, message } => Self::unauthorized(code, message),
            DomainError::Conflict {
                code,
                field,
                message,
            } => Self {
                field,
                ..Self::new(StatusCode::CONFLICT, code, message)
            },
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Domain(d) => d.into(),
            StoreError::NotFound(what) => Self::not_found(format!("No {what}.")),
            other => Self::internal_error(&other),
        }
    }
}

impl From<crate::service::ServiceError> for AppError {
    fn from(e: crate::service::ServiceError) -> Self {
        match e {
            crate::service::ServiceError::Domain(d) => d.into(),
            crate::service::ServiceError::Store(s) => s.into(),
        }
    }
}

impl From<CryptoError> for AppError {
    fn from(e: CryptoError) -> Self {
        Self::internal_error(&e)
    }
}

impl From<askama::Error> for AppError {
    fn from(e: askama::Error) -> Self {
        Self::internal_error(&e)
    }
}

impl From<actix_web::error::BlockingError> for AppError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        Self::internal(e)
    }
}

/// An error met while serving a page: either a redirect (to log in, to change the
/// initial password) or an `AppError` shown on the error page.
#[derive(Debug)]
pub enum PageError {
    Redirect(String),
    App(AppError),
}

impl<E: Into<AppError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError::App(e.into())
    }
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageError::Redirect(to) => write!(f, "redirect to {to}"),
            PageError::App(e) => e.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read the manifest")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_log_line_carries_every_cause() {
        let e = Outer(std::io::Error::other("disk on fire"));
        assert_eq!(error_chain(&e), "cannot read the manifest: disk on fire");
        let app = AppError::internal_error(&e);
        assert_eq!(
            app.cause.as_deref(),
            Some("cannot read the manifest: disk on fire")
        );
        assert_eq!(app.message, "Something went wrong on the server.");
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: super::render::Layout,
    status: u16,
    reason: &'a str,
    message: &'a str,
    request_id: String,
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self {
            PageError::Redirect(_) => StatusCode::SEE_OTHER,
            PageError::App(e) => e.status,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let e = match self {
            PageError::Redirect(to) => {
                return HttpResponse::SeeOther()
                    .insert_header((header::LOCATION, to.as_str()))
                    .finish()
            }
            PageError::App(e) => e,
        };
        e.log();
        let page = ErrorPage {
            layout: super::render::Layout::error_page("Error"),
            status: e.status.as_u16(),
            reason: e.status.canonical_reason().unwrap_or("Error"),
            // A server error's message is generic already; the cause stays in the log.
            message: &e.message,
            request_id: current_request_id(),
        };
        let mut res = HttpResponse::build(e.status);
        if let Some(secs) = e.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        match page.render() {
            Ok(html) => res.content_type("text/html; charset=utf-8").body(html),
            Err(_) => res
                .content_type("text/plain; charset=utf-8")
                .body(e.message.clone()),
        }
    }
}
