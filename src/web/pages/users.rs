//! People: system admins list, add and remove users. A new user gets a generated
//! password, shown once, that must be changed at first login.

use super::accounts::CsrfForm;
use crate::clock;
use crate::crypto::{password, secrets};
use crate::domain::Role;
use crate::service::access;
use crate::service::users as service_users;
use crate::store::{accounts, users};
use crate::web::auth::SessionUser;
use crate::web::render::{self, path_segment, FormErrors, Layout};
use crate::web::shown_once::{no_store, shown_url, Reveal, Secret, SecretKind, ShownQuery};
use crate::web::{AppError, PageError, State};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

pub struct UserView {
    pub username: String,
    pub role: &'static str,
    pub account: String,
    pub created: String,
    pub delete_url: String,
    pub is_self: bool,
    /// `/users/{u}`: its update, reset-password, disable and enable forms post below it.
    pub base_url: String,
    pub disabled: bool,
}

#[derive(Template)]
#[template(path = "users/list.html")]
struct ListPage {
    layout: Layout,
    users: Vec<UserView>,
    roles: Vec<&'static str>,
    account_names: Vec<String>,
    form_username: String,
    form_role: String,
    form_account: String,
    errors: FormErrors,
    created: Option<(String, String)>,
    problem: Option<String>,
    reset: Option<(String, String)>,
}

#[derive(Deserialize)]
struct NewUserForm {
    #[serde(default)]
    csrf: String,
    username: String,
    role: String,
    #[serde(default)]
    account: String,
}

impl Default for NewUserForm {
    /// The least powerful role is the one offered first, never system-admin.
    fn default() -> Self {
        NewUserForm {
            csrf: String::new(),
            username: String::new(),
            role: Role::Viewer.as_str().into(),
            account: String::new(),
        }
    }
}

fn require_admin(user: &SessionUser) -> Result<(), AppError> {
    if user.principal.is_system_admin() {
        Ok(())
    } else {
        Err(AppError::forbidden("Only system admins manage users."))
    }
}

struct Extra {
    form: NewUserForm,
    errors: FormErrors,
    created: Option<(String, String)>,
    problem: Option<String>,
    reset: Option<(String, String)>,
}

async fn list_page(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    extra: Extra,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let (all, account_names, disabled) = state
        .store
        .read(|c| {
            Ok((
                users::list(c)?,
                accounts::all_names(c)?,
                crate::store::user_admin::disabled_usernames(c)?,
            ))
        })
        .await?;
    let me = user.user.username.clone();
    let page = ListPage {
        layout: Layout::new(req, user, "users", "Users"),
        users: all
            .iter()
            .map(|u| UserView {
                username: u.username.clone(),
                role: u.role.as_str(),
                account: u.account_name.clone().unwrap_or_default(),
                created: clock::human(u.created_at),
                delete_url: format!("/users/{}/delete", path_segment(&u.username)),
                is_self: u.username == me,
                base_url: format!("/users/{}", path_segment(&u.username)),
                disabled: disabled.contains(&u.username),
            })
            .collect(),
        roles: Role::ALL.iter().map(|r| r.as_str()).collect(),
        account_names: account_names.into_iter().map(|(_, n)| n).collect(),
        form_username: extra.form.username,
        form_role: extra.form.role,
        form_account: extra.form.account,
        errors: extra.errors,
        created: extra.created,
        problem: extra.problem,
        reset: extra.reset,
    };
    Ok(render::page_with_status(req, status, &page)?)
}

async fn list(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    query: web::Query<ShownQuery>,
) -> Result<HttpResponse, PageError> {
    require_admin(&user)?;
    let mut extra = Extra {
        form: NewUserForm::default(),
        errors: FormErrors::default(),
        created: None,
        problem: None,
        reset: None,
    };
    // One `?shown=` id: a new user's password or a reset one, whichever it was kept as.
    let kept = &state.shown_once;
    match kept.reveal(&query, &user.token_hash, SecretKind::NewUser) {
        Reveal::Nothing => {}
        Reveal::Now(s) => extra.created = Some((s.label, s.value)),
        Reveal::AlreadyShown => {
            match kept.reveal(&query, &user.token_hash, SecretKind::PasswordReset) {
                Reveal::Now(s) => extra.reset = Some((s.label, s.value)),
                _ => extra.errors.push(
                    "shown",
                    "That password was shown once already and is not kept. If it was not \
                     noted, use Reset password on the user to make a new one.",
                ),
            }
        }
    }
    let res = list_page(&req, &state, &user, extra, StatusCode::OK).await?;
    Ok(no_store(res))
}

