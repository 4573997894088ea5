//! The event log page, newest first, with filters.

use crate::clock;
use crate::service::access::visible;
use crate::service::events::{self as service_events, RawFilter};
use crate::store::events;
use crate::store::page;
use crate::web::auth::SessionUser;
use crate::web::render::{self, path_segment, FormErrors, Layout};
use crate::web::{PageError, State};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

pub struct EventView {
    pub at: String,
    pub actor: String,
    pub action: String,
    pub account: String,
    pub target: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "events/list.html")]
struct ListPage {
    layout: Layout,
    events: Vec<EventView>,
    actions: Vec<String>,
    filter_actor: String,
    filter_action: String,
    filter_account: String,
    filter_from: String,
    filter_to: String,
    errors: FormErrors,
    csv_url: String,
    next_url: Option<String>,
}

#[derive(Deserialize)]
struct EventQuery {
    after: Option<i64>,
    actor: Option<String>,
    action: Option<String>,
    account: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

fn raw(q: &EventQuery) -> RawFilter {
    RawFilter {
        actor: q.actor.clone(),
        action: q.action.clone(),
        account: q.account.clone(),
        from: q.from.clone(),
        to: q.to.clone(),
    }
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

async fn list(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    q: web::Query<EventQuery>,
) -> Result<HttpResponse, PageError> {
    let q = q.into_inner();
    let (filter, errors) = match service_events::filter(&raw(&q)) {
        Ok(f) => (Some(f), FormErrors::default()),
        Err(e) => (None, FormErrors::from_error(e.into())?),
    };
    let (who, f) = (user.principal.clone(), filter.clone());
    let (page, actions) = state
        .store
        .read(move |c| {
            let page = match &f {
                Some(f) => service_events::list(c, visible(&who), f, q.after, page::DEFAULT_LIMIT)?,
                None => page::Page {
                    items: vec![],
                    next_after: None,
                },
            };
            Ok((page, events::actions(c)?))
        })
        .await?;
    let query_tail = format!(
        "actor={}&action={}&account={}&from={}&to={}",
        path_segment(non_empty(&q.actor).as_deref().unwrap_or("")),
        path_segment(non_empty(&q.action).as_deref().unwrap_or("")),
        path_segment(non_empty(&q.account).as_deref().unwrap_or("")),
        path_segment(non_empty(&q.from).as_deref().unwrap_or("")),
        path_segment(non_empty(&q.to).as_deref().unwrap_or(""))
    );
    let view = ListPage {
        layout: Layout::new(&req, &user, "events", "Events"),
        events: page
            .items
            .iter()
            .map(|e| EventView {
                at: clock::human(e.at),
                actor: e.actor.clone(),
                action: e.action.clone(),
                account: e.account.clone().unwrap_or_default(),
                target: e.target.clone(),
                detail: if e.detail == "{}" {
                    String::new()
                } else {
                    e.detail.clone()
                },
            })
            .collect(),
        actions,
        filter_actor: non_empty(&q.actor).unwrap_or_default(),
        filter_action: non_empty(&q.action).unwrap_or_default(),
        filter_account: non_empty(&q.account).unwrap_or_default(),
        filter_from: non_empty(&q.from).unwrap_or_default(),
        filter_to: non_empty(&q.to).unwrap_or_default(),
        csv_url: format!("/events.csv?{query_tail}"),
        errors,
        next_url: page
            .next_after
            .map(|a| format!("/events?after={a}&{query_tail}")),
    };
    let status = if view.errors.is_empty() {
        actix_web::http::StatusCode::OK
    } else {
        view.errors.status()
    };
    Ok(render::page_with_status(&req, status, &view)?)
}

/// The filtered log as CSV, every matching event, with the session's scope.
async fn csv(
    state: State,
    user: SessionUser,
    q: web::Query<EventQuery>,
) -> Result<HttpResponse, PageError> {
    let filter = service_events::filter(&raw(&q)).map_err(crate::web::AppError::from)?;
    Ok(crate::web::exports::events_csv(
        &state,
        user.principal.clone(),
        filter,
    ))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/events", web::get().to(list))
        .route("/events.csv", web::get().to(csv));
}
