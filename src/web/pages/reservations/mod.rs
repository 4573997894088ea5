//! Reservation pages of an account, split by job: `list` (filter by state, search by UDI
//! or request code, enter a return code), `wizard` (request code -> VA -> counts or
//! universal -> export acknowledgement -> authorization code), `show` (one reservation
//! with its code and the `.xml` download) and `actions` (its confirm, update, cancel and
//! remove forms). This file holds what they share: rows, license choices, form reading
//! and how a refusal is shown. Every change goes through `service::reservations`, as the
//! API's do.

mod actions;
mod list;
mod show;
mod wizard;

use crate::clock;
use crate::service::reservations::Detail;
use crate::store::licenses;
use crate::web::auth::SessionUser;
use crate::web::render::{path_segment, FormErrors};
use crate::web::{AppError, PageError};
use actix_web::http::StatusCode;
use actix_web::web;
use chrono::NaiveDate;
use rusqlite::Connection;

fn base_url(a: &str) -> String {
    format!("/accounts/{}/reservations", path_segment(a))
}

pub struct Row {
    pub id: String,
    pub url: String,
    pub udi: String,
    pub va: String,
    pub kind: &'static str,
    pub licenses: String,
    pub state: &'static str,
    pub created: String,
}

impl Row {
    fn new(d: &Detail, base: &str) -> Self {
        let r = &d.reservation;
        Row {
            id: r.id.clone(),
            url: format!("{base}/{}", path_segment(&r.id)),
            udi: format!("P:{},S:{}", r.pid, r.sn),
            va: r.virtual_account.clone(),
            kind: if r.universal { "universal" } else { "specific" },
            licenses: if r.universal {
                "all features".into()
            } else {
                d.licenses
                    .iter()
                    .filter(|h| h.count > 0)
                    .map(|h| format!("{} × {}", h.tag, h.count))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            state: r.state.as_str(),
            created: clock::human(r.created_at),
        }
    }
}

/// A license offered in the wizard or the update form.
pub struct Choice {
    pub tag: String,
    pub name: String,
    pub available: i64,
    pub export_controlled: bool,
    /// What the form shows in the count field.
    pub count: String,
}

/// Turns a refusal into errors next to their field, or a banner for the rest.
fn refusal(e: AppError) -> Result<(FormErrors, Option<String>, StatusCode), PageError> {
    let status = e.status;
    if e.field.is_some() {
        let errors = FormErrors::from_error(e)?;
        let status = errors.status();
        return Ok((errors, None, status));
    }
    if status.is_client_error() && status != StatusCode::NOT_FOUND {
        return Ok((FormErrors::default(), Some(e.message), status));
    }
    Err(e.into())
}

/// The posted fields, once the form's CSRF token is the session's.
fn posted(
    user: &SessionUser,
    form: web::Form<Vec<(String, String)>>,
) -> Result<Vec<(String, String)>, PageError> {
    let form = form.into_inner();
    user.check_csrf(form_value(&form, "csrf"))?;
    Ok(form)
}

fn form_value<'a>(form: &'a [(String, String)], key: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// `count:TAG` fields, in form order; blank fields are left out.
fn form_counts(form: &[(String, String)]) -> Result<Vec<(String, i64)>, AppError> {
    let mut out = vec![];
    for (k, v) in form {
        let Some(tag) = k.strip_prefix("count:") else {
            continue;
        };
        if v.trim().is_empty() {
            continue;
        }
        let n = v.trim().parse::<i64>().map_err(|_| {
            let mut e = AppError::unprocessable(
                "invalid_count",
                format!("The count for {tag} must be a whole number."),
            );
            e.field = Some("licenses");
            e
        })?;
        out.push((tag.to_string(), n));
    }
    Ok(out)
}

/// A license of a VA as the forms offer it: tag, name, how many are free, and whether it
/// is export-controlled.
type Pool = (String, String, i64, bool);

/// The VA's licenses with what is free today.
fn pools(c: &Connection, va_id: i64, today: NaiveDate) -> crate::service::Result<Vec<Pool>> {
    let (ls, evaluation) = licenses::evaluate(c, va_id, today)?;
    Ok(ls
        .into_iter()
        .map(|l| {
            let available = evaluation.pools.get(&l.spec.tag).map_or(0, |p| p.available);
            (l.spec.tag, l.spec.name, available, l.spec.export_controlled)
        })
        .collect())
}

/// What the forms sent for each `count:TAG` field, blank ones included, to show again.
fn typed_counts(form: &[(String, String)]) -> Vec<(String, String)> {
    form.iter()
        .filter_map(|(k, v)| k.strip_prefix("count:").map(|t| (t.to_string(), v.clone())))
        .collect()
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let base = "/accounts/{a}/reservations";
    cfg.route(base, web::get().to(list::list))
        .route(
            base,
            web::post().to(|req, state, user, path, form| {
                wizard::post(req, state, user, path, form, wizard::Post::Create)
            }),
        )
        .route(&format!("{base}/new"), web::get().to(wizard::new_form))
        .route(
            &format!("{base}/new"),
            web::post().to(|req, state, user, path, form| {
                wizard::post(req, state, user, path, form, wizard::Post::Check)
            }),
        )
        .route(&format!("{base}/return"), web::post().to(list::return_code))
        .route(&format!("{base}/{{id}}"), web::get().to(show::show))
        .route(
            &format!("{base}/{{id}}/authorization.xml"),
            web::get().to(show::xml),
        );
    // The four forms of one reservation's page share one handler.
    for (verb, action) in actions::Action::ALL {
        cfg.route(
            &format!("{base}/{{id}}/{verb}"),
            web::post().to(move |req, state, user, path, form| {
                actions::act(req, state, user, path, form, action)
            }),
        );
    }
}
