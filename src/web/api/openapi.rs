//! `GET /api/openapi.json`, generated from the handlers' annotations.

use super::bundle_preview;
use super::reservations;
use super::{
    account_instances, accounts, alerts, api_clients, events, instances, license_edit, licenses,
    notifications, oauth, reports, sync, tokens, virtual_accounts,
};
use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "satellite admin API", description = "Accounts, virtual accounts, tokens, licenses, instances, events. See CONTRACT.md."),
    paths(
        oauth::token,
        accounts::list, accounts::create, accounts::show, accounts::update, accounts::delete,
        virtual_accounts::list, virtual_accounts::create, virtual_accounts::show,
        virtual_accounts::update, virtual_accounts::delete,
        tokens::list, tokens::create, tokens::revoke,
        licenses::list, licenses::create, licenses::transfer,
        instances::list, instances::remove, instances::transfer,
        sync::import_bundle, sync::satellite_token, sync::get_upstream, sync::post_upstream,
        sync::export_bundle, sync::sync_now, sync::get_schedule, sync::put_schedule, sync::history,
        bundle_preview::preview,
        alerts::list,
        alerts::acknowledge,
        notifications::get,
        notifications::put,
        notifications::test,
        events::list,
        api_clients::list, api_clients::create, api_clients::revoke,
        reports::licenses, reports::instances, reports::usage_history,
        reservations::list, reservations::show, reservations::create, reservations::update,
        reservations::confirm, reservations::cancel, reservations::remove, reservations::return_code,
        super::settings::get_account, super::settings::patch_account,
        super::settings::get_va, super::settings::patch_va,
        super::export_keys::list, super::export_keys::approve, super::export_keys::deny,
        account_instances::account, account_instances::all,
        license_edit::update, license_edit::remove,
        super::satellites::list_tokens, super::satellites::revoke_token,
        super::satellites::list_satellites, super::satellites::revoke_satellite,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

async fn spec() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/openapi.json", web::get().to(spec));
}
