//! The reservation list of an account: filter by state, search by UDI or request code, a
//! page of rows at a time, and the return-code form that releases a reservation.

use super::{base_url, form_value, posted, refusal, Row};
use crate::domain::reservation as rules;
use crate::service::reservations as svc;
use crate::store::page;
use crate::store::reservations::Filter;
use crate::web::auth::SessionUser;
use crate::web::render::{self, path_segment, FormErrors, Layout};
use crate::web::{calls, AppError, PageError, State};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "reservations/list.html")]
struct ListPage {
    layout: Layout,
    account: String,
    account_url: String,
    base: String,
    states: Vec<&'static str>,
    state: String,
    q: String,
    rows: Vec<Row>,
    next_url: Option<String>,
    can_edit: bool,
    return_code: String,
    return_errors: FormErrors,
    problem: Option<String>,
}

#[derive(Deserialize, Default)]
pub(super) struct ListQuery {
    state: Option<String>,
    q: Option<String>,
    after: Option<String>,
}

async fn list_page(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    a: String,
    q: ListQuery,
    (return_code, return_errors, problem, status): (String, FormErrors, Option<String>, StatusCode),
) -> Result<HttpResponse, PageError> {
    let filter_state = q.state.clone().filter(|s| !s.is_empty());
    let parsed = filter_state
        .as_deref()
        .map(svc::parse_state)
        .transpose()
        .map_err(AppError::from)?;
    let filter = Filter {
        state: parsed,
        q: q.q.clone(),
        va_id: None,
    };
    let after = q.after.clone();
    let (account, page) = calls::read_account(state, &user.principal, &a, move |c, cap, _| {
        let page = svc::list(c, cap, &filter, after.as_deref(), page::DEFAULT_LIMIT)?;
        Ok((cap.account.clone(), page))
    })
    .await?;
    let base = base_url(&account.name);
    let (st, search) = (filter_state.unwrap_or_default(), q.q.unwrap_or_default());
    let view = ListPage {
        layout: Layout::new(req, user, "accounts", "Reservations"),
        account_url: format!("/accounts/{}", path_segment(&account.name)),
        can_edit: user.principal.can_edit_account(account.id),
        account: account.name,
        states: rules::ReservationState::ALL
            .iter()
            .map(|s| s.as_str())
            .collect(),
        rows: page.items.iter().map(|d| Row::new(d, &base)).collect(),
        next_url: page.next_after.map(|n| {
            format!(
                "{base}?state={}&q={}&after={}",
                path_segment(&st),
                path_segment(&search),
                path_segment(&n)
            )
        }),
        base,
        state: st,
        q: search,
        return_code,
        return_errors,
        problem,
    };
    Ok(render::page_with_status(req, status, &view)?)
}

pub(super) async fn list(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let none = (String::new(), FormErrors::default(), None, StatusCode::OK);
    list_page(&req, &state, &user, path.into_inner(), q.into_inner(), none).await
}

pub(super) async fn return_code(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let form = posted(&user, form)?;
    let a = path.into_inner();
    let raw = form_value(&form, "return_code").to_string();
    let result = match rules::parse_return_code(&raw) {
        Ok(code) => {
            calls::edit_account(&state, &user.principal, &a, move |tx, cap, now| {
                svc::return_code(tx, cap, now.unix, &code)
            })
            .await
        }
        Err(e) => Err(AppError::from(e)),
    };
    match result {
        Ok(d) => Ok(render::redirect_with_flash(
            &format!("{}/{}", base_url(&a), path_segment(&d.reservation.id)),
            "Return code accepted: the reserved licenses are released.",
        )),
        Err(e) => {
            let (errors, problem, status) = refusal(e)?;
            list_page(
                &req,
                &state,
                &user,
                a,
                ListQuery::default(),
                (raw, errors, problem, status),
            )
            .await
        }
    }
}
