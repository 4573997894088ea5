//! `/api/v1/accounts/{a}/reservations`: the reservation lifecycle of CONTRACT section 5.
//! Thin handlers: parse the body, take the capability, call `service::reservations`.

use super::List;
use crate::clock::rfc3339;
use crate::domain::reservation as rules;
use crate::service::access;
use crate::service::reservations::{self as svc, Detail, Grant, NewReservation, Update};
use crate::store::{page, reservations::Filter};
use crate::web::auth::ApiCaller;
use crate::web::{calls, AppError, State};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, Serialize, ToSchema, Clone)]
pub struct LicenseCount {
    pub tag: String,
    pub count: i64,
}

#[derive(Serialize, ToSchema)]
pub struct ReservationUdi {
    pub pid: String,
    pub sn: String,
}

#[derive(Serialize, ToSchema)]
pub struct ReservationDto {
    pub id: String,
    pub request_code: String,
    pub udi: ReservationUdi,
    pub virtual_account: String,
    pub universal: bool,
    /// What the current authorization code grants.
    pub licenses: Vec<LicenseCount>,
    /// pending, confirmed, updating, returned, cancelled or removed.
    pub state: &'static str,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed_at: Option<String>,
    /// Counts updates, from 1.
    pub version: i64,
    /// Present on a single reservation and on every change's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

pub fn dto(d: &Detail, with_code: bool) -> ReservationDto {
    let r = &d.reservation;
    ReservationDto {
        id: r.id.clone(),
        request_code: r.request_code.clone(),
        udi: ReservationUdi {
            pid: r.pid.clone(),
            sn: r.sn.clone(),
        },
        virtual_account: r.virtual_account.clone(),
        universal: r.universal,
        licenses: d
            .licenses
            .iter()
            .filter(|h| h.count > 0)
            .map(|h| LicenseCount {
                tag: h.tag.clone(),
                count: h.count,
            })
            .collect(),
        state: r.state.as_str(),
        created_at: rfc3339(r.created_at),
        confirmed_at: r.confirmed_at.map(rfc3339),
        version: r.version,
        authorization_code: with_code.then(|| r.authorization_code.clone()),
        reason: r.reason.clone(),
    }
}

#[derive(Deserialize, ToSchema)]
pub struct CreateBody {
    /// `CB-Z<PID>:<SN>-<B>-<C>` as the product printed it.
    pub request_code: String,
    pub virtual_account: String,
    /// Specific (SLR): counts per tag. Leave out when `universal` is true.
    #[serde(default)]
    pub licenses: Option<Vec<LicenseCount>>,
    /// Universal (PLR): every feature, no counts.
    #[serde(default)]
    pub universal: bool,
    /// Needed to reserve export-controlled licenses.
    #[serde(default)]
    pub export_acknowledged: bool,
}

fn pairs(v: Vec<LicenseCount>) -> Vec<(String, i64)> {
    v.into_iter().map(|l| (l.tag, l.count)).collect()
}

impl TryFrom<CreateBody> for NewReservation {
    type Error = AppError;
    fn try_from(b: CreateBody) -> Result<Self, AppError> {
        let request = rules::parse_request_code(&b.request_code)?;
        let grant = match (b.universal, b.licenses) {
            (true, None) => Grant::Universal,
            (true, Some(l)) if l.is_empty() => Grant::Universal,
            (false, Some(l)) if !l.is_empty() => Grant::Specific(svc::counts(pairs(l), 1)?),
            _ => {
                return Err(AppError::unprocessable(
                    "invalid_licenses",
                    "Give either licenses: [{tag, count}, ...] (specific) or universal: true.",
                ))
            }
        };
        Ok(NewReservation {
            request,
            virtual_account: b.virtual_account,
            grant,
            export_acknowledged: b.export_acknowledged,
        })
    }
}

#[derive(Deserialize, ToSchema)]
pub struct UpdateBody {
    /// The new totals per tag (0 drops a tag).
    pub licenses: Vec<LicenseCount>,
    #[serde(default)]
    pub export_acknowledged: bool,
}

#[derive(Deserialize, ToSchema)]
pub struct ConfirmBody {
    pub confirmation_code: String,
}

#[derive(Deserialize, ToSchema)]
pub struct RemoveBody {
    #[serde(default)]
    pub reason: String,
}

#[derive(Deserialize, ToSchema)]
pub struct ReturnBody {
    pub return_code: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ReservationQuery {
    /// pending, confirmed, updating, returned, cancelled or removed.
    pub state: Option<String>,
    /// A substring of the UDI or the request code.
    pub q: Option<String>,
    pub limit: Option<u32>,
    pub after: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/accounts/{a}/reservations", tag = "reservations",
    params(("a" = String, Path), ReservationQuery),
    responses((status = 200, body = inline(List<ReservationDto>))), security(("bearer" = [])))]
pub async fn list(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
    q: web::Query<ReservationQuery>,
) -> Result<HttpResponse, AppError> {
    let (a, q) = (path.into_inner(), q.into_inner());
    let filter = Filter {
        state: q
            .state
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(svc::parse_state)
            .transpose()
            .map_err(|_| {
                AppError::bad_request(
                    "state is pending, confirmed, updating, returned, cancelled or removed.",
                )
            })?,
        q: q.q,
        va_id: None,
    };
    let limit = page::clamp_limit(q.limit);
    let page = calls::read_account(&state, &who, &a, move |c, cap, _| {
        svc::list(c, cap, &filter, q.after.as_deref(), limit)
    })
    .await?;
    Ok(HttpResponse::Ok().json(List::from_page(page, |d| dto(d, false))))
}

#[utoipa::path(get, path = "/api/v1/accounts/{a}/reservations/{id}", tag = "reservations",
    params(("a" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = ReservationDto)), security(("bearer" = [])))]
