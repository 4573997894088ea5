//! A virtual account's page: pools, tokens, instances by status, and the forms that
//! change them (edit, license create/transfer, token create/revoke, delete).

use super::accounts::{CsrfForm, EditForm};
use super::form_checks;
use super::va_view::{self, VaData};
use crate::config::ServerRole;
use crate::domain::license::{LicenseSpec, RawLicense};
use crate::service::access;
use crate::service::licenses as service_licenses;
use crate::service::tokens as service_tokens;
use crate::service::virtual_accounts as service_vas;
use crate::web::auth::SessionUser;
use crate::web::render::{self, path_segment, FormErrors, Layout};
use crate::web::shown_once::{no_store, shown_url, Reveal, Secret, SecretKind, ShownQuery};
use crate::web::{AppError, PageError, State};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

#[derive(Deserialize, Default, Clone)]
pub struct LicenseForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pub tag: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub license_type: String,
    #[serde(default)]
    pub quantity: String,
    #[serde(default)]
    pub start: String,
    #[serde(default)]
    pub end: String,
    pub export_controlled: Option<String>,
    #[serde(default)]
    pub substitutes: String,
    #[serde(default)]
    pub rank: String,
}

#[derive(Deserialize, Default, Clone)]
pub struct TokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub expires_in_days: String,
    #[serde(default)]
    pub max_uses: String,
    pub export_controlled: Option<String>,
}

#[derive(Deserialize, Default, Clone)]
pub struct TransferForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pub tag: String,
    #[serde(default)]
    pub quantity: String,
    #[serde(default)]
    pub to_virtual_account: String,
}

/// What a re-rendered page shows besides the stored data.
#[derive(Default)]
pub struct Extra {
    pub edit: Option<(String, String)>,
    pub edit_errors: FormErrors,
    pub license: LicenseForm,
    pub license_errors: FormErrors,
    pub token: TokenForm,
    pub token_errors: FormErrors,
    pub transfer: TransferForm,
    pub transfer_errors: FormErrors,
    pub created_token: Option<(String, String)>,
    /// A refresh of the page that showed a new token: it is gone, say so.
    pub token_shown_already: bool,
    pub problem: Option<String>,
}

#[derive(Template)]
#[template(path = "virtual_accounts/show.html")]
struct ShowPage {
    layout: Layout,
    d: VaData,
    can_edit: bool,
    can_create_licenses: bool,
    edit_name: String,
    edit_description: String,
    x: Extra,
    /// The new license form's start date until one is typed.
    today: String,
}

pub async fn render_page(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    names: (String, String),
    x: Extra,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let who = user.principal.clone();
    let (now, today) = (state.clock.unix(), state.clock.now().date_naive());
    let d = state
        .store
        .read(move |c| va_view::load(c, &who, &names.0, &names.1, now, today))
        .await?;
    let (edit_name, edit_description) = x
        .edit
        .clone()
        .unwrap_or_else(|| (d.va.name.clone(), d.va.description.clone()));
    let can_edit = user.principal.can_edit_account(d.account_id);
    let page = ShowPage {
        layout: Layout::new(req, user, "accounts", &d.va.name),
        can_create_licenses: can_edit && state.settings.role == ServerRole::Upstream,
        can_edit,
        edit_name,
        edit_description,
        d,
        x,
        today: today.to_string(),
    };
    Ok(render::page_with_status(req, status, &page)?)
}

fn va_url(names: &(String, String)) -> String {
    format!(
        "/accounts/{}/virtual-accounts/{}",
        path_segment(&names.0),
        path_segment(&names.1)
    )
}

async fn show(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<(String, String)>,
    query: web::Query<ShownQuery>,
) -> Result<HttpResponse, PageError> {
    let mut x = Extra::default();
    match state
        .shown_once
        .reveal(&query, &user.token_hash, SecretKind::VaToken)
    {
        Reveal::Nothing => {}
        Reveal::Now(s) => x.created_token = Some((s.label, s.value)),
        Reveal::AlreadyShown => x.token_shown_already = true,
    }
    let res = render_page(&req, &state, &user, path.into_inner(), x, StatusCode::OK).await?;
    Ok(no_store(res))
}

