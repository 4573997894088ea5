//! Everything the virtual account page shows, gathered in one read.

use super::accounts::{AccountView, VaView};
use crate::clock;
use crate::domain::compliance::{Evaluation, PoolStatus};
use crate::domain::Principal;
use crate::service;
use crate::store::licenses::License;
use crate::store::tokens::Token;
use crate::store::{instances, StoreError};
use crate::web::render::path_segment;
use chrono::NaiveDate;
use rusqlite::Connection;

pub struct LicenseView {
    pub tag: String,
    pub name: String,
    pub license_type: &'static str,
    pub quantity: i64,
    pub in_use: i64,
    pub reserved: i64,
    pub available: i64,
    pub status: &'static str,
    pub status_label: String,
    pub dates: String,
    pub export_controlled: bool,
    pub substitutes: String,
    pub rank: i64,
    /// Of `in_use`, the units that cover other tags' demand.
    pub lent: i64,
    /// For the <meter>: in use, capped at the quantity so the gauge stays in range.
    pub meter_value: i64,
    pub meter_max: i64,
    /// In use and reserved beyond the quantity (0 when within it).
    pub over: i64,
    /// Exactly used up: nothing left, nothing missing.
    pub full: bool,
}

impl LicenseView {
    pub fn new(l: &License, e: &Evaluation) -> Self {
        let pool = e.pools.get(&l.spec.tag);
        let in_use = pool.map_or(0, |p| p.in_use);
        let status = pool.map_or(PoolStatus::InCompliance, |p| p.status).as_str();
        let dates = match l.spec.end {
            Some(end) => format!("{} – {end}", l.spec.start),
            None => format!("from {}", l.spec.start),
        };
        Self {
            tag: l.spec.tag.clone(),
            name: l.spec.name.clone(),
            license_type: l.spec.license_type.as_str(),
            quantity: l.spec.quantity,
            in_use,
            reserved: l.reserved,
            available: pool.map_or(0, |p| p.available),
            status,
            status_label: label(status),
            dates,
            export_controlled: l.spec.export_controlled,
            substitutes: l.spec.substitutes.join(", "),
            rank: l.spec.rank,
            lent: pool.map_or(0, |p| p.lent),
            meter_value: (in_use + l.reserved).min(l.spec.quantity.max(1)),
            meter_max: l.spec.quantity.max(1),
            over: (in_use + l.reserved - l.spec.quantity).max(0),
            full: l.spec.quantity > 0 && in_use + l.reserved == l.spec.quantity,
        }
    }
}

pub struct TokenView {
    pub id: String,
    pub description: String,
    pub expires: String,
    pub uses: String,
    pub export_controlled: bool,
    pub state: &'static str,
    pub revoke_url: String,
    pub revocable: bool,
}

impl TokenView {
    pub fn new(t: &Token, now: i64, va_url: &str) -> Self {
        let state = t.state(now);
        Self {
            id: t.id.clone(),
            description: t.description.clone(),
            expires: clock::human(t.expires_at),
            uses: match t.max_uses {
                Some(m) => format!("{} / {m}", t.uses),
                None => format!("{} / ∞", t.uses),
            },
            export_controlled: t.export_controlled,
            state: state.as_str(),
            revoke_url: format!("{va_url}/tokens/{}/revoke", path_segment(&t.id)),
            revocable: t.revoked_at.is_none(),
        }
    }
}

/// `out_of_compliance` → `out of compliance`, for people.
pub fn label(code: &str) -> String {
    code.replace('_', " ")
}

pub struct StatusCount {
    pub status: String,
    pub label: String,
    pub n: i64,
}

/// For a tag other licenses cover: the order its shortfall is drawn from them.
pub struct SubstitutionLine {
    pub tag: String,
    /// "Foundation (rank 10), then Standard (rank 20)".
    pub order: String,
}

fn substitution_lines(licenses: &[License]) -> Vec<SubstitutionLine> {
    let pools: Vec<_> = licenses.iter().map(License::pool).collect();
    let covered: std::collections::BTreeSet<&str> = licenses
        .iter()
        .flat_map(|l| l.spec.substitutes.iter().map(String::as_str))
        .collect();
    covered
        .into_iter()
        .map(|tag| {
            let order = crate::domain::compliance::draw_order(&pools, tag)
                .iter()
                .filter_map(|t| licenses.iter().find(|l| l.spec.tag == *t))
                .map(|l| format!("{} (rank {})", l.spec.name, l.spec.rank))
                .collect::<Vec<_>>()
                .join(", then ");
            SubstitutionLine {
                tag: tag.to_string(),
                order,
            }
        })
        .collect()
}

pub struct VaData {
    /// The order of substitution, one line per covered tag.
    pub substitution: Vec<SubstitutionLine>,
    pub account: AccountView,
    pub account_id: i64,
    pub va: VaView,
    pub synced: bool,
    pub licenses: Vec<LicenseView>,
    pub tokens: Vec<TokenView>,
    pub more_tokens: bool,
    pub statuses: Vec<StatusCount>,
    pub other_vas: Vec<String>,
    /// The VA's `export_approval` setting.
    pub export_approval: bool,
    pub usage_charts: Vec<super::usage_charts::UsageChart>,
}

pub fn load(
    conn: &Connection,
    who: &Principal,
    a: &str,
    va: &str,
    now: i64,
    today: NaiveDate,
) -> Result<VaData, StoreError> {
    let (cap, va) = service::access::read_va(conn, who, a, va)?;
    let (licenses, evaluation) = service::licenses::evaluate(conn, &cap, &va, today)?;
    let token_page = service::tokens::list(conn, &cap, &va, None, 20)?;
    let other_vas = service::virtual_accounts::list(conn, &cap, None, 500)?
        .items
        .into_iter()
        .filter(|v| v.id != va.id)
        .map(|v| v.name)
        .collect();
    let account = cap.account;
    let va_view = VaView::new(&account, &va);
    let names: Vec<(String, String)> = licenses
        .iter()
        .map(|l| (l.spec.tag.clone(), l.spec.name.clone()))
        .collect();
    let usage_charts = super::usage_charts::for_va(conn, va.id, &names, today)?;
    Ok(VaData {
        usage_charts,
        substitution: substitution_lines(&licenses),
        account_id: account.id,
        synced: va.synced,
        licenses: licenses
            .iter()
            .map(|l| LicenseView::new(l, &evaluation))
            .collect(),
        tokens: token_page
            .items
            .iter()
            .map(|t| TokenView::new(t, now, &va_view.url))
            .collect(),
        more_tokens: token_page.next_after.is_some(),
        statuses: instances::status_counts(conn, Some(va.id), None)?
            .into_iter()
            .map(|(status, n)| StatusCount {
                label: label(&status),
                status,
                n,
            })
            .collect(),
        other_vas,
        export_approval: crate::store::settings::va(conn, va.id)?.export_approval,
        account: AccountView::from(&account),
        va: va_view,
    })
}
