//! Accounts: list, create, show (with its virtual accounts), edit, delete.

use super::form_checks;
use super::PageQuery;
use crate::clock;
use crate::service::access;
use crate::service::accounts as service_accounts;
use crate::service::virtual_accounts as service_vas;
use crate::store::accounts::{Account, VirtualAccount};
use crate::store::page::{self, Page};
use crate::web::auth::SessionUser;
use crate::web::calls;
use crate::web::render::{self, path_segment, FormErrors, Layout};
use crate::web::{AppError, PageError, State};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

pub struct AccountView {
    pub name: String,
    pub description: String,
    pub url: String,
    pub va_count: i64,
    pub created: String,
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        Self {
            name: a.name.clone(),
            description: a.description.clone(),
            url: format!("/accounts/{}", path_segment(&a.name)),
            va_count: a.va_count,
            created: clock::human(a.created_at),
        }
    }
}

pub struct VaView {
    pub name: String,
    pub description: String,
    pub url: String,
    pub synced: bool,
    pub license_count: i64,
    pub instance_count: i64,
}

impl VaView {
    pub fn new(account: &Account, va: &VirtualAccount) -> Self {
        Self {
            name: va.name.clone(),
            description: va.description.clone(),
            url: format!(
                "/accounts/{}/virtual-accounts/{}",
                path_segment(&account.name),
                path_segment(&va.name)
            ),
            synced: va.synced,
            license_count: va.license_count,
            instance_count: va.instance_count,
        }
    }
}

#[derive(Template)]
#[template(path = "accounts/list.html")]
struct ListPage {
    layout: Layout,
    accounts: Vec<AccountView>,
    next_url: Option<String>,
    can_create: bool,
    form_name: String,
    form_description: String,
    errors: FormErrors,
}

async fn list_page(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    after: Option<String>,
    form: Option<(NewAccountForm, FormErrors)>,
) -> Result<HttpResponse, PageError> {
    let who = user.principal.clone();
    let page: Page<Account> = state
        .store
        .read(move |c| {
            let scope = access::visible(&who);
            Ok(service_accounts::list(
                c,
                scope,
                after.as_deref(),
                page::DEFAULT_LIMIT,
            )?)
        })
        .await?;
    let (status, form, errors) = match form {
        Some((f, e)) => (e.status(), f, e),
        None => (
            StatusCode::OK,
            NewAccountForm::default(),
            FormErrors::default(),
        ),
    };
    let view = ListPage {
        layout: Layout::new(req, user, "accounts", "Accounts"),
        accounts: page.items.iter().map(AccountView::from).collect(),
        next_url: page
            .next_after
            .map(|a| format!("/accounts?after={}", path_segment(&a))),
        can_create: user.principal.is_system_admin(),
        form_name: form.name,
        form_description: form.description,
        errors,
    };
    Ok(render::page_with_status(req, status, &view)?)
}