/// Shows a refused change on the page: field errors next to their form, anything else
/// (a conflict) as a problem banner.
fn refusal(
    e: AppError,
    place: impl FnOnce(&mut Extra, FormErrors),
) -> Result<(Extra, StatusCode), PageError> {
    let mut x = Extra::default();
    let status = e.status;
    if e.field.is_some() {
        let errors = FormErrors::from_error(e)?;
        let status = errors.status();
        place(&mut x, errors);
        return Ok((x, status));
    }
    if status == StatusCode::CONFLICT {
        x.problem = Some(e.message);
        return Ok((x, status));
    }
    Err(e.into())
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
    if let Err(errors) = form_checks::named(form.name.as_deref(), &form.description) {
        let status = errors.status();
        let x = Extra {
            edit: Some((
                form.name.unwrap_or_else(|| names.1.clone()),
                form.description,
            )),
            edit_errors: errors,
            ..Default::default()
        };
        return render_page(&req, &state, &user, names, x, status).await;
    }
    let (who, now) = (user.principal.clone(), state.clock.unix());
    let (n, new_name, description) = (names.clone(), form.name.clone(), form.description.clone());
    let result = state
        .store
        .write(move |tx| {
            let (cap, va) = access::edit_va(tx, &who, &n.0, &n.1)?;
            let changes = service_vas::Changes {
                name: new_name,
                description: Some(description),
            };
            Ok(service_vas::update(tx, &cap, now, &va, &changes)?)
        })
        .await;
    match result {
        Ok(va) => Ok(render::redirect_with_flash(
            &va_url(&(names.0.clone(), va.name)),
            "Virtual account saved.",
        )),
        Err(e) => {
            let edit = (
                form.name.unwrap_or_else(|| names.1.clone()),
                form.description,
            );
            let (mut x, status) = refusal(e.into(), |x, errors| x.edit_errors = errors)?;
            x.edit = Some(edit);
            render_page(&req, &state, &user, names, x, status).await
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
            let (cap, va) = access::edit_va(tx, &who, &n.0, &n.1)?;
            Ok(service_vas::delete(tx, &cap, now, &va)?)
        })
        .await;
    match result {
        Ok(()) => Ok(render::redirect_with_flash(
            &format!("/accounts/{}", path_segment(&names.0)),
            &format!("Virtual account '{}' deleted.", names.1),
        )),
        Err(e) => {
            let (x, status) = refusal(e.into(), |_, _| {})?;
            render_page(&req, &state, &user, names, x, status).await
        }
    }
}

/// What to type, in words, when a number field holds something else.
fn number_hint(field: &str) -> String {
    match field {
        "quantity" => "Enter a whole number of licenses, like 10.".into(),
        "expires_in_days" => "Choose between 1 and 365 days.".into(),
        "max_uses" => {
            "Enter a whole number of uses, like 5, or leave it empty for no limit.".into()
        }
        "rank" => "Enter a whole number for the order of draw, like 100 (lower goes first).".into(),
        "count" => "Enter a whole number of licenses, like 2.".into(),
        other => format!("Enter a whole number for {}.", other.replace('_', " ")),
    }
}

fn number(field: &'static str, raw: &str) -> Result<i64, AppError> {
    raw.trim().parse::<i64>().map_err(|_| {
        let mut e = AppError::unprocessable("invalid_number", number_hint(field));
        e.field = Some(field);
        e
    })
}

