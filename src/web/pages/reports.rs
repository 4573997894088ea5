//! The reports pages: the three reports of CONTRACT section 7 with their filters as a GET
//! form, a preview of the first rows and CSV downloads served under the session. They call
//! the same service functions and the same CSV writer as `/api/v1/reports/*`, so a page
//! download and an API download of one scope are the same document.

use crate::service::access;
use crate::service::reports::{self, Scope};
use crate::web::auth::SessionUser;
use crate::web::download;
use crate::web::render::{self, path_segment, FormErrors, Layout};
use crate::web::{AppError, PageError, State};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

/// Rows shown in a preview; the CSV has them all.
pub const PREVIEW_ROWS: usize = 50;

/// Which report a page or download is about; one string mapping each.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ReportKind {
    Licenses,
    Instances,
    UsageHistory,
}

impl ReportKind {
    pub const ALL: [ReportKind; 3] = [
        ReportKind::Licenses,
        ReportKind::Instances,
        ReportKind::UsageHistory,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Licenses => "licenses",
            ReportKind::Instances => "instances",
            ReportKind::UsageHistory => "usage-history",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            ReportKind::Licenses => "Licenses",
            ReportKind::Instances => "Product instances",
            ReportKind::UsageHistory => "Usage history",
        }
    }

    pub fn parse(raw: &str) -> Option<ReportKind> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw)
    }
}

