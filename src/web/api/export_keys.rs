//! `/api/v1/accounts/{a}/export-keys`: an account's export keys for admins (CONTRACT
//! section 4), and approving or denying the pending ones.

use super::instances::UdiDto;
use super::{List, ListQuery};
use crate::clock::rfc3339;
use crate::domain::export_key::{DenyReason, ExportKeyState};
use crate::service::export_keys;
use crate::store::export_keys::ExportKey;
use crate::store::page;
use crate::web::auth::ApiCaller;
use crate::web::{calls, AppError, State};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct ExportKeyDto {
    pub id: String,
    pub instance_id: String,
    pub udi: UdiDto,
    pub virtual_account: String,
    pub tag: String,
    /// pending, granted, denied, returned or cancelled.
    pub state: String,
    pub requested_at: String,
    /// When it last changed state (granted, denied, returned, cancelled).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<&ExportKey> for ExportKeyDto {
    fn from(k: &ExportKey) -> Self {
        Self {
            id: k.id.clone(),
            instance_id: k.instance_id.clone(),
            udi: UdiDto {
                pid: k.udi.pid.clone(),
                sn: k.udi.sn.clone(),
                uuid: k.udi.uuid.clone(),
            },
            virtual_account: k.virtual_account.clone(),
            tag: k.tag.clone(),
            state: k.state.as_str().to_string(),
            requested_at: rfc3339(k.requested_at),
            decided_at: k.decided_at.map(rfc3339),
            reason: k.reason.clone(),
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct StateQuery {
    /// Only keys in this state: pending, granted, denied, returned, cancelled.
    pub state: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DenyBody {
    /// Shown to the agent; "Denied by an admin." when left out.
    pub reason: Option<String>,
}

fn parse_state(raw: Option<&str>) -> Result<Option<ExportKeyState>, AppError> {
    raw.filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ExportKeyState>().map_err(|_| {
                AppError::bad_request(
                    "state is one of pending, granted, denied, returned, cancelled.",
                )
            })
        })
        .transpose()
}

#[utoipa::path(get, path = "/api/v1/accounts/{a}/export-keys", tag = "export keys",
    params(("a" = String, Path, description = "account name"), StateQuery, ListQuery),
    responses((status = 200, body = inline(List<ExportKeyDto>)), (status = 400, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
    s: web::Query<StateQuery>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    let (name, q) = (path.into_inner(), q.into_inner());
    let wanted = parse_state(s.state.as_deref())?;
    let limit = page::clamp_limit(q.limit);
    let page = calls::read_account(&state, &who, &name, move |c, cap, _| {
        export_keys::list(c, cap, wanted, q.after.as_deref(), limit)
    })
    .await?;
    Ok(HttpResponse::Ok().json(List::from_page(page, |k| ExportKeyDto::from(k))))
}

#[utoipa::path(post, path = "/api/v1/accounts/{a}/export-keys/{id}/approve", tag = "export keys",
    params(("a" = String, Path, description = "account name"), ("id" = String, Path, description = "export key id")),
    responses((status = 200, body = ExportKeyDto), (status = 403, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn approve(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (a, id) = path.into_inner();
    let key = calls::edit_account(&state, &who, &a, move |tx, cap, now| {
        export_keys::approve(tx, cap, now.unix, now.today, &id)
    })
    .await?;
    Ok(HttpResponse::Ok().json(ExportKeyDto::from(&key)))
}

#[utoipa::path(post, path = "/api/v1/accounts/{a}/export-keys/{id}/deny", tag = "export keys",
    params(("a" = String, Path, description = "account name"), ("id" = String, Path, description = "export key id")),
    request_body(content = DenyBody, description = "optional"),
    responses((status = 200, body = ExportKeyDto), (status = 403, body = super::ErrorBody),
              (status = 404, body = super::ErrorBody), (status = 409, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn deny(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let (a, id) = path.into_inner();
    // The body is optional: empty means no reason.
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<DenyBody>(&body)
            .map_err(|e| AppError::bad_request(format!("Request body is not valid: {e}")))?
            .reason
    };
    let reason = DenyReason::parse(reason.as_deref())?;
    let key = calls::edit_account(&state, &who, &a, move |tx, cap, now| {
        export_keys::deny(tx, cap, now.unix, &id, &reason)
    })
    .await?;
    Ok(HttpResponse::Ok().json(ExportKeyDto::from(&key)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let base = "/api/v1/accounts/{a}/export-keys";
    cfg.route(base, web::get().to(list))
        .route(&format!("{base}/{{id}}/approve"), web::post().to(approve))
        .route(&format!("{base}/{{id}}/deny"), web::post().to(deny));
}
