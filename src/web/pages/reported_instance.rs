//! Upstream: the read-only page of an instance a satellite reported in its sync requests
//! (CONTRACT section 6). It shows what the satellite sent and who sent it when; the
//! instance is managed on the satellite, so there is nothing to change here.

use super::instances::InstanceRow;
use crate::clock;
use crate::service::{access, instance_list};
use crate::web::auth::SessionUser;
use crate::web::render::{self, path_segment, Layout};
use crate::web::{PageError, State};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

#[derive(Template)]
#[template(path = "instances/reported.html")]
struct ReportedPage {
    layout: Layout,
    account: String,
    account_url: String,
    va: String,
    va_url: String,
    i: InstanceRow,
    authority_id: String,
    synced_at: String,
    registered: String,
    export_controlled: bool,
    usage: Vec<(String, i64)>,
}

/// The page when `{a}/{va}/{id}` names a satellite-reported instance; None otherwise
/// (the caller shows the instance registered here, or its not-found page).
pub async fn page(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    path: &web::Path<(String, String, String)>,
) -> Result<Option<HttpResponse>, PageError> {
    let who = user.principal.clone();
    let (a, va, id) = path.as_ref().clone();
    let found = state
        .store
        .read(move |c| {
            let cap = access::read_account(c, &who, &a)?;
            Ok(instance_list::reported_instance(c, &cap, &va, &id)?)
        })
        .await;
    // Anything not found falls through to the regular page, which says so in its words.
    let Ok(Some(item)) = found else {
        return Ok(None);
    };
    let Some(by) = item.reported_by.clone() else {
        return Ok(None);
    };
    let va_url = format!(
        "/accounts/{}/virtual-accounts/{}",
        path_segment(&item.va.account_name),
        path_segment(&item.va.name)
    );
    let view = ReportedPage {
        layout: Layout::new(req, user, "accounts", &item.instance.id),
        account_url: format!("/accounts/{}", path_segment(&item.va.account_name)),
        account: item.va.account_name.clone(),
        va: item.va.name.clone(),
        i: InstanceRow::new(&item.instance, &va_url, state.clock.unix()).reported(Some(&by)),
        va_url,
        authority_id: by.authority_id,
        synced_at: clock::human(by.synced_at),
        registered: clock::human(item.instance.registered_at),
        export_controlled: item.instance.export_controlled,
        usage: item.usage,
    };
    Ok(Some(render::page(req, &view)?))
}
