//! The new-reservation wizard: step 1 takes the request code (checked by its checksum)
//! and the VA, step 2 the counts or universal and the export acknowledgement; creating
//! it leads to the new reservation's page with its authorization code.
//!
//! Step 1 answers with a redirect (post/redirect/get) to `new?request_code=..&
//! virtual_account=..`, the GET that shows step 2: a reload there re-posts nothing. The
//! request code rides in the URL because it is no secret (the product prints it, the
//! list searches by it); the GET checks it again, since anyone can type a URL.

use super::{base_url, form_counts, form_value, posted, refusal, typed_counts, Choice};
use crate::domain::reservation as rules;
use crate::service::access;
use crate::service::reservations::{self as svc, Grant, NewReservation};
use crate::store::accounts;
use crate::web::auth::SessionUser;
use crate::web::render::{self, path_segment, FormErrors, Layout};
use crate::web::{calls, AppError, PageError, State};
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "reservations/new.html")]
struct NewPage {
    layout: Layout,
    account: String,
    account_url: String,
    base: String,
    step: u8,
    request_code: String,
    udi: String,
    vas: Vec<String>,
    va: String,
    choices: Vec<Choice>,
    universal: bool,
    any_export: bool,
    acknowledged: bool,
    errors: FormErrors,
    problem: Option<String>,
}

/// What the wizard shows on a step.
struct WizardState {
    step: u8,
    request_code: String,
    va: String,
    counts: Vec<(String, String)>,
    universal: bool,
    acknowledged: bool,
    errors: FormErrors,
    problem: Option<String>,
    status: StatusCode,
}

impl WizardState {
    fn start() -> Self {
        WizardState {
            step: 1,
            request_code: String::new(),
            va: String::new(),
            counts: vec![],
            universal: false,
            acknowledged: false,
            errors: FormErrors::default(),
            problem: None,
            status: StatusCode::OK,
        }
    }
}

async fn wizard_page(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    a: String,
    w: WizardState,
) -> Result<HttpResponse, PageError> {
    let va_name = w.va.clone();
    let step = w.step;
    // Only an editor may start a reservation, so even the form asks for edit rights.
    let (account, vas, pools) = calls::read_as(
        state,
        &user.principal,
        &a,
        access::edit_account,
        move |c, cap, now| {
            let vas: Vec<String> = accounts::list_vas(c, &cap.account, None, 500)?
                .items
                .into_iter()
                .map(|v| v.name)
                .collect();
            let pools = if step == 2 {
                let va = accounts::find_va(c, &cap.account, &va_name)?;
                super::pools(c, va.id, now.today)?
            } else {
                vec![]
            };
            Ok((cap.account.clone(), vas, pools))
        },
    )
    .await?;
    let udi = rules::parse_request_code(&w.request_code)
        .map(|r| format!("P:{},S:{}", r.pid, r.sn))
        .unwrap_or_default();
    let choices: Vec<Choice> = pools
        .into_iter()
        .map(|(tag, name, available, export_controlled)| Choice {
            count: w
                .counts
                .iter()
                .find(|(t, _)| *t == tag)
                .map(|(_, c)| c.clone())
                .unwrap_or_default(),
            tag,
            name,
            available,
            export_controlled,
        })
        .collect();
    let view = NewPage {
        layout: Layout::new(req, user, "accounts", "New reservation"),
        account_url: format!("/accounts/{}", path_segment(&account.name)),
        base: base_url(&account.name),
        account: account.name,
        step: w.step,
        request_code: w.request_code,
        udi,
        va: if w.va.is_empty() {
            vas.first().cloned().unwrap_or_default()
        } else {
            w.va
        },
        vas,
        any_export: choices.iter().any(|c| c.export_controlled),
        choices,
        universal: w.universal,
        acknowledged: w.acknowledged,
        errors: w.errors,
        problem: w.problem,
    };
    Ok(render::page_with_status(req, w.status, &view)?)
}

/// What step 1 hands to step 2 in the URL; without a request code the wizard starts.
#[derive(Deserialize, Default)]
pub(super) struct StepTwo {
    #[serde(default)]
    request_code: String,
    #[serde(default)]
    virtual_account: String,
    #[serde(default)]
    universal: String,
}

