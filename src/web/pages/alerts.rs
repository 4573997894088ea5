//! The alerts page: each alert links to what it is about and can be acknowledged (it stays
//! listed, marked, until its cause clears).

use super::accounts::CsrfForm;
use crate::domain::alerts::AlertKind;
use crate::service::access;
use crate::service::alerts::{self as service, AlertOut, DateFilter};
use crate::web::auth::SessionUser;
use crate::web::render::{self, path_segment, Layout};
use crate::web::{PageError, State};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

pub struct AlertView {
    pub id: String,
    pub severity: &'static str,
    pub kind: String,
    pub account: String,
    pub subject: String,
    pub message: String,
    pub raised: String,
    /// "by WHO, WHEN" once acknowledged.
    pub acknowledged: Option<String>,
    pub link: String,
    pub ack_url: String,
}

/// The page an alert is about: its instance, its VA, or the account's sync page.
fn link(a: &AlertOut) -> String {
    let account = format!("/accounts/{}", path_segment(&a.account));
    let va = a
        .alert
        .virtual_account
        .as_deref()
        .map(|v| format!("{account}/virtual-accounts/{}", path_segment(v)));
    match (a.alert.kind, &a.alert.instance, va) {
        (_, Some(id), Some(va)) => format!("{va}/instances/{}", path_segment(id)),
        (AlertKind::SyncOverdue | AlertKind::RegistrationExpiring, _, _) => {
            format!("{account}/sync")
        }
        (_, _, Some(va)) => va,
        _ => account,
    }
}

impl From<&AlertOut> for AlertView {
    fn from(a: &AlertOut) -> Self {
        Self {
            id: a.id.clone(),
            severity: a.severity,
            kind: a.kind.replace('_', " "),
            account: a.account.clone(),
            subject: a.subject.clone(),
            message: a.message.clone(),
            raised: crate::clock::human(a.raised_unix),
            acknowledged: a.acknowledged_at.as_ref().map(|at| {
                format!(
                    "by {}, {}",
                    a.acknowledged_by.as_deref().unwrap_or("?"),
                    at.replace('T', " ").trim_end_matches('Z')
                )
            }),
            link: link(a),
            ack_url: format!("/alerts/{}/acknowledge", path_segment(&a.id)),
        }
    }
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    layout: Layout,
    alerts: Vec<AlertView>,
    /// Viewers and operators see alerts but may not acknowledge them.
    can_ack: bool,
}

async fn list(
    req: HttpRequest,
    state: State,
    user: SessionUser,
) -> Result<HttpResponse, PageError> {
    let alerts =
        crate::web::calls::alerts::load_full(&state, user.principal.clone(), DateFilter::default())
            .await?;
    let page = AlertsPage {
        layout: Layout::new(&req, &user, "alerts", "Alerts"),
        alerts: alerts.iter().map(AlertView::from).collect(),
        // An account admin sees only its account, so the role alone decides.
        can_ack: matches!(
            user.principal.role,
            crate::domain::Role::SystemAdmin | crate::domain::Role::AccountAdmin
        ),
    };
    Ok(render::page(&req, &page)?)
}

async fn acknowledge(
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let id = path.into_inner();
    let at = crate::web::calls::alerts::now(&state);
    let who = user.principal.clone();
    let alert = state
        .store
        .write(move |tx| {
            let (visible, editor) = (access::visible(&who), access::editable(&who));
            Ok(service::acknowledge(tx, visible, &editor, at, &id)?)
        })
        .await?;
    Ok(render::redirect_with_flash(
        "/alerts",
        &format!(
            "Alert acknowledged: {} ({}). It stays listed until its cause clears.",
            alert.kind.replace('_', " "),
            alert.subject
        ),
    ))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/alerts", web::get().to(list))
        .route("/alerts/{id}/acknowledge", web::post().to(acknowledge));
}
