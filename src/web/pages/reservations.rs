//! Reservation pages of an account: the list (filter by state, search by UDI or request
//! code), the wizard (request code -> VA -> counts or universal -> export
//! acknowledgement -> authorization code), and one reservation's page with its code,
//! the `.xml` download and the confirm, update, cancel, remove and return forms. Every
//! change goes through `service::reservations`, as the API's do.

use crate::clock;
use crate::domain::reservation as rules;
use crate::service::reservations::{self as svc, Detail, Grant, NewReservation, Update};
use crate::service::{access, ServiceError};
use crate::store::reservations::Filter;
use crate::store::{accounts, licenses, page, StoreError};
use crate::web::auth::SessionUser;
use crate::web::render::{self, path_segment, FormErrors, Layout};
use crate::web::{AppError, PageError, State};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

fn store_err(e: ServiceError) -> StoreError {
    e.into()
}

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

// ---------------------------------------------------------------------------------------
// List

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
struct ListQuery {
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
    let who = user.principal.clone();
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
    let (cap, page) = state
        .store
        .read(move |c| {
            let cap = access::read_account(c, &who, &a).map_err(store_err)?;
            let page = svc::list(c, &cap, &filter, after.as_deref(), page::DEFAULT_LIMIT)
                .map_err(store_err)?;
            Ok((cap, page))
        })
        .await?;
    let base = base_url(&cap.account.name);
    let (st, search) = (filter_state.unwrap_or_default(), q.q.unwrap_or_default());
    let view = ListPage {
        layout: Layout::new(req, user, "accounts", "Reservations"),
        account_url: format!("/accounts/{}", path_segment(&cap.account.name)),
        can_edit: user.principal.can_edit_account(cap.account.id),
        account: cap.account.name.clone(),
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

async fn list(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let none = (String::new(), FormErrors::default(), None, StatusCode::OK);
    list_page(&req, &state, &user, path.into_inner(), q.into_inner(), none).await
}

async fn return_code(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    user.check_csrf(form_value(&form, "csrf"))?;
    let a = path.into_inner();
    let raw = form_value(&form, "return_code").to_string();
    let (who, now, name) = (user.principal.clone(), state.clock.unix(), a.clone());
    let result = match rules::parse_return_code(&raw) {
        Ok(code) => state
            .store
            .write(move |tx| {
                let cap = access::edit_account(tx, &who, &name).map_err(store_err)?;
                svc::return_code(tx, &cap, now, &code).map_err(store_err)
            })
            .await
            .map_err(AppError::from),
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

// ---------------------------------------------------------------------------------------
// Wizard

#[derive(Template)]
#[template(path = "reservations/new.html")]
struct NewPage {
    layout: Layout,
    account: String,
    account_url: String,
    base: String,
    step: u8,
    request_code: String,
    udi: String,
    vas: Vec<String>,
    va: String,
    choices: Vec<Choice>,
    universal: bool,
    any_export: bool,
    acknowledged: bool,
    errors: FormErrors,
    problem: Option<String>,
}

/// What the wizard shows on a step.
struct WizardState {
    step: u8,
    request_code: String,
    va: String,
    counts: Vec<(String, String)>,
    universal: bool,
    acknowledged: bool,
    errors: FormErrors,
    problem: Option<String>,
    status: StatusCode,
}

impl WizardState {
    fn start() -> Self {
        WizardState {
            step: 1,
            request_code: String::new(),
            va: String::new(),
            counts: vec![],
            universal: false,
            acknowledged: false,
            errors: FormErrors::default(),
            problem: None,
            status: StatusCode::OK,
        }
    }
}

async fn wizard_page(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    a: String,
    w: WizardState,
) -> Result<HttpResponse, PageError> {
    let who = user.principal.clone();
    let today = state.clock.now().date_naive();
    let va_name = w.va.clone();
    let step = w.step;
    let (cap, vas, pools) = state
        .store
        .read(move |c| {
            let cap = access::edit_account(c, &who, &a).map_err(store_err)?;
            let vas: Vec<String> = accounts::list_vas(c, &cap.account, None, 500)?
                .items
                .into_iter()
                .map(|v| v.name)
                .collect();
            let mut pools = vec![];
            if step == 2 {
                let va = accounts::find_va(c, &cap.account, &va_name)?;
                let (ls, evaluation) = licenses::evaluate(c, va.id, today)?;
                for l in ls {
                    let available = evaluation.pools.get(&l.spec.tag).map_or(0, |p| p.available);
                    pools.push((l.spec.tag, l.spec.name, available, l.spec.export_controlled));
                }
            }
            Ok((cap, vas, pools))
        })
        .await?;
    let udi = rules::parse_request_code(&w.request_code)
        .map(|r| format!("P:{},S:{}", r.pid, r.sn))
        .unwrap_or_default();
    let choices: Vec<Choice> = pools
        .into_iter()
        .map(|(tag, name, available, export_controlled)| Choice {
            count: w
                .counts
                .iter()
                .find(|(t, _)| *t == tag)
                .map(|(_, c)| c.clone())
                .unwrap_or_default(),
            tag,
            name,
            available,
            export_controlled,
        })
        .collect();
    let view = NewPage {
        layout: Layout::new(req, user, "accounts", "New reservation"),
        account_url: format!("/accounts/{}", path_segment(&cap.account.name)),
        base: base_url(&cap.account.name),
        account: cap.account.name,
        step: w.step,
        request_code: w.request_code,
        udi,
        va: if w.va.is_empty() {
            vas.first().cloned().unwrap_or_default()
        } else {
            w.va
        },
        vas,
        any_export: choices.iter().any(|c| c.export_controlled),
        choices,
        universal: w.universal,
        acknowledged: w.acknowledged,
        errors: w.errors,
        problem: w.problem,
    };
    Ok(render::page_with_status(req, w.status, &view)?)
}

async fn new_form(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    wizard_page(&req, &state, &user, path.into_inner(), WizardState::start()).await
}

/// Step 1 -> 2: the request code must pass its checksum and the VA must exist.
async fn new_step(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    user.check_csrf(form_value(&form, "csrf"))?;
    let a = path.into_inner();
    let mut w = WizardState::start();
    w.request_code = form_value(&form, "request_code").trim().to_string();
    w.va = form_value(&form, "virtual_account").to_string();
    w.universal = form_value(&form, "universal") == "on";
    if let Err(e) = rules::parse_request_code(&w.request_code) {
        let (errors, problem, status) = refusal(e.into())?;
        (w.errors, w.problem, w.status) = (errors, problem, status);
        return wizard_page(&req, &state, &user, a, w).await;
    }
    w.step = 2;
    wizard_page(&req, &state, &user, a, w).await
}

async fn create(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    user.check_csrf(form_value(&form, "csrf"))?;
    let a = path.into_inner();
    let mut w = WizardState::start();
    w.step = 2;
    w.request_code = form_value(&form, "request_code").to_string();
    w.va = form_value(&form, "virtual_account").to_string();
    w.universal = form_value(&form, "kind") == "universal";
    w.acknowledged = form_value(&form, "export_acknowledged") == "on";
    w.counts = form
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("count:").map(|t| (t.to_string(), v.clone())))
        .collect();
    let parsed = (|| -> Result<NewReservation, AppError> {
        let request = rules::parse_request_code(&w.request_code)?;
        let grant = if w.universal {
            Grant::Universal
        } else {
            let counts: Vec<(String, i64)> = form_counts(&form)?
                .into_iter()
                .filter(|(_, n)| *n != 0)
                .collect();
            if counts.is_empty() {
                let mut e = AppError::unprocessable(
                    "invalid_licenses",
                    "Enter a count for at least one license, or choose universal.",
                );
                e.field = Some("licenses");
                return Err(e);
            }
            Grant::Specific(svc::counts(counts, 1)?)
        };
        Ok(NewReservation {
            request,
            virtual_account: w.va.clone(),
            grant,
            export_acknowledged: w.acknowledged,
        })
    })();
    let result = match parsed {
        Ok(input) => {
            let (who, now, today) = (
                user.principal.clone(),
                state.clock.unix(),
                state.clock.now().date_naive(),
            );
            let (authority, name) = (state.authority.clone(), a.clone());
            state
                .store
                .write(move |tx| {
                    let cap = access::edit_account(tx, &who, &name).map_err(store_err)?;
                    svc::create(tx, &cap, now, today, &authority, input).map_err(store_err)
                })
                .await
                .map_err(AppError::from)
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(d) => Ok(render::redirect_with_flash(
            &format!("{}/{}", base_url(&a), path_segment(&d.reservation.id)),
            "Reservation created. Give the product its authorization code, then enter the confirmation code it prints.",
        )),
        Err(e) => {
            let (errors, problem, status) = refusal(e)?;
            (w.errors, w.problem, w.status) = (errors, problem, status);
            wizard_page(&req, &state, &user, a, w).await
        }
    }
}

// ---------------------------------------------------------------------------------------
// One reservation

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
struct ShowExtra {
    confirmation_code: String,
    reason: String,
    counts: Vec<(String, String)>,
    errors: FormErrors,
    problem: Option<String>,
}

async fn show_page(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    (a, id): (String, String),
    x: ShowExtra,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let who = user.principal.clone();
    let today = state.clock.now().date_naive();
    let (cap, d, pools) = state
        .store
        .read(move |c| {
            let cap = access::read_account(c, &who, &a).map_err(store_err)?;
            let d = svc::get(c, &cap, &id).map_err(store_err)?;
            let (ls, evaluation) = licenses::evaluate(c, d.reservation.va_id, today)?;
            let pools: Vec<_> = ls
                .into_iter()
                .map(|l| {
                    let available = evaluation.pools.get(&l.spec.tag).map_or(0, |p| p.available);
                    (l.spec.tag, l.spec.name, available, l.spec.export_controlled)
                })
                .collect();
            Ok((cap, d, pools))
        })
        .await?;
    let base = base_url(&cap.account.name);
    let r = &d.reservation;
    let can_edit = user.principal.can_edit_account(cap.account.id);
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
        account_url: format!("/accounts/{}", path_segment(&cap.account.name)),
        account: cap.account.name.clone(),
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
        ShowExtra::default(),
        StatusCode::OK,
    )
    .await
}

/// The authorization code as a file the admin carries to the product.
async fn xml(
    state: State,
    user: SessionUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, PageError> {
    let (a, id) = path.into_inner();
    let who = user.principal.clone();
    let d = state
        .store
        .read(move |c| {
            let cap = access::read_account(c, &who, &a).map_err(store_err)?;
            svc::get(c, &cap, &id).map_err(store_err)
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

/// What a change on the reservation page does, given the form.
enum Change {
    Confirm(String),
    Update(Vec<(String, i64)>, bool),
    Cancel,
    Remove(String),
}

async fn change(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    names: (String, String),
    form: Vec<(String, String)>,
    change: Result<Change, AppError>,
    done: &'static str,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(form_value(&form, "csrf"))?;
    let mut x = ShowExtra {
        confirmation_code: form_value(&form, "confirmation_code").to_string(),
        reason: form_value(&form, "reason").to_string(),
        counts: form
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("count:").map(|t| (t.to_string(), v.clone())))
            .collect(),
        ..ShowExtra::default()
    };
    let (who, now, today) = (
        user.principal.clone(),
        state.clock.unix(),
        state.clock.now().date_naive(),
    );
    let (authority, n) = (state.authority.clone(), names.clone());
    let result = match change {
        Ok(c) => state
            .store
            .write(move |tx| {
                let cap = access::edit_account(tx, &who, &n.0).map_err(store_err)?;
                let id = n.1.as_str();
                match c {
                    Change::Confirm(code) => svc::confirm(tx, &cap, now, id, &code),
                    Change::Update(counts, ack) => svc::counts(counts, 0).and_then(|counts| {
                        svc::update(
                            tx,
                            &cap,
                            now,
                            today,
                            &authority,
                            id,
                            Update {
                                counts,
                                export_acknowledged: ack,
                            },
                        )
                    }),
                    Change::Cancel => svc::cancel(tx, &cap, now, id),
                    Change::Remove(reason) => access::system_admin(&who)
                        .and_then(|admin| svc::remove(tx, &cap, &admin, now, id, &reason)),
                }
                .map_err(store_err)
            })
            .await
            .map_err(AppError::from),
        Err(e) => Err(e),
    };
    match result {
        Ok(d) => Ok(render::redirect_with_flash(
            &format!("{}/{}", base_url(&names.0), path_segment(&d.reservation.id)),
            done,
        )),
        Err(e) => {
            let (errors, problem, status) = refusal(e)?;
            (x.errors, x.problem) = (errors, problem);
            show_page(&req, &state, &user, names, x, status).await
        }
    }
}

async fn confirm(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<(String, String)>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let c = Change::Confirm(form_value(&form, "confirmation_code").to_string());
    let msg = "Confirmed: the product has installed its authorization code.";
    change(req, state, user, path.into_inner(), form, Ok(c), msg).await
}

async fn update(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<(String, String)>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let ack = form_value(&form, "export_acknowledged") == "on";
    let c = form_counts(&form).map(|counts| Change::Update(counts, ack));
    let msg =
        "Updated: give the product the new authorization code, then enter its confirmation code.";
    change(req, state, user, path.into_inner(), form, c, msg).await
}

async fn cancel(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<(String, String)>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let msg = "Reservation cancelled: its licenses are back in the pool.";
    change(
        req,
        state,
        user,
        path.into_inner(),
        form,
        Ok(Change::Cancel),
        msg,
    )
    .await
}

async fn remove(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<(String, String)>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let form = form.into_inner();
    let c = Change::Remove(form_value(&form, "reason").to_string());
    let msg = "Reservation removed: its licenses are back in the pool.";
    change(req, state, user, path.into_inner(), form, Ok(c), msg).await
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let base = "/accounts/{a}/reservations";
    cfg.route(base, web::get().to(list))
        .route(base, web::post().to(create))
        .route(&format!("{base}/new"), web::get().to(new_form))
        .route(&format!("{base}/new"), web::post().to(new_step))
        .route(&format!("{base}/return"), web::post().to(return_code))
        .route(&format!("{base}/{{id}}"), web::get().to(show))
        .route(
            &format!("{base}/{{id}}/authorization.xml"),
            web::get().to(xml),
        )
        .route(&format!("{base}/{{id}}/confirm"), web::post().to(confirm))
        .route(&format!("{base}/{{id}}/update"), web::post().to(update))
        .route(&format!("{base}/{{id}}/cancel"), web::post().to(cancel))
        .route(&format!("{base}/{{id}}/remove"), web::post().to(remove));
}