/// Keeps a generated password for the one GET of the list that shows it (post/redirect/
/// get): a refresh of that page shows it no more and submits nothing.
pub(super) fn redirect_showing(
    state: &State,
    user: &SessionUser,
    kind: SecretKind,
    username: String,
    password: String,
) -> HttpResponse {
    let kept = Secret {
        label: username,
        value: password,
        detail: String::new(),
    };
    let id = state.shown_once.put(&user.token_hash, kind, kept);
    render::redirect(&shown_url("/users", &id))
}

async fn create(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    form: web::Form<NewUserForm>,
) -> Result<HttpResponse, PageError> {
    require_admin(&user)?;
    user.check_csrf(&form.csrf)?;
    let form = form.into_inner();
    // Every field's error at once, before anything is written.
    let checked = super::form_checks::principal(
        crate::domain::names::username(&form.username),
        &form.role,
        &form.account,
    );
    if let Err(errors) = checked {
        let status = errors.status();
        let extra = Extra {
            form,
            errors,
            created: None,
            problem: None,
            reset: None,
        };
        return list_page(&req, &state, &user, extra, status).await;
    }
    let generated = secrets::random_password();
    let to_hash = generated.clone();
    let hash = web::block(move || password::hash(&to_hash)).await??;
    let (who, now) = (user.principal.clone(), state.clock.unix());
    let (username, account, role) = (
        form.username.clone(),
        form.account.clone(),
        form.role.clone(),
    );
    let result = state
        .store
        .write(move |tx| {
            let role = role.parse::<Role>()?;
            let new = service_users::NewUser {
                username: &username,
                password_hash: &hash,
                role,
                account: Some(account.as_str()).filter(|a| !a.is_empty()),
                must_change_password: true,
            };
            let cap = access::system_admin_to(&who, "manage users")?;
            Ok(service_users::create(tx, &cap, now, new)?)
        })
        .await;
    match result {
        Ok(created) => Ok(redirect_showing(
            &state,
            &user,
            SecretKind::NewUser,
            created.username,
            generated,
        )),
        Err(e) => {
            let errors = FormErrors::from_error(e.into())?;
            let status = errors.status();
            let extra = Extra {
                form,
                errors,
                created: None,
                problem: None,
                reset: None,
            };
            list_page(&req, &state, &user, extra, status).await
        }
    }
}

async fn delete(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    require_admin(&user)?;
    user.check_csrf(&form.csrf)?;
    let username = path.into_inner();
    let (who, now, target) = (user.principal.clone(), state.clock.unix(), username.clone());
    let result = state
        .store
        .write(move |tx| {
            let cap = access::system_admin_to(&who, "remove users")?;
            Ok(service_users::remove(tx, &cap, now, &target)?)
        })
        .await;
    match result.map_err(AppError::from) {
        Ok(()) => Ok(render::redirect_with_flash(
            "/users",
            &format!("User '{username}' removed."),
        )),
        Err(e) if e.status == StatusCode::CONFLICT => {
            let extra = Extra {
                form: NewUserForm::default(),
                errors: FormErrors::default(),
                created: None,
                problem: Some(e.message),
                reset: None,
            };
            list_page(&req, &state, &user, extra, StatusCode::CONFLICT).await
        }
        Err(e) => Err(e.into()),
    }
}

pub use super::user_admin::configure as configure_admin;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/users", web::get().to(list))
        .route("/users", web::post().to(create))
        .route("/users/{u}/delete", web::post().to(delete))
        .configure(configure_admin);
}

/// For `user_admin`: the list page showing a problem, or a password shown once.
pub(super) async fn show_list(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    problem: Option<String>,
    reset: Option<(String, String)>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let extra = Extra {
        form: NewUserForm::default(),
        errors: FormErrors::default(),
        created: None,
        problem,
        reset,
    };
    list_page(req, state, user, extra, status).await
}
