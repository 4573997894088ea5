//! The forms on one reservation's page: confirm, update, cancel and remove. One handler
//! reads the form for its action, runs it through `service::reservations` and redirects
//! to the reservation with a message, or shows the page again with the refusal.

use super::show::{show_page, ShowExtra};
use super::{base_url, form_counts, form_value, posted, refusal, typed_counts};
use crate::service::access;
use crate::service::reservations::{self as svc, Update};
use crate::web::auth::SessionUser;
use crate::web::render::{self, path_segment};
use crate::web::{calls, AppError, PageError, State};
use actix_web::{web, HttpRequest, HttpResponse};

/// Which form on the reservation page was sent.
#[derive(Clone, Copy)]
pub(super) enum Action {
    Confirm,
    Update,
    Cancel,
    Remove,
}

impl Action {
    pub(super) const ALL: [(&'static str, Action); 4] = [
        ("confirm", Action::Confirm),
        ("update", Action::Update),
        ("cancel", Action::Cancel),
        ("remove", Action::Remove),
    ];

    fn done(self) -> &'static str {
        match self {
            Action::Confirm => "Confirmed: the product has installed its authorization code.",
            Action::Update => {
                "Updated: give the product the new authorization code, then enter its confirmation code."
            }
            Action::Cancel => "Reservation cancelled: its licenses are back in the pool.",
            Action::Remove => "Reservation removed: its licenses are back in the pool.",
        }
    }

    /// What the action asks for, read from the form (a count that is not a number is
    /// refused here, before anything runs).
    fn change(self, form: &[(String, String)]) -> Result<Change, AppError> {
        Ok(match self {
            Action::Confirm => Change::Confirm(form_value(form, "confirmation_code").to_string()),
            Action::Update => Change::Update(
                form_counts(form)?,
                form_value(form, "export_acknowledged") == "on",
            ),
            Action::Cancel => Change::Cancel,
            Action::Remove => Change::Remove(form_value(form, "reason").to_string()),
        })
    }
}

/// What a change on the reservation page does, given the form.
enum Change {
    Confirm(String),
    Update(Vec<(String, i64)>, bool),
    Cancel,
    Remove(String),
}

pub(super) async fn act(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<(String, String)>,
    form: web::Form<Vec<(String, String)>>,
    action: Action,
) -> Result<HttpResponse, PageError> {
    let (names, form) = (path.into_inner(), posted(&user, form)?);
    let mut x = ShowExtra {
        confirmation_code: form_value(&form, "confirmation_code").to_string(),
        reason: form_value(&form, "reason").to_string(),
        counts: typed_counts(&form),
        ..ShowExtra::default()
    };
    let result = match action.change(&form) {
        Ok(c) => {
            let (authority, admin, id) = (
                state.authority.clone(),
                user.principal.clone(),
                names.1.clone(),
            );
            calls::edit_account(&state, &user.principal, &names.0, move |tx, cap, now| {
                let id = id.as_str();
                match c {
                    Change::Confirm(code) => svc::confirm(tx, cap, now.unix, id, &code),
                    Change::Update(counts, ack) => svc::counts(counts, 0).and_then(|counts| {
                        svc::update(
                            tx,
                            cap,
                            now.unix,
                            now.today,
                            &authority,
                            id,
                            Update {
                                counts,
                                export_acknowledged: ack,
                            },
                        )
                    }),
                    Change::Cancel => svc::cancel(tx, cap, now.unix, id),
                    Change::Remove(reason) => access::system_admin(&admin)
                        .and_then(|admin| svc::remove(tx, cap, &admin, now.unix, id, &reason)),
                }
            })
            .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(d) => Ok(render::redirect_with_flash(
            &format!("{}/{}", base_url(&names.0), path_segment(&d.reservation.id)),
            action.done(),
        )),
        Err(e) => {
            let (errors, problem, status) = refusal(e)?;
            (x.errors, x.problem) = (errors, problem);
            show_page(&req, &state, &user, names, x, status).await
        }
    }
}