pub async fn show(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (a, id) = path.into_inner();
    let d = calls::read_account(&state, &who, &a, move |c, cap, _| svc::get(c, cap, &id)).await?;
    Ok(HttpResponse::Ok().json(dto(&d, true)))
}

#[utoipa::path(post, path = "/api/v1/accounts/{a}/reservations", tag = "reservations",
    params(("a" = String, Path)), request_body = CreateBody,
    responses((status = 201, body = ReservationDto), (status = 422, body = super::ErrorBody),
              (status = 403, body = super::ErrorBody), (status = 409, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, AppError> {
    let a = path.into_inner();
    let input = NewReservation::try_from(body.into_inner())?;
    let authority = state.authority.clone();
    let d = calls::edit_account(&state, &who, &a, move |tx, cap, now| {
        svc::create(tx, cap, now.unix, now.today, &authority, input)
    })
    .await?;
    Ok(HttpResponse::Created().json(dto(&d, true)))
}

#[utoipa::path(post, path = "/api/v1/accounts/{a}/reservations/{id}/update", tag = "reservations",
    params(("a" = String, Path), ("id" = String, Path)), request_body = UpdateBody,
    responses((status = 200, body = ReservationDto)), security(("bearer" = [])))]
pub async fn update(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String)>,
    body: web::Json<UpdateBody>,
) -> Result<HttpResponse, AppError> {
    let (a, id) = path.into_inner();
    let b = body.into_inner();
    let input = Update {
        counts: svc::counts(pairs(b.licenses), 0)?,
        export_acknowledged: b.export_acknowledged,
    };
    let authority = state.authority.clone();
    let d = calls::edit_account(&state, &who, &a, move |tx, cap, now| {
        svc::update(tx, cap, now.unix, now.today, &authority, &id, input)
    })
    .await?;
    Ok(HttpResponse::Ok().json(dto(&d, true)))
}

#[utoipa::path(post, path = "/api/v1/accounts/{a}/reservations/{id}/confirm", tag = "reservations",
    params(("a" = String, Path), ("id" = String, Path)), request_body = ConfirmBody,
    responses((status = 200, body = ReservationDto)), security(("bearer" = [])))]
pub async fn confirm(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String)>,
    body: web::Json<ConfirmBody>,
) -> Result<HttpResponse, AppError> {
    let (a, id) = path.into_inner();
    let code = body.into_inner().confirmation_code;
    let d = calls::edit_account(&state, &who, &a, move |tx, cap, now| {
        svc::confirm(tx, cap, now.unix, &id, &code)
    })
    .await?;
    Ok(HttpResponse::Ok().json(dto(&d, false)))
}

#[utoipa::path(delete, path = "/api/v1/accounts/{a}/reservations/{id}", tag = "reservations",
    params(("a" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = ReservationDto)), security(("bearer" = [])))]
pub async fn cancel(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (a, id) = path.into_inner();
    let d = calls::edit_account(&state, &who, &a, move |tx, cap, now| {
        svc::cancel(tx, cap, now.unix, &id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(dto(&d, false)))
}

#[utoipa::path(post, path = "/api/v1/accounts/{a}/reservations/{id}/remove", tag = "reservations",
    params(("a" = String, Path), ("id" = String, Path)), request_body = RemoveBody,
    responses((status = 200, body = ReservationDto)), security(("bearer" = [])))]
pub async fn remove(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String)>,
    body: web::Json<RemoveBody>,
) -> Result<HttpResponse, AppError> {
    let (a, id) = path.into_inner();
    let reason = body.into_inner().reason;
    // Admin rights are checked after the account's, so an unknown account is still 404.
    let admin = who.clone();
    let d = calls::edit_account(&state, &who, &a, move |tx, cap, now| {
        let admin = access::system_admin(&admin)?;
        svc::remove(tx, cap, &admin, now.unix, &id, &reason)
    })
    .await?;
    Ok(HttpResponse::Ok().json(dto(&d, false)))
}

#[utoipa::path(post, path = "/api/v1/accounts/{a}/reservations/return", tag = "reservations",
    params(("a" = String, Path)), request_body = ReturnBody,
    responses((status = 200, body = ReservationDto)), security(("bearer" = [])))]
pub async fn return_code(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
    body: web::Json<ReturnBody>,
) -> Result<HttpResponse, AppError> {
    let a = path.into_inner();
    let code = rules::parse_return_code(&body.into_inner().return_code)?;
    let d = calls::edit_account(&state, &who, &a, move |tx, cap, now| {
        svc::return_code(tx, cap, now.unix, &code)
    })
    .await?;
    Ok(HttpResponse::Ok().json(dto(&d, false)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let base = "/api/v1/accounts/{a}/reservations";
    cfg.route(&format!("{base}/return"), web::post().to(return_code))
        .route(base, web::get().to(list))
        .route(base, web::post().to(create))
        .route(&format!("{base}/{{id}}"), web::get().to(show))
        .route(&format!("{base}/{{id}}"), web::delete().to(cancel))
        .route(&format!("{base}/{{id}}/update"), web::post().to(update))
        .route(&format!("{base}/{{id}}/confirm"), web::post().to(confirm))
        .route(&format!("{base}/{{id}}/remove"), web::post().to(remove));
}