#[derive(Deserialize, Default, Clone)]
pub struct ReportForm {
    pub report: Option<String>,
    pub account: Option<String>,
    pub virtual_account: Option<String>,
    pub status: Option<String>,
    pub tag: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

fn text(v: &Option<String>) -> String {
    v.as_deref().map(str::trim).unwrap_or("").to_string()
}

impl ReportForm {
    /// The filters as a query string (without `report=`), for the download link and tabs.
    fn query(&self, kind: ReportKind) -> String {
        let mut pairs = vec![
            ("account", text(&self.account)),
            ("virtual_account", text(&self.virtual_account)),
        ];
        match kind {
            ReportKind::Licenses => {}
            ReportKind::Instances => pairs.push(("status", text(&self.status))),
            ReportKind::UsageHistory => {
                pairs.push(("tag", text(&self.tag)));
                pairs.push(("from", text(&self.from)));
                pairs.push(("to", text(&self.to)));
            }
        }
        pairs
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", path_segment(&v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// A field-level error for a filter: a 422 names its field; an account or VA the caller
/// cannot see (404) belongs next to the account fields.
fn filter_error(mut e: AppError, form: &ReportForm) -> Result<FormErrors, AppError> {
    if e.status == StatusCode::NOT_FOUND {
        e.field = Some(if text(&form.virtual_account).is_empty() {
            "account"
        } else {
            "virtual_account"
        });
    }
    FormErrors::from_error(e)
}

async fn resolve(state: &State, user: &SessionUser, form: &ReportForm) -> Result<Scope, AppError> {
    let who = user.principal.clone();
    let (account, va) = (form.account.clone(), form.virtual_account.clone());
    Ok(state
        .store
        .read(move |c| {
            Ok(reports::scope(
                c,
                access::visible(&who),
                account.as_deref(),
                va.as_deref(),
            )?)
        })
        .await?)
}

pub struct Tab {
    pub kind: &'static str,
    pub title: &'static str,
    pub url: String,
    pub current: bool,
}

#[derive(Template)]
#[template(path = "reports/index.html")]
struct ReportsPage {
    layout: Layout,
    report: &'static str,
    report_title: &'static str,
    tabs: Vec<Tab>,
    account: String,
    virtual_account: String,
    status: String,
    tag: String,
    from: String,
    to: String,
    statuses: Vec<&'static str>,
    errors: FormErrors,
    columns: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    /// "Showing 3 of 3 rows" or "Showing the first 50 rows".
    summary: String,
    csv_url: String,
}

/// The preview: columns, the first rows, and a summary of how many there are.
async fn preview(
    state: &State,
    user: &SessionUser,
    kind: ReportKind,
    form: &ReportForm,
) -> Result<(Vec<&'static str>, Vec<Vec<String>>, String), AppError> {
    let scope = resolve(state, user, form).await?;
    let today = state.clock.now().date_naive();
    let who = user.principal.clone();
    let of_total = |rows: Vec<Vec<String>>, total: usize| {
        let summary = format!(
            "Showing {} of {total} row{}.",
            rows.len(),
            if total == 1 { "" } else { "s" }
        );
        (rows, summary)
    };
    match kind {
        ReportKind::Licenses => {
            let all = state
                .store
                .read(move |c| Ok(reports::licenses(c, access::visible(&who), &scope, today)?))
                .await?;
            let total = all.len();
            let rows = all
                .iter()
                .take(PREVIEW_ROWS)
                .map(|r| r.cells().to_vec())
                .collect();
            let (rows, summary) = of_total(rows, total);
            Ok((reports::LICENSE_COLUMNS.to_vec(), rows, summary))
        }
        ReportKind::UsageHistory => {
            let filter = reports::history_filter(
                &scope,
                form.tag.as_deref(),
                form.from.as_deref(),
                form.to.as_deref(),
            )?;
            let all = state
                .store
                .read(move |c| Ok(reports::usage_history(c, &filter, today)?))
                .await?;
            let total = all.len();
            let rows = all
                .iter()
                .take(PREVIEW_ROWS)
                .map(|r| r.cells().to_vec())
                .collect();
            let (rows, summary) = of_total(rows, total);
            Ok((reports::USAGE_COLUMNS.to_vec(), rows, summary))
        }
        ReportKind::Instances => {
            let status = reports::parse_status(form.status.as_deref())?;
            // Stops after one row past the preview: the instances report may be huge, so
            // the page never counts it; the CSV has every row.
            let rows = state
                .store
                .read(move |c| {
                    let mut rows: Vec<Vec<String>> = vec![];
                    reports::for_each_instance(c, &scope, status.as_deref(), |r| {
                        rows.push(r.cells().to_vec());
                        rows.len() <= PREVIEW_ROWS
                    })?;
                    Ok(rows)
                })
                .await?;
            let mut rows = rows;
            let summary = if rows.len() > PREVIEW_ROWS {
                rows.truncate(PREVIEW_ROWS);
                format!("Showing the first {PREVIEW_ROWS} rows; the CSV has them all.")
            } else {
                let n = rows.len();
                format!("Showing {n} of {n} row{}.", if n == 1 { "" } else { "s" })
            };
            Ok((reports::INSTANCE_COLUMNS.to_vec(), rows, summary))
        }
    }
}

async fn index(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    q: web::Query<ReportForm>,
) -> Result<HttpResponse, PageError> {
    let form = q.into_inner();
    let kind = match form.report.as_deref().map(str::trim) {
        None | Some("") => ReportKind::Licenses,
        Some(raw) => ReportKind::parse(raw).ok_or_else(|| {
            AppError::unprocessable(
                "invalid_report",
                format!("'{raw}' is not a report; use licenses, instances or usage-history."),
            )
        })?,
    };
    let (columns, rows, summary, errors) = match preview(&state, &user, kind, &form).await {
        Ok((c, r, s)) => (c, r, s, FormErrors::default()),
        Err(e) => (vec![], vec![], String::new(), filter_error(e, &form)?),
    };
    let query = form.query(kind);
    let view = ReportsPage {
        layout: Layout::new(&req, &user, "reports", "Reports"),
        report: kind.as_str(),
        report_title: kind.title(),
        tabs: ReportKind::ALL
            .into_iter()
            .map(|k| {
                let q = form.query(k);
                Tab {
                    kind: k.as_str(),
                    title: k.title(),
                    url: format!(
                        "/reports?report={}{}{q}",
                        k.as_str(),
                        if q.is_empty() { "" } else { "&" }
                    ),
                    current: k == kind,
                }
            })
            .collect(),
        account: text(&form.account),
        virtual_account: text(&form.virtual_account),
        status: text(&form.status),
        tag: text(&form.tag),
        from: text(&form.from),
        to: text(&form.to),
        statuses: crate::domain::instance::InstanceStatus::ALL
            .iter()
            .map(|s| s.as_str())
            .collect(),
        csv_url: format!(
            "/reports/{}.csv{}{query}",
            kind.as_str(),
            if query.is_empty() { "" } else { "?" }
        ),
        errors,
        columns,
        rows,
        summary,
    };
    let status = if view.errors.is_empty() {
        StatusCode::OK
    } else {
        view.errors.status()
    };
    Ok(render::page_with_status(&req, status, &view)?)
}

async fn licenses_csv(
    state: State,
    user: SessionUser,
    q: web::Query<ReportForm>,
) -> Result<HttpResponse, PageError> {
    let scope = resolve(&state, &user, &q).await?;
    let today = state.clock.now().date_naive();
    let who = user.principal.clone();
    let rows = state
        .store
        .read(move |c| Ok(reports::licenses(c, access::visible(&who), &scope, today)?))
        .await?;
    let doc = download::csv_document(&reports::LICENSE_COLUMNS, rows.iter().map(|r| r.cells()))
        .map_err(AppError::internal)?;
    Ok(download::csv_response("licenses.csv", doc))
}

async fn instances_csv(
    state: State,
    user: SessionUser,
    q: web::Query<ReportForm>,
) -> Result<HttpResponse, PageError> {
    let status = reports::parse_status(q.status.as_deref()).map_err(AppError::from)?;
    let scope = resolve(&state, &user, &q).await?;
    let body = crate::web::exports::instances_body(
        &state,
        scope,
        status,
        crate::web::exports::Format::Csv,
    );
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header(download::attachment("instances.csv"))
        .streaming(body))
}

async fn usage_csv(
    state: State,
    user: SessionUser,
    q: web::Query<ReportForm>,
) -> Result<HttpResponse, PageError> {
    let scope = resolve(&state, &user, &q).await?;
    let filter =
        reports::history_filter(&scope, q.tag.as_deref(), q.from.as_deref(), q.to.as_deref())
            .map_err(AppError::from)?;
    let today = state.clock.now().date_naive();
    let rows = state
        .store
        .read(move |c| Ok(reports::usage_history(c, &filter, today)?))
        .await?;
    let doc = download::csv_document(&reports::USAGE_COLUMNS, rows.iter().map(|r| r.cells()))
        .map_err(AppError::internal)?;
    Ok(download::csv_response("usage-history.csv", doc))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/reports", web::get().to(index))
        .route("/reports/licenses.csv", web::get().to(licenses_csv))
        .route("/reports/instances.csv", web::get().to(instances_csv))
        .route("/reports/usage-history.csv", web::get().to(usage_csv));
}
