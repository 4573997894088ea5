//! The alerts page.

use crate::domain::alerts::Alert;
use crate::web::auth::SessionUser;
use crate::web::render::{self, Layout};
use crate::web::{PageError, State};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

pub struct AlertView {
    pub severity: &'static str,
    pub kind: String,
    pub account: String,
    pub subject: String,
    pub message: String,
}

impl From<&Alert> for AlertView {
    fn from(a: &Alert) -> Self {
        Self {
            severity: match a.severity {
                crate::domain::alerts::Severity::Critical => "critical",
                crate::domain::alerts::Severity::Warning => "warning",
                crate::domain::alerts::Severity::Info => "info",
            },
            kind: a.kind.replace('_', " "),
            account: a.account.clone(),
            subject: a.subject.clone(),
            message: a.message.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    layout: Layout,
    alerts: Vec<AlertView>,
}

async fn list(
    req: HttpRequest,
    state: State,
    user: SessionUser,
) -> Result<HttpResponse, PageError> {
    let alerts = crate::web::api::alerts::load(&state, user.principal.clone()).await?;
    let page = AlertsPage {
        layout: Layout::new(&req, &user, "alerts", "Alerts"),
        alerts: alerts.iter().map(AlertView::from).collect(),
    };
    Ok(render::page(&req, &page)?)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/alerts", web::get().to(list));
}
