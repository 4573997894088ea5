//! `/accounts/{a}/instances`: the instances of every VA of an account in one list, and
//! `/instances`: of every account (system admins). Filters, sort, search, totals and
//! previous/next pages, over the same service as the API route.

use super::instances::InstanceRow;
use crate::domain::instance::InstanceStatus;
use crate::service::access;
use crate::service::instance_list::{self, Listed};
use crate::store::instance_list::SortBy;
use crate::web::auth::SessionUser;
use crate::web::calls::instance_list::{parse, Query};
use crate::web::render::{self, path_segment, Layout};
use crate::web::{PageError, State};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

pub struct Row {
    pub i: InstanceRow,
    pub account: String,
    pub account_url: String,
    pub va: String,
    pub va_url: String,
}

#[derive(Template)]
#[template(path = "instances/account.html")]
struct ListPage {
    layout: Layout,
    /// None on the all-accounts list.
    account: Option<(String, String)>,
    action: String,
    q: String,
    status: String,
    status_label: String,
    sort: String,
    virtual_account: String,
    statuses: Vec<(&'static str, String)>,
    sorts: Vec<(&'static str, &'static str)>,
    vas: Vec<String>,
    rows: Vec<Row>,
    total: i64,
    prev_url: Option<String>,
    next_url: Option<String>,
    searching: bool,
}

fn sort_label(s: SortBy) -> &'static str {
    match s {
        SortBy::Id => "instance id",
        SortBy::LastContact => "last contact (newest first)",
        SortBy::Pid => "PID",
        SortBy::Status => "status",
    }
}

fn va_url(account: &str, va: &str) -> String {
    format!(
        "/accounts/{}/virtual-accounts/{}",
        path_segment(account),
        path_segment(va)
    )
}

fn rows(listed: &Listed, now: i64) -> Vec<Row> {
    listed
        .items
        .iter()
        .map(|it| {
            let va = va_url(&it.va.account_name, &it.va.name);
            let mut i = InstanceRow::new(&it.instance, &va, now).reported(it.reported_by.as_ref());
            // Flags share the status column here: one that repeats the status goes.
            let status = i.status.clone();
            i.flags.retain(|(class, _)| *class != status);
            Row {
                i,
                account_url: format!("/accounts/{}", path_segment(&it.va.account_name)),
                account: it.va.account_name.clone(),
                va: it.va.name.clone(),
                va_url: va,
            }
        })
        .collect()
}

/// A link to this list with the current filters and one cursor.
fn link(action: &str, q: &Query, cursor: (&str, &str)) -> String {
    let mut parts = vec![];
    for (k, v) in [
        ("q", &q.q),
        ("status", &q.status),
        ("sort", &q.sort),
        ("virtual_account", &q.virtual_account),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            parts.push(format!("{k}={}", path_segment(v)));
        }
    }
    parts.push(format!("{}={}", cursor.0, path_segment(cursor.1)));
    format!("{action}?{}", parts.join("&"))
}

async fn show(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    account: Option<String>,
    q: Query,
) -> Result<HttpResponse, PageError> {
    let input = parse(&q)?;
    let who = user.principal.clone();
    let input_c = input.clone();
    let (listed, account, vas) = match account {
        Some(a) => {
            state
                .store
                .read(move |c| {
                    let cap = access::read_account(c, &who, &a)?;
                    let listed = instance_list::account(c, &cap, &input_c)?;
                    let vas = crate::store::instance_list::vas(c, Some(cap.account.id))?
                        .into_iter()
                        .map(|v| v.name)
                        .collect();
                    Ok((listed, Some(cap.account.name), vas))
                })
                .await?
        }
        None => {
            let cap = access::system_admin(&who)?;
            state
                .store
                .read(move |c| Ok((instance_list::all(c, &cap, &input_c)?, None, vec![])))
                .await?
        }
    };
    let action = match &account {
        Some(a) => format!("/accounts/{}/instances", path_segment(a)),
        None => "/instances".to_string(),
    };
    let now = state.clock.unix();
    let title = match &account {
        Some(a) => format!("Product instances of {a}"),
        None => "Product instances of every account".to_string(),
    };
    let view = ListPage {
        layout: Layout::new(&req, &user, "accounts", &title),
        rows: rows(&listed, now),
        total: listed.total,
        prev_url: listed
            .prev_before
            .as_deref()
            .map(|c| link(&action, &q, ("before", c))),
        next_url: listed
            .next_after
            .as_deref()
            .map(|c| link(&action, &q, ("after", c))),
        account: account.map(|a| (format!("/accounts/{}", path_segment(&a)), a)),
        q: input.filter.q.clone().unwrap_or_default(),
        status: input
            .filter
            .status
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        status_label: input
            .filter
            .status
            .map(|s| super::va_view::label(s.as_str()))
            .unwrap_or_default(),
        sort: input.sort.as_str().to_string(),
        virtual_account: input.virtual_account.clone().unwrap_or_default(),
        statuses: InstanceStatus::ALL
            .into_iter()
            .map(|s| (s.as_str(), super::va_view::label(s.as_str())))
            .collect(),
        sorts: SortBy::ALL
            .into_iter()
            .map(|s| (s.as_str(), sort_label(s)))
            .collect(),
        vas,
        searching: input.filter.q.is_some(),
        action,
    };
    Ok(render::page(&req, &view)?)
}

async fn account_list(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    q: web::Query<Query>,
) -> Result<HttpResponse, PageError> {
    show(req, state, user, Some(path.into_inner()), q.into_inner()).await
}

async fn all_list(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    q: web::Query<Query>,
) -> Result<HttpResponse, PageError> {
    show(req, state, user, None, q.into_inner()).await
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/accounts/{a}/instances", web::get().to(account_list))
        .route("/instances", web::get().to(all_list));
}
