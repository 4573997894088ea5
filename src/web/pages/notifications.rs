//! An account's notification settings page: where alerts go (emails, a signed webhook),
//! which kinds, and a test button that says in words what happened. The same use cases as
//! `/api/v1/accounts/{a}/notifications`.

use crate::domain::alerts::AlertKind;
use crate::service::access;
use crate::service::notifications::{
    self as service, NotificationSettingsChange, NotificationSettingsInput,
};
use crate::web::auth::SessionUser;
use crate::web::render::{self, path_segment, FormErrors, Layout};
use crate::web::shown_once::{shown_url, Reveal, Secret, SecretKind, ShownQuery};
use crate::web::{AppError, PageError, State};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

pub struct KindBox {
    pub value: &'static str,
    pub label: String,
    pub checked: bool,
}

#[derive(Template)]
#[template(path = "notifications/edit.html")]
struct EditPage {
    layout: Layout,
    account: String,
    account_url: String,
    can_edit: bool,
    emails: String,
    webhook_url: String,
    secret_set: bool,
    kinds: Vec<KindBox>,
    errors: FormErrors,
    /// The test button's outcome: (email, webhook), in words.
    tested: Option<(String, String)>,
}

/// The form as posted: kinds come as repeated `kinds=` fields, so read pairs by hand.
#[derive(Default)]
struct SettingsForm {
    csrf: String,
    emails: String,
    webhook_url: String,
    webhook_secret: String,
    kinds: Vec<String>,
}

impl SettingsForm {
    fn parse(pairs: Vec<(String, String)>) -> SettingsForm {
        let mut f = SettingsForm::default();
        for (k, v) in pairs {
            match k.as_str() {
                "csrf" => f.csrf = v,
                "emails" => f.emails = v,
                "webhook_url" => f.webhook_url = v,
                "webhook_secret" => f.webhook_secret = v,
                "kinds" => f.kinds.push(v),
                _ => {}
            }
        }
        f
    }

    fn input(&self) -> NotificationSettingsInput {
        NotificationSettingsInput {
            emails: self
                .emails
                .split(['\n', ',', '\r'])
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(String::from)
                .collect(),
            webhook_url: Some(self.webhook_url.clone()),
            // Left blank keeps the stored secret.
            webhook_secret: Some(self.webhook_secret.clone()).filter(|s| !s.is_empty()),
            kinds: self.kinds.clone(),
        }
    }
}

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

async fn show_page(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    account: String,
    refused: Option<(SettingsForm, FormErrors)>,
    tested: Option<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let status = refused.as_ref().map_or(StatusCode::OK, |(_, e)| e.status());
    let (form, errors) = match refused {
        Some((f, e)) => (Some(f), e),
        None => (None, FormErrors::default()),
    };
    let who = user.principal.clone();
    let (name, id, current) = state
        .store
        .read(move |c| {
            let cap = access::read_account(c, &who, &account)?;
            let current = service::get(c, &cap)?;
            Ok((cap.account.name.clone(), cap.account.id, current))
        })
        .await?;
    let can_edit = user.principal.can_edit_account(id);
    let (emails, webhook_url, kinds) = match &form {
        Some(f) => (f.emails.clone(), f.webhook_url.clone(), f.kinds.clone()),
        None => (
            current.emails.join("\n"),
            current.webhook_url.clone().unwrap_or_default(),
            current.kinds.clone(),
        ),
    };
    let page = EditPage {
        layout: Layout::new(req, user, "accounts", &format!("Notifications — {name}")),
        account_url: format!("/accounts/{}", path_segment(&name)),
        account: name,
        can_edit,
        emails,
        webhook_url,
        secret_set: current.webhook_secret_set,
        kinds: AlertKind::ALL
            .iter()
            .map(|k| KindBox {
                value: k.as_str(),
                label: k.as_str().replace('_', " "),
                checked: kinds.iter().any(|c| c == k.as_str()),
            })
            .collect(),
        errors,
        tested,
    };
    Ok(render::page_with_status(req, status, &page)?)
}

async fn show(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    query: web::Query<ShownQuery>,
) -> Result<HttpResponse, PageError> {
    let account = path.into_inner();
    // The test button's outcome, once; a refresh shows the plain page and sends nothing.
    let tested =
        match state
            .shown_once
            .reveal(&query, &user.token_hash, SecretKind::NotificationTest)
        {
            Reveal::Now(s) => Some((s.label, s.value)),
            Reveal::Nothing | Reveal::AlreadyShown => None,
        };
    show_page(&req, &state, &user, account, None, tested).await
}

/// Every faulty field of the settings at once: the service's check stops at the first, so
/// each faulty field is set aside (emptied) and the rest checked again.
fn problems(mut input: NotificationSettingsInput) -> FormErrors {
    let mut errors = FormErrors::default();
    for _ in 0..4 {
        let Err(e) = NotificationSettingsChange::try_from(input.clone()) else {
            break;
        };
        let e = AppError::from(e);
        let Some(field) = e.field.filter(|f| errors.get(f).is_none()) else {
            break;
        };
        errors.push(field, e.message);
        match field {
            "emails" => input.emails.clear(),
            "webhook_url" => input.webhook_url = None,
            "webhook_secret" => input.webhook_secret = None,
            "kinds" => input.kinds.clear(),
            _ => break,
        }
    }
    errors
}

async fn save(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    body: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let form = SettingsForm::parse(body.into_inner());
    user.check_csrf(&form.csrf)?;
    let account = path.into_inner();
    let errors = problems(form.input());
    if !errors.is_empty() {
        return show_page(&req, &state, &user, account, Some((form, errors)), None).await;
    }
    let (who, name, input) = (user.principal.clone(), account.clone(), form.input());
    let now = state.clock.unix();
    let result = state
        .store
        .write(move |tx| {
            let cap = access::edit_account(tx, &who, &name)?;
            Ok(service::put(tx, &cap, now, input.try_into()?)?)
        })
        .await;
    match result {
        Ok(_) => Ok(render::redirect_with_flash(
            &format!("/accounts/{}/notifications", path_segment(&account)),
            "Notification settings saved.",
        )),
        Err(e) => {
            let errors = FormErrors::from_error(AppError::from(e))?;
            show_page(&req, &state, &user, account, Some((form, errors)), None).await
        }
    }
}

async fn test(
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let account = path.into_inner();
    let result =
        crate::web::calls::notifications::run_test(&state, user.principal.clone(), account.clone())
            .await?;
    let outcome = Secret {
        label: result.email,
        value: result.webhook,
        detail: String::new(),
    };
    let id = state
        .shown_once
        .put(&user.token_hash, SecretKind::NotificationTest, outcome);
    let page = format!("/accounts/{}/notifications", path_segment(&account));
    Ok(render::redirect(&shown_url(&page, &id)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/accounts/{a}/notifications", web::get().to(show))
        .route("/accounts/{a}/notifications", web::post().to(save))
        .route("/accounts/{a}/notifications/test", web::post().to(test));
}
