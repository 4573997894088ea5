//! Product instances of a virtual account: list with search and paging, detail with
//! history, remove and transfer.

use super::accounts::CsrfForm;
use super::va_view::label;
use crate::clock;
use crate::domain::instance::InstanceStatus;
use crate::domain::lifecycle;
use crate::service::access;
use crate::service::instances as service_instances;
use crate::service::virtual_accounts as service_vas;
use crate::store::instances::{self, Instance};
use crate::store::page;
use crate::web::auth::SessionUser;
use crate::web::render::{self, path_segment, FormErrors, Layout};
use crate::web::{AppError, PageError, State};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

pub struct InstanceRow {
    pub id: String,
    pub url: String,
    pub pid: String,
    pub sn: String,
    pub product: String,
    pub hostname: String,
    pub status: String,
    pub status_label: String,
    pub last_contact: String,
    /// (css class, label) of what an admin should notice (lapsing authorization, ...).
    pub flags: Vec<(&'static str, &'static str)>,
    /// Upstream: "reported by satellite X, synced at T" for a satellite's instance.
    pub reported_by: Option<String>,
}

impl InstanceRow {
    pub fn new(i: &Instance, va_url: &str, now: i64) -> Self {
        let flags = lifecycle::flags(i.status, i.auth_expires_at, i.cert_expires_at, now)
            .into_iter()
            .map(|f| (f.as_str(), f.label()))
            .collect();
        Self {
            flags,
            id: i.id.clone(),
            url: format!("{va_url}/instances/{}", path_segment(&i.id)),
            pid: i.udi.pid.clone(),
            sn: i.udi.sn.clone(),
            product: format!("{} {}", i.product_name, i.product_version),
            hostname: i.hostname.clone().unwrap_or_default(),
            status_label: label(i.status.as_str()),
            status: i.status.as_str().to_string(),
            last_contact: clock::human(i.last_contact),
            reported_by: None,
        }
    }

    /// Marks an instance a satellite reported: read-only here, and its timers live on
    /// the satellite, so no lifecycle flags.
    pub fn reported(mut self, by: Option<&crate::store::reported::ReportedBy>) -> Self {
        if let Some(r) = by {
            self.flags.clear();
            self.reported_by = Some(format!(
                "reported by satellite {}, synced at {}",
                r.authority_id,
                clock::human(r.synced_at)
            ));
        }
        self
    }
}

fn va_url(a: &str, va: &str) -> String {
    format!(
        "/accounts/{}/virtual-accounts/{}",
        path_segment(a),
        path_segment(va)
    )
}

#[derive(Template)]
#[template(path = "instances/list.html")]
struct ListPage {
    layout: Layout,
    account: String,
    account_url: String,
    va: String,
    va_url: String,
    search: String,
    /// (value, label, selected) of the status filter.
    statuses: Vec<(&'static str, String, bool)>,
    status: String,
    instances: Vec<InstanceRow>,
    next_url: Option<String>,
}

#[derive(Deserialize)]
struct ListQuery {
    search: Option<String>,
    status: Option<String>,
    after: Option<String>,
}

async fn list(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<(String, String)>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let ((a, va), q) = (path.into_inner(), q.into_inner());
    let who = user.principal.clone();
    let search = q.search.clone().unwrap_or_default();
    // The filter is parsed at the edge: an unknown status is a bad link, not "no rows".
    let wanted = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            InstanceStatus::parse(s)
                .ok_or_else(|| AppError::bad_request(format!("Unknown instance status '{s}'.")))?,
        ),
    };
    let (account, va, page) = state
        .store
        .read(move |c| {
            let (cap, va) = access::read_va(c, &who, &a, &va)?;
            // With the instances satellites reported, on an upstream (read-only, marked).
            let page = crate::service::instance_list::va_filtered(
                c,
                &cap,
                va.id,
                q.search.as_deref(),
                wanted,
                q.after.as_deref(),
                page::DEFAULT_LIMIT,
            )?;
            Ok((cap.account, va, page))
        })
        .await?;
    let now = state.clock.unix();
    let status = wanted.map(InstanceStatus::as_str).unwrap_or_default();
    let base = va_url(&account.name, &va.name);
    let view = ListPage {
        layout: Layout::new(&req, &user, "accounts", "Product instances"),
        account_url: format!("/accounts/{}", path_segment(&account.name)),
        account: account.name,
        instances: page
            .0
            .iter()
            .map(|(i, by)| InstanceRow::new(i, &base, now).reported(by.as_ref()))
            .collect(),
        next_url: page.1.map(|a| {
            format!(
                "{base}/instances?after={}&search={}&status={}",
                path_segment(&a),
                path_segment(&search),
                status
            )
        }),
        statuses: InstanceStatus::ALL
            .into_iter()
            .map(|s| (s.as_str(), label(s.as_str()), s.as_str() == status))
            .collect(),
        status: status.to_string(),
        va: va.name,
        va_url: base,
        search,
    };
    Ok(render::page(&req, &view)?)
}

