//! The event log page, newest first, with filters.

use crate::clock;
use crate::store::events::{self, EventFilter};
use crate::store::page;
use crate::web::auth::SessionUser;
use crate::web::render::{self, path_segment, Layout};
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
    next_url: Option<String>,
}

#[derive(Deserialize)]
struct EventQuery {
    after: Option<i64>,
    actor: Option<String>,
    action: Option<String>,
    account: Option<String>,
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
    let filter = EventFilter {
        actor: non_empty(&q.actor),
        action: non_empty(&q.action),
        account: non_empty(&q.account),
    };
    let (who, f) = (user.principal.clone(), filter.clone());
    let (page, actions) = state
        .store
        .read(move |c| {
            let page = events::list(c, &who, &f, q.after, page::DEFAULT_LIMIT)?;
            Ok((page, events::actions(c)?))
        })
        .await?;
    let query_tail = format!(
        "actor={}&action={}&account={}",
        path_segment(filter.actor.as_deref().unwrap_or("")),
        path_segment(filter.action.as_deref().unwrap_or("")),
        path_segment(filter.account.as_deref().unwrap_or(""))
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
        filter_actor: filter.actor.unwrap_or_default(),
        filter_action: filter.action.unwrap_or_default(),
        filter_account: filter.account.unwrap_or_default(),
        next_url: page
            .next_after
            .map(|a| format!("/events?after={a}&{query_tail}")),
    };
    Ok(render::page(&req, &view)?)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/events", web::get().to(list));
}
