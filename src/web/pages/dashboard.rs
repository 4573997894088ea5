//! The dashboard: what this server serves at a glance, and where compliance is at risk.

use super::va_view::label;
use crate::domain::compliance::PoolStatus;
use crate::store::{accounts, instances, licenses, page::Page};
use crate::web::auth::SessionUser;
use crate::web::pages::accounts::AccountView;
use crate::web::render::{self, path_segment, Layout};
use crate::web::{PageError, State};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;

/// One bar of the instances-by-status chart, laid out here (CSP allows no inline style,
/// so sizes are SVG attributes).
pub struct Bar {
    pub label: String,
    pub class: String,
    pub n: i64,
    pub y: i64,
    pub width: i64,
    pub text_y: i64,
    pub value_x: i64,
}

const BAR_MAX: i64 = 260;
const ROW: i64 = 28;

fn bars(counts: &[(String, i64)]) -> Vec<Bar> {
    let max = counts.iter().map(|c| c.1).max().unwrap_or(1).max(1);
    counts
        .iter()
        .enumerate()
        .map(|(i, (status, n))| {
            let width = (n * BAR_MAX / max).max(2);
            Bar {
                label: label(status),
                class: format!("bar-{status}"),
                n: *n,
                y: i as i64 * ROW,
                width,
                text_y: i as i64 * ROW + 15,
                value_x: 150 + width + 6,
            }
        })
        .collect()
}

pub struct ShortPool {
    pub url: String,
    pub place: String,
    pub license: String,
    pub detail: String,
    pub status: &'static str,
    pub status_label: String,
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    layout: Layout,
    account_total: i64,
    va_total: i64,
    instance_total: i64,
    accounts: Vec<AccountView>,
    more_accounts: bool,
    server_role: &'static str,
    authority_id: String,
    bars: Vec<Bar>,
    chart_height: i64,
    short: Vec<ShortPool>,
    pools_checked: usize,
}

async fn show(
    req: HttpRequest,
    state: State,
    user: SessionUser,
) -> Result<HttpResponse, PageError> {
    let who = user.principal.clone();
    let today = state.clock.now().date_naive();
    let ((account_total, va_total), page, counts, short, pools_checked) = state
        .store
        .read(move |c| {
            let totals = accounts::totals(c, &who)?;
            let page: Page<accounts::Account> = accounts::list(c, &who, None, 10)?;
            let counts = instances::status_counts(c, None, who.account_filter())?;
            let mut short = vec![];
            let mut checked = 0;
            for (account, va) in accounts::vas_with_licenses(c, &who)? {
                let (ls, evaluation) = licenses::evaluate(c, va.id, today)?;
                checked += ls.len();
                for l in ls {
                    let Some(p) = evaluation.pools.get(&l.spec.tag) else {
                        continue;
                    };
                    if matches!(p.status, PoolStatus::Insufficient | PoolStatus::Expired) {
                        short.push(ShortPool {
                            url: format!(
                                "/accounts/{}/virtual-accounts/{}",
                                path_segment(&account),
                                path_segment(&va.name)
                            ),
                            place: format!("{account} / {}", va.name),
                            license: l.spec.name.clone(),
                            detail: format!("{} in use of {}", p.in_use, l.spec.quantity),
                            status: p.status.as_str(),
                            status_label: label(p.status.as_str()),
                        });
                    }
                }
            }
            Ok((totals, page, counts, short, checked))
        })
        .await?;
    let bars = bars(&counts);
    let view = DashboardPage {
        layout: Layout::new(&req, &user, "dashboard", "Dashboard"),
        account_total,
        va_total,
        instance_total: counts.iter().map(|c| c.1).sum(),
        more_accounts: page.next_after.is_some(),
        accounts: page.items.iter().map(AccountView::from).collect(),
        server_role: state.settings.role.as_str(),
        authority_id: state.authority.authority_id().to_string(),
        chart_height: (bars.len() as i64 * ROW).max(ROW),
        bars,
        short,
        pools_checked,
    };
    Ok(render::page(&req, &view)?)
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(show));
}
