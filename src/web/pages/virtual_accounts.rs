//! A virtual account's page: its details, edit and delete.

use super::accounts::{AccountView, CsrfForm, EditForm, VaView};
use crate::store::accounts;
use crate::web::auth::SessionUser;
use crate::web::render::{self, path_segment, FormErrors, Layout};
use crate::web::{AppError, PageError, State};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

#[derive(Template)]
#[template(path = "virtual_accounts/show.html")]
struct ShowPage {
    layout: Layout,
    account: AccountView,
    va: VaView,
    can_edit: bool,
    edit_name: String,
    edit_description: String,
    errors: FormErrors,
    problem: Option<String>,
}

async fn show_page(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    names: (String, String),
    edit: Option<(String, String, FormErrors)>,
    problem: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let who = user.principal.clone();
    let (account, va) = state
        .store
        .read(move |c| {
            let account = accounts::find(c, &who, &names.0)?;
            let va = accounts::find_va(c, &account, &names.1)?;
            Ok((account, va))
        })
        .await?;
    let (edit_name, edit_description, errors) = edit.unwrap_or_else(|| {
        (
            va.name.clone(),
            va.description.clone(),
            FormErrors::default(),
        )
    });
    let page = ShowPage {
        layout: Layout::new(req, user, "accounts", &va.name),
        can_edit: user.principal.can_edit_account(account.id),
        va: VaView::new(&account, &va),
        account: AccountView::from(&account),
        edit_name,
        edit_description,
        errors,
        problem,
    };
    Ok(render::page_with_status(req, status, &page)?)
}

async fn show(
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
        None,
        None,
        StatusCode::OK,
    )
    .await
}

async fn update(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<(String, String)>,
    form: web::Form<EditForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let (names, form) = (path.into_inner(), form.into_inner());
    let (who, now) = (user.principal.clone(), state.clock.unix());
    let (n, new_name, description) = (names.clone(), form.name.clone(), form.description.clone());
    let result = state
        .store
        .write(move |tx| {
            let account = accounts::find(tx, &who, &n.0)?;
            accounts::update_va(
                tx,
                &who,
                now,
                &account,
                &n.1,
                new_name.as_deref(),
                Some(&description),
            )
        })
        .await;
    match result {
        Ok(va) => Ok(render::redirect_with_flash(
            &format!(
                "/accounts/{}/virtual-accounts/{}",
                path_segment(&names.0),
                path_segment(&va.name)
            ),
            "Virtual account saved.",
        )),
        Err(e) => {
            let e = AppError::from(e);
            if e.status == StatusCode::CONFLICT {
                let msg = Some(e.message);
                return show_page(&req, &state, &user, names, None, msg, StatusCode::CONFLICT)
                    .await;
            }
            let errors = FormErrors::from_error(e)?;
            let status = errors.status();
            let edit = Some((
                form.name.unwrap_or_else(|| names.1.clone()),
                form.description,
                errors,
            ));
            show_page(&req, &state, &user, names, edit, None, status).await
        }
    }
}

async fn delete(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<(String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let names = path.into_inner();
    let (who, now, n) = (user.principal.clone(), state.clock.unix(), names.clone());
    let result = state
        .store
        .write(move |tx| {
            let account = accounts::find(tx, &who, &n.0)?;
            accounts::delete_va(tx, &who, now, &account, &n.1)
        })
        .await;
    match result.map_err(AppError::from) {
        Ok(()) => Ok(render::redirect_with_flash(
            &format!("/accounts/{}", path_segment(&names.0)),
            &format!("Virtual account '{}' deleted.", names.1),
        )),
        Err(e) if e.status == StatusCode::CONFLICT => {
            let msg = Some(e.message);
            show_page(&req, &state, &user, names, None, msg, StatusCode::CONFLICT).await
        }
        Err(e) => Err(e.into()),
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/accounts/{a}/virtual-accounts/{va}", web::get().to(show))
        .route(
            "/accounts/{a}/virtual-accounts/{va}",
            web::post().to(update),
        )
        .route(
            "/accounts/{a}/virtual-accounts/{va}/delete",
            web::post().to(delete),
        );
}
