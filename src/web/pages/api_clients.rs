//! API clients for system admins: list, create (the secret shown once, with a copy
//! button) and revoke. The same use cases as `/api/v1/api-clients`.

use super::accounts::CsrfForm;
use crate::clock;
use crate::domain::Role;
use crate::service::{access, api_clients};
use crate::store::accounts;
use crate::web::auth::SessionUser;
use crate::web::render::{self, FormErrors, Layout};
use crate::web::shown_once::{no_store, shown_url, Reveal, Secret, SecretKind, ShownQuery};
use crate::web::{AppError, PageError, State};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

pub struct ClientView {
    pub name: String,
    pub client_id: String,
    pub role: &'static str,
    pub account: String,
    pub created: String,
    pub last_used: String,
    pub revoke_url: String,
}

pub struct CreatedView {
    pub name: String,
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Template)]
#[template(path = "api_clients/list.html")]
struct ListPage {
    layout: Layout,
    clients: Vec<ClientView>,
    roles: Vec<&'static str>,
    account_names: Vec<String>,
    form_name: String,
    form_role: String,
    form_account: String,
    errors: FormErrors,
    created: Option<CreatedView>,
}

#[derive(Deserialize)]
struct NewClientForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    account: String,
}

impl Default for NewClientForm {
    /// The least powerful role is the one offered first.
    fn default() -> Self {
        NewClientForm {
            csrf: String::new(),
            name: String::new(),
            role: Role::Viewer.as_str().into(),
            account: String::new(),
        }
    }
}

async fn list_page(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    form: NewClientForm,
    errors: FormErrors,
    created: Option<CreatedView>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let cap = access::system_admin(&user.principal).map_err(AppError::from)?;
    let (clients, account_names) = state
        .store
        .read(move |c| Ok((api_clients::list(c, &cap)?, accounts::all_names(c)?)))
        .await?;
    let page = ListPage {
        layout: Layout::new(req, user, "api-clients", "API clients"),
        clients: clients
            .iter()
            .map(|c| ClientView {
                name: c.name.clone(),
                client_id: c.client_id.clone(),
                role: c.role.as_str(),
                account: c.account.clone().unwrap_or_default(),
                created: clock::human(c.created_at),
                last_used: c.last_used_at.map_or_else(|| "never".into(), clock::human),
                revoke_url: format!("/api-clients/{}/revoke", c.id),
            })
            .collect(),
        roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
        account_names: account_names.into_iter().map(|(_, n)| n).collect(),
        form_name: form.name,
        form_role: form.role,
        form_account: form.account,
        errors,
        created,
    };
    Ok(render::page_with_status(req, status, &page)?)
}

async fn list(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    query: web::Query<ShownQuery>,
) -> Result<HttpResponse, PageError> {
    let form = NewClientForm::default();
    let mut errors = FormErrors::default();
    let created = match state
        .shown_once
        .reveal(&query, &user.token_hash, SecretKind::ApiClient)
    {
        Reveal::Nothing => None,
        Reveal::Now(s) => Some(CreatedView {
            name: s.label,
            client_id: s.detail,
            client_secret: s.value,
        }),
        Reveal::AlreadyShown => {
            errors.push(
                "shown",
                "That client secret was shown once already and is not kept. \
                 If you did not copy it, revoke the client and create a new one.",
            );
            None
        }
    };
    let res = list_page(&req, &state, &user, form, errors, created, StatusCode::OK).await?;
    Ok(no_store(res))
}

async fn create(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    form: web::Form<NewClientForm>,
) -> Result<HttpResponse, PageError> {
    let cap = access::system_admin(&user.principal).map_err(AppError::from)?;
    user.check_csrf(&form.csrf)?;
    let form = form.into_inner();
    // Every field's error at once, before anything is written.
    let checked = super::form_checks::principal(
        crate::domain::names::name("name", &form.name),
        &form.role,
        &form.account,
    );
    if let Err(errors) = checked {
        let status = errors.status();
        return list_page(&req, &state, &user, form, errors, None, status).await;
    }
    let now = state.clock.unix();
    let (name, role, account) = (form.name.clone(), form.role.clone(), form.account.clone());
    let result = state
        .store
        .write(move |tx| {
            let new = api_clients::NewApiClient::parse(name, &role, Some(account))?;
            Ok(api_clients::create(tx, &cap, now, new)?)
        })
        .await;
    match result {
        Ok(made) => {
            // The secret exists only now: kept in memory for the one GET that shows it.
            let kept = Secret {
                label: made.client.name,
                value: made.client_secret,
                detail: made.client.client_id,
            };
            let id = state
                .shown_once
                .put(&user.token_hash, SecretKind::ApiClient, kept);
            Ok(render::redirect(&shown_url("/api-clients", &id)))
        }
        Err(e) => {
            let errors = FormErrors::from_error(e.into())?;
            let status = errors.status();
            list_page(&req, &state, &user, form, errors, None, status).await
        }
    }
}

async fn revoke(
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    let cap = access::system_admin(&user.principal).map_err(AppError::from)?;
    user.check_csrf(&form.csrf)?;
    let id = api_clients::parse_id(&path.into_inner()).map_err(AppError::from)?;
    let now = state.clock.unix();
    let client = state
        .store
        .write(move |tx| Ok(api_clients::revoke(tx, &cap, now, id)?))
        .await?;
    Ok(render::redirect_with_flash(
        "/api-clients",
        &format!(
            "API client '{}' revoked; its tokens no longer work.",
            client.name
        ),
    ))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api-clients", web::get().to(list))
        .route("/api-clients", web::post().to(create))
        .route("/api-clients/{id}/revoke", web::post().to(revoke));
}