async fn list(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, PageError> {
    list_page(&req, &state, &user, q.into_inner().after, None).await
}

#[derive(Deserialize, Default)]
struct NewAccountForm {
    #[serde(default)]
    csrf: String,
    name: String,
    #[serde(default)]
    description: String,
}

async fn create(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    form: web::Form<NewAccountForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let form = form.into_inner();
    // Every field's error at once, before anything is written.
    if let Err(errors) = form_checks::named(Some(&form.name), &form.description) {
        return list_page(&req, &state, &user, None, Some((form, errors))).await;
    }
    let (who, now) = (user.principal.clone(), state.clock.unix());
    let (name, description) = (form.name.clone(), form.description.clone());
    let result = state
        .store
        .write(move |tx| {
            let cap = access::system_admin_to(&who, "create accounts")?;
            Ok(service_accounts::create(
                tx,
                &cap,
                now,
                &name,
                &description,
            )?)
        })
        .await;
    match result {
        Ok(a) => Ok(render::redirect_with_flash(
            &format!("/accounts/{}", path_segment(&a.name)),
            &format!("Account '{}' created.", a.name),
        )),
        Err(e) => {
            let errors = FormErrors::from_error(e.into())?;
            list_page(&req, &state, &user, None, Some((form, errors))).await
        }
    }
}

#[derive(Template)]
#[template(path = "accounts/show.html")]
struct ShowPage {
    layout: Layout,
    account: AccountView,
    vas: Vec<VaView>,
    next_url: Option<String>,
    can_edit: bool,
    can_rename: bool,
    can_delete: bool,
    edit_name: String,
    edit_description: String,
    edit_errors: FormErrors,
    va_name: String,
    va_description: String,
    va_errors: FormErrors,
    problem: Option<String>,
    settings: crate::store::settings::AccountSettings,
}

/// What a re-rendered account page should show besides the account itself.
#[derive(Default)]
struct ShowState {
    after: Option<String>,
    edit: Option<(String, String, FormErrors)>,
    new_va: Option<(String, String, FormErrors)>,
    problem: Option<String>,
}

async fn show_page(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    name: String,
    extra: ShowState,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let after = extra.after.clone();
    let (account, vas, settings) =
        calls::read_account(state, &user.principal, &name, move |c, cap, _| {
            let settings = crate::service::settings::account(c, cap)?;
            let vas = service_vas::list(c, cap, after.as_deref(), page::DEFAULT_LIMIT)?;
            Ok((cap.account.clone(), vas, settings))
        })
        .await?;
    let view = AccountView::from(&account);
    let (edit_name, edit_description, edit_errors) = extra.edit.unwrap_or_else(|| {
        (
            account.name.clone(),
            account.description.clone(),
            FormErrors::default(),
        )
    });
    let (va_name, va_description, va_errors) = extra
        .new_va
        .unwrap_or_else(|| (String::new(), String::new(), FormErrors::default()));
    let page = ShowPage {
        layout: Layout::new(req, user, "accounts", &account.name),
        vas: vas.items.iter().map(|v| VaView::new(&account, v)).collect(),
        next_url: vas
            .next_after
            .map(|a| format!("{}?after={}", view.url, path_segment(&a))),
        can_edit: user.principal.can_edit_account(account.id),
        can_rename: user.principal.is_system_admin(),
        can_delete: user.principal.is_system_admin(),
        account: view,
        edit_name,
        edit_description,
        edit_errors,
        va_name,
        va_description,
        va_errors,
        problem: extra.problem,
        settings,
    };
    Ok(render::page_with_status(req, status, &page)?)
}

async fn show(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, PageError> {
    let extra = ShowState {
        after: q.into_inner().after,
        ..Default::default()
    };
    show_page(
        &req,
        &state,
        &user,
        path.into_inner(),
        extra,
        StatusCode::OK,
    )
    .await
}

#[derive(Deserialize)]
pub struct EditForm {
    pub csrf: String,
    pub name: Option<String>,
    #[serde(default)]
    pub description: String,
}

async fn update(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<EditForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let (name, form) = (path.into_inner(), form.into_inner());
    if let Err(errors) = form_checks::named(form.name.as_deref(), &form.description) {
        let status = errors.status();
        let edit = (
            form.name.unwrap_or_else(|| name.clone()),
            form.description,
            errors,
        );
        let extra = ShowState {
            edit: Some(edit),
            ..Default::default()
        };
        return show_page(&req, &state, &user, name, extra, status).await;
    }
    let (who, now) = (user.principal.clone(), state.clock.unix());
    let (current, new_name, description) =
        (name.clone(), form.name.clone(), form.description.clone());
    let result = state
        .store
        .write(move |tx| {
            let cap = access::edit_account(tx, &who, &current)?;
            let admin = access::system_admin(&who).ok();
            let changes = service_accounts::Changes {
                name: new_name,
                description: Some(description),
            };
            Ok(service_accounts::update(
                tx,
                &cap,
                admin.as_ref(),
                now,
                &changes,
            )?)
        })
        .await;
    match result {
        Ok(a) => Ok(render::redirect_with_flash(
            &format!("/accounts/{}", path_segment(&a.name)),
            "Account saved.",
        )),
        Err(e) => {
            let errors = FormErrors::from_error(e.into())?;
            let edit = (
                form.name.unwrap_or_else(|| name.clone()),
                form.description,
                errors,
            );
            let extra = ShowState {
                edit: Some(edit),
                ..Default::default()
            };
            show_page(
                &req,
                &state,
                &user,
                name,
                extra,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf: String,
}

async fn delete(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let name = path.into_inner();
    let (who, now, target) = (user.principal.clone(), state.clock.unix(), name.clone());
    let result = state
        .store
        .write(move |tx| {
            let seen = access::read_account(tx, &who, &target)?;
            let cap = access::system_admin_to(&who, "delete accounts")?;
            Ok(service_accounts::delete(tx, &seen, &cap, now)?)
        })
        .await;
    match result.map_err(AppError::from) {
        Ok(()) => Ok(render::redirect_with_flash(
            "/accounts",
            &format!("Account '{name}' deleted."),
        )),
        Err(e) if e.status == StatusCode::CONFLICT => {
            let extra = ShowState {
                problem: Some(e.message),
                ..Default::default()
            };
            show_page(&req, &state, &user, name, extra, StatusCode::CONFLICT).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
struct NewVaForm {
    csrf: String,
    name: String,
    #[serde(default)]
    description: String,
}

async fn create_va(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<NewVaForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let (account_name, form) = (path.into_inner(), form.into_inner());
    if let Err(errors) = form_checks::named(Some(&form.name), &form.description) {
        let status = errors.status();
        let extra = ShowState {
            new_va: Some((form.name, form.description, errors)),
            ..Default::default()
        };
        return show_page(&req, &state, &user, account_name, extra, status).await;
    }
    let (who, now) = (user.principal.clone(), state.clock.unix());
    let (an, name, description) = (
        account_name.clone(),
        form.name.clone(),
        form.description.clone(),
    );
    let result = state
        .store
        .write(move |tx| {
            let cap = access::edit_account(tx, &who, &an)?;
            Ok(service_vas::create(tx, &cap, now, &name, &description)?)
        })
        .await;
    match result {
        Ok(va) => Ok(render::redirect_with_flash(
            &format!(
                "/accounts/{}/virtual-accounts/{}",
                path_segment(&account_name),
                path_segment(&va.name)
            ),
            &format!("Virtual account '{}' created.", va.name),
        )),
        Err(e) => {
            let errors = FormErrors::from_error(e.into())?;
            let status = errors.status();
            let extra = ShowState {
                new_va: Some((form.name, form.description, errors)),
                ..Default::default()
            };
            show_page(&req, &state, &user, account_name, extra, status).await
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/accounts", web::get().to(list))
        .route("/accounts", web::post().to(create))
        .route("/accounts/{a}", web::get().to(show))
        .route("/accounts/{a}", web::post().to(update))
        .route("/accounts/{a}/delete", web::post().to(delete))
        .route("/accounts/{a}/virtual-accounts", web::post().to(create_va));
}