/// Every problem of a license form: unreadable numbers, then the rules on the rest.
fn license_form_errors(form: &LicenseForm, substitutes: &[String]) -> FormErrors {
    let mut errors = FormErrors::default();
    let quantity = number("quantity", &form.quantity);
    let rank = match form.rank.trim() {
        "" => Ok(None),
        r => number("rank", r).map(Some),
    };
    for e in [quantity.as_ref().err(), rank.as_ref().err()]
        .into_iter()
        .flatten()
    {
        if let Some(field) = e.field {
            errors.push(field, e.message.clone());
        }
    }
    let rules = crate::domain::license_form::problems(RawLicense {
        tag: form.tag.trim(),
        name: &form.name,
        license_type: &form.license_type,
        quantity: quantity.unwrap_or(0),
        start: form.start.trim(),
        end: Some(form.end.trim()).filter(|e| !e.is_empty()),
        export_controlled: form.export_controlled.is_some(),
        substitutes,
        rank: rank.unwrap_or(None),
    });
    for (field, message) in rules {
        if errors.get(field).is_none() {
            errors.push(field, message);
        }
    }
    errors
}

async fn create_license(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<(String, String)>,
    form: web::Form<LicenseForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let (names, form) = (path.into_inner(), form.into_inner());
    if state.settings.role != ServerRole::Upstream {
        return Err(AppError::forbidden(
            "Licenses are created on the upstream and arrive here by sync.",
        )
        .into());
    }
    let substitutes: Vec<String> = form
        .substitutes
        .lines()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let rank = match form.rank.trim() {
        "" => Ok(None),
        r => number("rank", r).map(Some),
    };
    let spec = number("quantity", &form.quantity).and_then(|quantity| {
        let rank = rank?;
        LicenseSpec::validate(RawLicense {
            tag: form.tag.trim(),
            name: &form.name,
            license_type: &form.license_type,
            quantity,
            start: form.start.trim(),
            end: Some(form.end.trim()).filter(|e| !e.is_empty()),
            export_controlled: form.export_controlled.is_some(),
            substitutes: &substitutes,
            rank,
        })
        .map_err(AppError::from)
    });
    let (who, now, n) = (user.principal.clone(), state.clock.unix(), names.clone());
    let result = match spec {
        Ok(spec) => state
            .store
            .write(move |tx| {
                let (cap, va) = access::edit_va(tx, &who, &n.0, &n.1)?;
                service_licenses::create(tx, &cap, now, &va, &spec)?;
                Ok(spec.tag)
            })
            .await
            .map_err(AppError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(tag) => Ok(render::redirect_with_flash(
            &va_url(&names),
            &format!("License {tag} added."),
        )),
        // A form mistake: every field's problem at once, not only the first.
        Err(e) if e.field.is_some() && e.status == StatusCode::UNPROCESSABLE_ENTITY => {
            let x = Extra {
                license_errors: license_form_errors(&form, &substitutes),
                license: form,
                ..Extra::default()
            };
            render_page(
                &req,
                &state,
                &user,
                names,
                x,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => {
            let (mut x, status) = refusal(e, |x, errors| x.license_errors = errors)?;
            x.license = form;
            render_page(&req, &state, &user, names, x, status).await
        }
    }
}

async fn transfer_license(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<(String, String)>,
    form: web::Form<TransferForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let (names, form) = (path.into_inner(), form.into_inner());
    let (who, now, today, n) = (
        user.principal.clone(),
        state.clock.unix(),
        state.clock.now().date_naive(),
        names.clone(),
    );
    let f = form.clone();
    // Every field's error at once, before anything is written.
    let quantity = match form_checks::transfer(&form.tag, &form.quantity, &form.to_virtual_account)
    {
        Ok(q) => q,
        Err(errors) => {
            let status = errors.status();
            let x = Extra {
                transfer_errors: errors,
                transfer: form,
                ..Default::default()
            };
            return render_page(&req, &state, &user, names, x, status).await;
        }
    };
    let result = state
        .store
        .write(move |tx| {
            let (cap, from) = access::edit_va(tx, &who, &n.0, &n.1)?;
            let t = service_licenses::Transfer {
                tag: f.tag,
                quantity,
                to: f.to_virtual_account,
            };
            Ok(service_licenses::transfer(tx, &cap, now, today, &from, &t)?)
        })
        .await
        .map_err(AppError::from);
    match result {
        Ok(()) => Ok(render::redirect_with_flash(
            &va_url(&names),
            &format!(
                "Moved {} of {} to {}.",
                form.quantity.trim(),
                form.tag,
                form.to_virtual_account
            ),
        )),
        Err(mut e) => {
            // Moving more than the pool can spare is about the quantity typed: say it there.
            if e.code == "insufficient_licenses" && e.field.is_none() {
                e.field = Some("quantity");
            }
            let (mut x, status) = refusal(e, |x, errors| x.transfer_errors = errors)?;
            x.transfer = form;
            render_page(&req, &state, &user, names, x, status).await
        }
    }
}

async fn create_token(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<(String, String)>,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let (names, form) = (path.into_inner(), form.into_inner());
    // Every field's error at once, before anything is written.
    let parsed = match form_checks::token(&form.description, &form.expires_in_days, &form.max_uses)
    {
        Ok(p) => p,
        Err(errors) => {
            let status = errors.status();
            let x = Extra {
                token_errors: errors,
                token: form,
                ..Default::default()
            };
            return render_page(&req, &state, &user, names, x, status).await;
        }
    };
    let (who, now, n, f) = (
        user.principal.clone(),
        state.clock.unix(),
        names.clone(),
        form.clone(),
    );
    let (days, max_uses) = parsed;
    let result = state
        .store
        .write(move |tx| {
            let (cap, va) = access::edit_va(tx, &who, &n.0, &n.1)?;
            let new = service_tokens::NewToken {
                description: &f.description,
                expires_in_days: days,
                max_uses,
                export_controlled: f.export_controlled.is_some(),
            };
            Ok(service_tokens::create(tx, &cap, now, &va, new)?)
        })
        .await
        .map_err(AppError::from);
    match result {
        Ok((token, secret)) => {
            // The secret exists only now: kept in memory for the one GET that shows it.
            let kept = Secret {
                label: token.id,
                value: secret,
                detail: String::new(),
            };
            let id = state
                .shown_once
                .put(&user.token_hash, SecretKind::VaToken, kept);
            Ok(render::redirect(&shown_url(&va_url(&names), &id)))
        }
        Err(e) => {
            let (mut x, status) = refusal(e, |x, errors| x.token_errors = errors)?;
            x.token = form;
            render_page(&req, &state, &user, names, x, status).await
        }
    }
}

async fn revoke_token(
    state: State,
    user: SessionUser,
    path: web::Path<(String, String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let (a, va, id) = path.into_inner();
    let (who, now, n) = (
        user.principal.clone(),
        state.clock.unix(),
        (a.clone(), va.clone()),
    );
    let token_id = id.clone();
    state
        .store
        .write(move |tx| {
            let (cap, va) = access::edit_va(tx, &who, &n.0, &n.1)?;
            Ok(service_tokens::revoke(tx, &cap, now, &va, &token_id)?)
        })
        .await?;
    Ok(render::redirect_with_flash(
        &va_url(&(a, va)),
        &format!("Token {id} revoked."),
    ))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let base = "/accounts/{a}/virtual-accounts/{va}";
    cfg.route(base, web::get().to(show))
        .route(base, web::post().to(update))
        .route(&format!("{base}/delete"), web::post().to(delete))
        .route(&format!("{base}/licenses"), web::post().to(create_license))
        .route(
            &format!("{base}/licenses/transfer"),
            web::post().to(transfer_license),
        )
        .route(&format!("{base}/tokens"), web::post().to(create_token))
        .route(
            &format!("{base}/tokens/{{id}}/revoke"),
            web::post().to(revoke_token),
        );
}