impl StepTwo {
    fn url(&self, a: &str) -> String {
        let mut url = format!(
            "{}/new?request_code={}&virtual_account={}",
            base_url(a),
            path_segment(&self.request_code),
            path_segment(&self.virtual_account)
        );
        if self.universal == "on" {
            url.push_str("&universal=on");
        }
        url
    }

    /// The wizard on step 2, or on step 1 with the error next to a code that fails its
    /// checksum.
    fn wizard(self) -> Result<WizardState, PageError> {
        let mut w = WizardState::start();
        w.request_code = self.request_code.trim().to_string();
        w.va = self.virtual_account;
        w.universal = self.universal == "on";
        match rules::parse_request_code(&w.request_code) {
            Ok(_) => w.step = 2,
            Err(e) => (w.errors, w.problem, w.status) = refusal(e.into())?,
        }
        Ok(w)
    }
}

/// Step 1 (no request code in the URL) or step 2 (the code passed its checksum).
pub(super) async fn new_form(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    q: web::Query<StepTwo>,
) -> Result<HttpResponse, PageError> {
    let (a, q) = (path.into_inner(), q.into_inner());
    let w = if q.request_code.trim().is_empty() {
        WizardState::start()
    } else {
        q.wizard()?
    };
    wizard_page(&req, &state, &user, a, w).await
}

/// Which wizard form was posted: step 1's or step 2's.
#[derive(Clone, Copy)]
pub(super) enum Post {
    Check,
    Create,
}

pub(super) async fn post(
    req: HttpRequest,
    state: State,
    user: SessionUser,
    path: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
    which: Post,
) -> Result<HttpResponse, PageError> {
    let (a, form) = (path.into_inner(), posted(&user, form)?);
    match which {
        Post::Check => check(&req, &state, &user, a, &form).await,
        Post::Create => create(&req, &state, &user, a, &form).await,
    }
}

/// Step 1 -> 2: the request code must pass its checksum (else step 1 again, the error
/// next to it); then a redirect to the GET of step 2, which finds the VA.
async fn check(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    a: String,
    form: &[(String, String)],
) -> Result<HttpResponse, PageError> {
    let next = StepTwo {
        request_code: form_value(form, "request_code").trim().to_string(),
        virtual_account: form_value(form, "virtual_account").to_string(),
        universal: form_value(form, "universal").to_string(),
    };
    let to = next.url(&a);
    let w = next.wizard()?;
    if w.step == 1 {
        return wizard_page(req, state, user, a, w).await;
    }
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, to))
        .finish())
}

async fn create(
    req: &HttpRequest,
    state: &State,
    user: &SessionUser,
    a: String,
    form: &[(String, String)],
) -> Result<HttpResponse, PageError> {
    let mut w = WizardState::start();
    w.step = 2;
    w.request_code = form_value(form, "request_code").to_string();
    w.va = form_value(form, "virtual_account").to_string();
    w.universal = form_value(form, "kind") == "universal";
    w.acknowledged = form_value(form, "export_acknowledged") == "on";
    w.counts = typed_counts(form);
    let parsed = (|| -> Result<NewReservation, AppError> {
        let request = rules::parse_request_code(&w.request_code)?;
        let grant = if w.universal {
            Grant::Universal
        } else {
            let counts: Vec<(String, i64)> = form_counts(form)?
                .into_iter()
                .filter(|(_, n)| *n != 0)
                .collect();
            if counts.is_empty() {
                let mut e = AppError::unprocessable(
                    "invalid_licenses",
                    "Enter a count for at least one license, or choose universal.",
                );
                e.field = Some("licenses");
                return Err(e);
            }
            Grant::Specific(svc::counts(counts, 1)?)
        };
        Ok(NewReservation {
            request,
            virtual_account: w.va.clone(),
            grant,
            export_acknowledged: w.acknowledged,
        })
    })();
    let result = match parsed {
        Ok(input) => {
            let authority = state.authority.clone();
            calls::edit_account(state, &user.principal, &a, move |tx, cap, now| {
                svc::create(tx, cap, now.unix, now.today, &authority, input)
            })
            .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(d) => Ok(render::redirect_with_flash(
            &format!("{}/{}", base_url(&a), path_segment(&d.reservation.id)),
            "Reservation created. Give the product its authorization code, then enter the confirmation code it prints.",
        )),
        Err(e) => {
            let (errors, problem, status) = refusal(e)?;
            (w.errors, w.problem, w.status) = (errors, problem, status);
            wizard_page(req, state, user, a, w).await
        }
    }
}
