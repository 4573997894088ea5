//! The export keys page of an account: pending requests first, with approve and deny
//! buttons for those who may change the account.

use crate::clock;
use crate::domain::export_key::{DenyReason, ExportKeyState};
use crate::service::export_keys;
use crate::store::export_keys::ExportKey;
use crate::web::auth::SessionUser;
use crate::web::render::{self, path_segment, Layout};
use crate::web::{calls, PageError, State};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

/// How many keys the page shows (pending ones first).
const SHOWN: u32 = 200;

struct KeyView {
    id: String,
    requested: String,
    decided: Option<String>,
    virtual_account: String,
    instance_id: String,
    /// Only while the instance is still there.
    instance_url: Option<String>,
    pid: String,
    sn: String,
    tag: String,
    state: &'static str,
    reason: String,
}

impl KeyView {
    fn new(account: &str, k: &ExportKey) -> Self {
        let gone = matches!(
            k.state,
            ExportKeyState::Returned | ExportKeyState::Cancelled
        ) && k
            .reason
            .as_deref()
            .is_some_and(|r| r.starts_with("Released"));
        Self {
            id: k.id.clone(),
            requested: clock::human(k.requested_at),
            decided: k.decided_at.map(clock::human),
            virtual_account: k.virtual_account.clone(),
            instance_id: k.instance_id.clone(),
            instance_url: (!gone).then(|| {
                format!(
                    "/accounts/{}/virtual-accounts/{}/instances/{}",
                    path_segment(account),
                    path_segment(&k.virtual_account),
                    path_segment(&k.instance_id)
                )
            }),
            pid: k.udi.pid.clone(),
            sn: k.udi.sn.clone(),
            tag: k.tag.clone(),
            state: k.state.as_str(),
            reason: k.reason.clone().unwrap_or_default(),
        }
    }
}

#[derive(Template)]
#[template(path = "export_keys/list.html")]
struct ListPage {
    layout: Layout,
    account: String,
    account_url: String,
    keys: Vec<KeyView>,
    can_edit: bool,
    problem: Option<String>,
}

async fn render_list(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    name: String,
    problem: Option<String>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let (account, keys) = calls::read_account(state, &user.principal, &name, |c, cap, _| {
        Ok((cap.account.clone(), export_keys::overview(c, cap, SHOWN)?))
    })
    .await?;
    let page = ListPage {
        layout: Layout::new(req, user, "accounts", "Export keys"),
        account_url: format!("/accounts/{}", path_segment(&account.name)),
        keys: keys
            .iter()
            .map(|k| KeyView::new(&account.name, k))
            .collect(),
        can_edit: user.principal.can_edit_account(account.id),
        account: account.name,
        problem,
    };
    Ok(render::page_with_status(req, status, &page)?)
}

async fn list(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    render_list(&req, &state, &user, path.into_inner(), None, StatusCode::OK).await
}

#[derive(Deserialize)]
struct DecisionForm {
    csrf: String,
    #[serde(default)]
    reason: String,
}

#[derive(Clone, Copy)]
enum Verdict {
    Approve,
    Deny,
}

async fn decide(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<(String, String)>,
    form: web::Form<DecisionForm>,
    verdict: Verdict,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let ((a, id), reason) = (path.into_inner(), form.into_inner().reason);
    let reason = DenyReason::parse(Some(&reason));
    let result = calls::edit_account(
        &state,
        &user.principal,
        &a,
        move |tx, cap, now| match verdict {
            Verdict::Approve => export_keys::approve(tx, cap, now.unix, now.today, &id),
            Verdict::Deny => export_keys::deny(tx, cap, now.unix, &id, &reason?),
        },
    )
    .await;
    match result {
        Ok(key) => Ok(render::redirect_with_flash(
            &format!("/accounts/{}/export-keys", path_segment(&a)),
            &format!(
                "Export key for {} on {} {}.",
                key.tag,
                key.udi.sn,
                key.state.as_str()
            ),
        )),
        // A request decided meanwhile, or one that can no longer be granted: say why.
        Err(e)
            if matches!(
                e.status,
                StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY | StatusCode::FORBIDDEN
            ) =>
        {
            render_list(&req, &state, &user, a, Some(e.message), e.status).await
        }
        Err(e) => Err(e.into()),
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let base = "/accounts/{a}/export-keys";
    cfg.route(base, web::get().to(list))
        .route(
            &format!("{base}/{{id}}/approve"),
            web::post().to(|req, state, user, path, form| {
                decide(req, state, user, path, form, Verdict::Approve)
            }),
        )
        .route(
            &format!("{base}/{{id}}/deny"),
            web::post().to(|req, state, user, path, form| {
                decide(req, state, user, path, form, Verdict::Deny)
            }),
        );
}