pub struct HistoryRow {
    pub at: String,
    pub status: String,
    pub note: String,
}

#[derive(Template)]
#[template(path = "instances/show.html")]
struct ShowPage {
    layout: Layout,
    account: String,
    account_url: String,
    va_url: String,
    va: String,
    i: InstanceRow,
    uuid: String,
    export_controlled: bool,
    registered: String,
    cert_renew: String,
    cert_expires: String,
    auth_renew: String,
    auth_expires: String,
    /// Each license it reports: (tag, count, status, status label, reason in words).
    usage: Vec<(String, i64, &'static str, String, String)>,
    history: Vec<HistoryRow>,
    can_edit: bool,
    other_vas: Vec<String>,
    errors: FormErrors,
    problem: Option<String>,
    /// The live reservation its UDI holds: (url, id, state, what it reserves).
    reservation: Option<(String, String, String, String)>,
    /// The instance's newest export key per tag: (tag, state, reason).
    export_keys: Vec<(String, &'static str, String)>,
}

async fn show_page(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    names: (String, String, String),
    errors: FormErrors,
    problem: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let who = user.principal.clone();
    let today = state.clock.now().date_naive();
    let (account, va, inst, usage, history, other_vas) = state
        .store
        .read(move |c| {
            let (cap, va) = access::read_va(c, &who, &names.0, &names.1)?;
            let inst = instances::find_in_va(c, &va, &names.2)?;
            let account = cap.account.clone();
            let usage = crate::service::instance_explain::licenses_of(
                c,
                &cap,
                &va,
                &inst.id,
                inst.export_controlled,
                today,
            )?;
            let history = instances::history(c, &inst.id)?;
            let others: Vec<String> = service_vas::list(c, &cap, None, 500)?
                .items
                .into_iter()
                .filter(|v| v.id != va.id)
                .map(|v| v.name)
                .collect();
            let held = crate::store::reservations::live_for_udi(c, &inst.udi.pid, &inst.udi.sn)?
                .map(|r| {
                    let what = if r.universal {
                        "universal (every feature)".to_string()
                    } else {
                        crate::store::reservations::licenses_of(c, &r.id)
                            .unwrap_or_default()
                            .iter()
                            .map(|h| format!("{} × {}", h.tag, h.count))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    let url = format!(
                        "/accounts/{}/reservations/{}",
                        path_segment(&account.name),
                        path_segment(&r.id)
                    );
                    (url, r.id, r.state.as_str().to_string(), what)
                });
            Ok((account, va, inst, usage, history, (others, held)))
        })
        .await?;
    let (other_vas, reservation) = other_vas;
    let (who, a, id) = (
        user.principal.clone(),
        account.name.clone(),
        inst.id.clone(),
    );
    let export_keys = state
        .store
        .read(move |c| {
            let cap = crate::service::access::read_account(c, &who, &a)?;
            Ok(crate::service::export_keys::for_instance(c, &cap, &id)?)
        })
        .await?
        .into_iter()
        .map(|k| (k.tag, k.state.as_str(), k.reason.unwrap_or_default()))
        .collect();
    let base = va_url(&account.name, &va.name);
    let opt = |t: Option<i64>| t.map(clock::human).unwrap_or_else(|| "—".into());
    let view = ShowPage {
        layout: Layout::new(req, user, "accounts", &inst.id),
        can_edit: user.principal.can_edit_account(account.id),
        account_url: format!("/accounts/{}", path_segment(&account.name)),
        account: account.name,
        va: va.name,
        uuid: inst.udi.uuid.clone().unwrap_or_default(),
        export_controlled: inst.export_controlled,
        registered: clock::human(inst.registered_at),
        cert_renew: clock::human(inst.cert_renew_after),
        cert_expires: clock::human(inst.cert_expires_at),
        auth_renew: opt(inst.auth_renew_after),
        auth_expires: opt(inst.auth_expires_at),
        i: InstanceRow::new(&inst, &base, state.clock.unix()),
        va_url: base,
        usage: usage
            .into_iter()
            .map(|r| {
                let status = r.status.as_str();
                (r.tag, r.count, status, label(status), r.reason)
            })
            .collect(),
        history: history
            .into_iter()
            .map(|(at, status, note)| HistoryRow {
                at: clock::human(at),
                status: label(&status),
                note,
            })
            .collect(),
        other_vas,
        errors,
        problem,
        reservation,
        export_keys,
    };
    Ok(render::page_with_status(req, status, &view)?)
}

async fn show(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, PageError> {
    // An instance a satellite reported (upstream) has its own read-only page.
    if let Some(page) = super::reported_instance::page(&req, &state, &user, &path).await? {
        return Ok(page);
    }
    show_page(
        &req,
        &state,
        &user,
        path.into_inner(),
        FormErrors::default(),
        None,
        StatusCode::OK,
    )
    .await
}

async fn remove(
    state: State,
    user: SessionUser,
    path: web::Path<(String, String, String)>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let names = path.into_inner();
    let (who, now, n) = (user.principal.clone(), state.clock.unix(), names.clone());
    state
        .store
        .write(move |tx| {
            let (cap, va) = access::edit_va(tx, &who, &n.0, &n.1)?;
            Ok(service_instances::remove(tx, &cap, now, &va, &n.2)?)
        })
        .await?;
    state.agent_keys.forget(&names.2);
    Ok(render::redirect_with_flash(
        &format!("{}/instances", va_url(&names.0, &names.1)),
        &format!("Instance {} removed; its licenses are free again.", names.2),
    ))
}

#[derive(Deserialize)]
struct TransferForm {
    csrf: String,
    to_virtual_account: String,
}

async fn transfer(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<(String, String, String)>,
    form: web::Form<TransferForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let (names, form) = (path.into_inner(), form.into_inner());
    let (who, now, n) = (user.principal.clone(), state.clock.unix(), names.clone());
    let to = form.to_virtual_account.clone();
    let result = state
        .store
        .write(move |tx| {
            let (cap, from) = access::edit_va(tx, &who, &n.0, &n.1)?;
            Ok(service_instances::transfer(
                tx, &cap, now, &from, &n.2, &to,
            )?)
        })
        .await;
    match result.map_err(AppError::from) {
        Ok(to) => Ok(render::redirect_with_flash(
            &format!(
                "{}/instances/{}",
                va_url(&names.0, &to.name),
                path_segment(&names.2)
            ),
            &format!("Instance moved to {}.", to.name),
        )),
        Err(e) if e.status == StatusCode::CONFLICT => {
            let status = e.status;
            show_page(
                &req,
                &state,
                &user,
                names,
                FormErrors::default(),
                Some(e.message),
                status,
            )
            .await
        }
        Err(e) => {
            let errors = FormErrors::from_error(e)?;
            let status = errors.status();
            show_page(&req, &state, &user, names, errors, None, status).await
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let base = "/accounts/{a}/virtual-accounts/{va}/instances";
    cfg.route(base, web::get().to(list))
        .route(&format!("{base}/{{id}}"), web::get().to(show))
        .route(&format!("{base}/{{id}}/remove"), web::post().to(remove))
        .route(&format!("{base}/{{id}}/transfer"), web::post().to(transfer));
}
