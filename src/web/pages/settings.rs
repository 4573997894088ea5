//! The settings forms on the account page (`reservation_enabled`, `export_allowed`) and
//! the virtual-account page (`export_approval`): post, change through the service, redirect
//! back with a message.

use crate::service::settings;
use crate::service::settings::{AccountSettingsPatch, VaSettingsPatch};
use crate::store::accounts;
use crate::web::auth::SessionUser;
use crate::web::render::{self, path_segment};
use crate::web::{calls, PageError, State};
use actix_web::{web, HttpResponse};
use serde::Deserialize;

/// A checkbox is sent only when ticked, so a missing field means off.
#[derive(Deserialize)]
struct AccountSettingsForm {
    csrf: String,
    reservation_enabled: Option<String>,
    export_allowed: Option<String>,
}

#[derive(Deserialize)]
struct VaSettingsForm {
    csrf: String,
    export_approval: Option<String>,
}

async fn save_account(
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<AccountSettingsForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let (name, form) = (path.into_inner(), form.into_inner());
    let patch = AccountSettingsPatch {
        reservation_enabled: Some(form.reservation_enabled.is_some()),
        export_allowed: Some(form.export_allowed.is_some()),
    };
    calls::edit_account(&state, &user.principal, &name, move |tx, cap, now| {
        settings::patch_account(tx, cap, now.unix, patch)
    })
    .await?;
    Ok(render::redirect_with_flash(
        &format!("/accounts/{}", path_segment(&name)),
        "Account settings saved.",
    ))
}

async fn save_va(
    state: State,
    user: SessionUser,
    path: web::Path<(String, String)>,
    form: web::Form<VaSettingsForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let ((a, va), form) = (path.into_inner(), form.into_inner());
    let patch = VaSettingsPatch {
        export_approval: Some(form.export_approval.is_some()),
    };
    let vn = va.clone();
    calls::edit_account(&state, &user.principal, &a, move |tx, cap, now| {
        let va = accounts::find_va(tx, &cap.account, &vn)?;
        settings::patch_va(tx, cap, now.unix, &va, patch)
    })
    .await?;
    Ok(render::redirect_with_flash(
        &format!(
            "/accounts/{}/virtual-accounts/{}",
            path_segment(&a),
            path_segment(&va)
        ),
        "Virtual account settings saved.",
    ))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/accounts/{a}/settings", web::post().to(save_account))
        .route(
            "/accounts/{a}/virtual-accounts/{va}/settings",
            web::post().to(save_va),
        );
}
