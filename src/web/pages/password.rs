//! Change one's own password (required after the first login with a generated one).

use crate::crypto::password;
use crate::domain::names;
use crate::store::users;
use crate::web::auth::SessionUser;
use crate::web::render::{self, FormErrors, Layout};
use crate::web::{PageError, State};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    layout: Layout,
    forced: bool,
    errors: FormErrors,
}

async fn show(req: HttpRequest, user: SessionUser) -> Result<HttpResponse, PageError> {
    let page = PasswordPage {
        layout: Layout::new(&req, &user, "", "Change password"),
        forced: user.user.must_change_password,
        errors: FormErrors::default(),
    };
    Ok(render::page(&req, &page)?)
}

#[derive(Deserialize)]
struct PasswordForm {
    csrf: String,
    current: String,
    new_password: String,
    confirm: String,
}

async fn submit(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, PageError> {
    user.check_csrf(&form.csrf)?;
    let form = form.into_inner();
    let stored = user.user.password_hash.clone();
    let current = form.current.clone();
    let errors = if !web::block(move || password::verify(&current, &stored)).await? {
        FormErrors::single("current", "That is not your current password.")
    } else if let Err(e) =
        names::password_for("new_password", &form.new_password, &user.user.username)
    {
        FormErrors::from_error(e.into())?
    } else if form.new_password != form.confirm {
        FormErrors::single("confirm", "The two new passwords differ.")
    } else {
        FormErrors::default()
    };
    if !errors.is_empty() {
        let page = PasswordPage {
            layout: Layout::new(&req, &user, "", "Change password"),
            forced: user.user.must_change_password,
            errors,
        };
        return Ok(render::page_with_status(
            &req,
            StatusCode::UNPROCESSABLE_ENTITY,
            &page,
        )?);
    }
    let new_password = form.new_password;
    let hash = web::block(move || password::hash(&new_password)).await??;
    let now = state.clock.unix();
    let keep = user.token_hash.clone();
    let account = user.user.clone();
    state
        .store
        .write(move |tx| users::set_password(tx, &account, now, &hash, Some(&keep)))
        .await?;
    Ok(render::redirect_with_flash("/", "Password changed."))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/account/password", web::get().to(show))
        .route("/account/password", web::post().to(submit));
}
