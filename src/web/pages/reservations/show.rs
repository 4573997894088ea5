//! One reservation's page: what it grants and holds, its authorization code and the
//! `.xml` download, and the forms `actions` handles (shown with their errors when one is
//! refused).

use super::{base_url, Choice, Row};
use crate::clock;
use crate::domain::reservation as rules;
use crate::service::reservations as svc;
use crate::web::auth::SessionUser;
use crate::web::render::{self, path_segment, FormErrors, Layout};
use crate::web::{calls, PageError, State};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

#[derive(Template)]
#[template(path = "reservations/show.html")]
struct ShowPage {
    layout: Layout,
    account: String,
    account_url: String,
    base: String,
    r: Row,
    request_code: String,
    version: i64,
    code: String,
    xml_url: String,
    confirmed_at: String,
    reason: String,
    held: Vec<(String, i64, i64)>,
    choices: Vec<Choice>,
    can_confirm: bool,
    can_update: bool,
    can_cancel: bool,
    can_remove: bool,
    confirmation_code: String,
    reason_input: String,
    errors: FormErrors,
    problem: Option<String>,
}

#[derive(Default)]
pub(super) struct ShowExtra {
    pub confirmation_code: String,
    pub reason: String,
    pub counts: Vec<(String, String)>,
    pub errors: FormErrors,
    pub problem: Option<String>,
}

pub(super) async fn show_page(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    (a, id): (String, String),
    x: ShowExtra,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let (account, d, pools) =
        calls::read_account(state, &user.principal, &a, move |c, cap, now| {
            let d = svc::get(c, cap, &id)?;
            let pools = super::pools(c, d.reservation.va_id, now.today)?;
            Ok((cap.account.clone(), d, pools))
        })
        .await?;
    let base = base_url(&account.name);
    let r = &d.reservation;
    let can_edit = user.principal.can_edit_account(account.id);
    let live = r.state.is_live();
    use rules::ReservationState as S;
    let choices = pools
        .into_iter()
        .map(|(tag, name, available, export_controlled)| {
            let held = d.licenses.iter().find(|h| h.tag == tag);
            let current = held.map_or(0, |h| h.count);
            Choice {
                count: x
                    .counts
                    .iter()
                    .find(|(t, _)| *t == tag)
                    .map(|(_, c)| c.clone())
                    .unwrap_or_else(|| current.to_string()),
                // What an update may use: what is free plus what this one holds.
                available: available + held.map_or(0, |h| h.held),
                tag,
                name,
                export_controlled,
            }
        })
        .collect();
    let view = ShowPage {
        layout: Layout::new(req, user, "accounts", &r.id),
        account_url: format!("/accounts/{}", path_segment(&account.name)),
        account: account.name.clone(),
        r: Row::new(&d, &base),
        request_code: r.request_code.clone(),
        version: r.version,
        code: r.authorization_code.clone(),
        xml_url: format!("{base}/{}/authorization.xml", path_segment(&r.id)),
        confirmed_at: r.confirmed_at.map(clock::human).unwrap_or_default(),
        reason: r.reason.clone().unwrap_or_default(),
        held: d
            .licenses
            .iter()
            .map(|h| (h.tag.clone(), h.count, h.held))
            .collect(),
        choices,
        can_confirm: can_edit && matches!(r.state, S::Pending | S::Updating),
        can_update: can_edit && !r.universal && matches!(r.state, S::Confirmed | S::Updating),
        can_cancel: can_edit && r.state == S::Pending,
        can_remove: can_edit && live && user.principal.is_system_admin(),
        base,
        confirmation_code: x.confirmation_code,
        reason_input: x.reason,
        errors: x.errors,
        problem: x.problem,
    };
    Ok(render::page_with_status(req, status, &view)?)
}

pub(super) async fn show(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    show_page(
        &req,
        &state,
        &user,
        path.into_inner(),
        ShowExtra::default(),
        StatusCode::OK,
    )
    .await
}

/// The authorization code as a file the admin carries to the product.
pub(super) async fn xml(
    state: State,
    user: SessionUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let (a, id) = path.into_inner();
    let d = calls::read_account(&state, &user.principal, &a, move |c, cap, _| {
        svc::get(c, cap, &id)
    })
    .await?;
    let r = d.reservation;
    Ok(HttpResponse::Ok()
        .content_type("application/xml")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{}-v{}.xml\"", r.id, r.version),
        ))
        .body(r.authorization_code))
}
