//! The admin API (`/api/v1`, JSON, bearer tokens) and its OpenAPI description.

pub mod account_instances;
pub mod accounts;
pub mod alerts;
pub mod api_clients;
pub mod bundle_preview;
pub mod events;
pub mod export_keys;
pub mod instances;
pub mod license_edit;
pub mod licenses;
pub mod notifications;
pub mod oauth;
pub mod openapi;
pub mod reports;
pub mod reservations;
pub mod satellites;
pub mod settings;
pub mod sync;
pub mod tokens;
pub mod virtual_accounts;

use crate::store::Page;
use actix_web::web;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Paths whose errors are JSON rather than pages.
pub fn is_machine_path(path: &str) -> bool {
    ["/api/", "/agent/", "/oauth/", "/sync/"]
        .iter()
        .any(|p| path.starts_with(p))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(oauth::configure)
        .configure(openapi::configure)
        .configure(accounts::configure)
        .configure(virtual_accounts::configure)
        .configure(tokens::configure)
        .configure(licenses::configure)
        .configure(instances::configure)
        .configure(sync::configure)
        .configure(bundle_preview::configure)
        .configure(alerts::configure)
        .configure(events::configure)
        .configure(api_clients::configure)
        .configure(reports::configure)
        .configure(reservations::configure)
        .configure(settings::configure)
        .configure(export_keys::configure)
        .configure(notifications::configure)
        .configure(account_instances::configure)
        .configure(license_edit::configure)
        .configure(satellites::configure);
}

/// `?limit=&after=` on every list.
#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// Page size, 1 to 500 (default 50).
    pub limit: Option<u32>,
    /// The `next_after` cursor of the previous page.
    pub after: Option<String>,
}

/// Every list answers `{"items": [...], "next_after": cursor | null}`.
#[derive(Serialize, ToSchema)]
pub struct List<T> {
    pub items: Vec<T>,
    pub next_after: Option<String>,
}

impl<T> List<T> {
    pub fn from_page<R>(page: Page<R>, f: impl Fn(&R) -> T) -> Self {
        Self {
            items: page.items.iter().map(f).collect(),
            next_after: page.next_after,
        }
    }
}

/// The error body of CONTRACT.md section 2.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `duplicate_name`.
    pub code: String,
    pub message: String,
}
