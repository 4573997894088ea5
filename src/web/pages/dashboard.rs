//! The dashboard: what this satellite serves at a glance.

use crate::store::{accounts, page::Page};
use crate::web::auth::SessionUser;
use crate::web::pages::accounts::AccountView;
use crate::web::render::{self, Layout};
use crate::web::{PageError, State};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    layout: Layout,
    account_total: i64,
    va_total: i64,
    accounts: Vec<AccountView>,
    more_accounts: bool,
    server_role: &'static str,
    authority_id: String,
}

async fn show(
    req: HttpRequest,
    state: State,
    user: SessionUser,
) -> Result<HttpResponse, PageError> {
    let who = user.principal.clone();
    let ((account_total, va_total), page) = state
        .store
        .read(move |c| {
            let totals = accounts::totals(c, &who)?;
            let page: Page<accounts::Account> = accounts::list(c, &who, None, 10)?;
            Ok((totals, page))
        })
        .await?;
    let view = DashboardPage {
        layout: Layout::new(&req, &user, "dashboard", "Dashboard"),
        account_total,
        va_total,
        more_accounts: page.next_after.is_some(),
        accounts: page.items.iter().map(AccountView::from).collect(),
        server_role: state.settings.role.as_str(),
        authority_id: state.authority.authority_id().to_string(),
    };
    Ok(render::page(&req, &view)?)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(show));
}
