//! Server-rendered admin pages, one file per resource.

pub mod account_instances;
pub mod accounts;
pub mod alerts;
pub mod api_clients;
pub mod backups;
pub mod dashboard;
pub mod event_detail;
pub mod events;
pub mod export_keys;
pub mod form_checks;
pub mod import_preview;
pub mod instances;
pub mod license_edit;
pub mod login;
pub mod notifications;
pub mod password;
pub mod reported_instance;
pub mod reports;
pub mod reservations;
pub mod settings;
pub mod sync;
pub mod sync_admin;
pub mod upload;
pub mod usage_charts;
pub mod user_admin;
pub mod users;
pub mod va_view;
pub mod virtual_accounts;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.configure(login::configure)
        .configure(password::configure)
        .configure(dashboard::configure)
        .configure(accounts::configure)
        .configure(virtual_accounts::configure)
        .configure(instances::configure)
        .configure(users::configure)
        .configure(events::configure)
        .configure(alerts::configure)
        .configure(sync::configure)
        .configure(api_clients::configure)
        .configure(backups::configure)
        .configure(reservations::configure)
        .configure(settings::configure)
        .configure(export_keys::configure)
        .configure(notifications::configure)
        .configure(reports::configure)
        .configure(account_instances::configure)
        .configure(license_edit::configure)
        .configure(sync_admin::configure)
        .configure(import_preview::configure);
}

/// The `?after=` cursor of paginated pages.
#[derive(serde::Deserialize)]
pub struct PageQuery {
    pub after: Option<String>,
}
