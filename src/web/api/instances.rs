//! `/api/v1/accounts/{a}/virtual-accounts/{va}/instances`: list, remove, transfer.

use super::List;
use crate::clock::rfc3339;
use crate::service::access;
use crate::service::instances as service_instances;
use crate::store::instances::{self, Instance};
use crate::store::page;
use crate::web::auth::ApiCaller;
use crate::web::{AppError, State};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct UdiDto {
    pub pid: String,
    pub sn: String,
    pub uuid: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ProductDto {
    pub name: String,
    pub version: String,
}

#[derive(Serialize, ToSchema)]
pub struct UsageDto {
    pub tag: String,
    pub count: i64,
}

#[derive(Serialize, ToSchema)]
pub struct InstanceDto {
    pub id: String,
    pub udi: UdiDto,
    pub product: ProductDto,
    pub virtual_account: String,
    pub registered_at: String,
    pub last_contact: String,
    /// registered, authorized, out_of_compliance, not_authorized, authorization_expired.
    pub status: String,
    /// null when the product gave none.
    pub hostname: Option<String>,
    pub licenses: Vec<UsageDto>,
    /// Upstream: the satellite that reported this instance (read-only here); absent for
    /// instances registered directly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported_by: Option<ReportedByDto>,
}

/// `"reported_by": {"authority_id", "synced_at"}` (CONTRACT section 6).
#[derive(Serialize, ToSchema)]
pub struct ReportedByDto {
    pub authority_id: String,
    pub synced_at: String,
}

/// A listed instance with who reported it, when a satellite did.
pub fn item_dto(i: crate::service::instance_list::Item) -> InstanceDto {
    let mut out = dto(&i.instance, &i.va.name, i.usage);
    out.reported_by = i.reported_by.map(|r| ReportedByDto {
        authority_id: r.authority_id,
        synced_at: rfc3339(r.synced_at),
    });
    out
}

pub fn dto(i: &Instance, va_name: &str, usage: Vec<(String, i64)>) -> InstanceDto {
    InstanceDto {
        id: i.id.clone(),
        udi: UdiDto {
            pid: i.udi.pid.clone(),
            sn: i.udi.sn.clone(),
            uuid: i.udi.uuid.clone(),
        },
        product: ProductDto {
            name: i.product_name.clone(),
            version: i.product_version.clone(),
        },
        virtual_account: va_name.to_string(),
        registered_at: rfc3339(i.registered_at),
        last_contact: rfc3339(i.last_contact),
        status: i.status.as_str().to_string(),
        hostname: i.hostname.clone(),
        licenses: usage
            .into_iter()
            .map(|(tag, count)| UsageDto { tag, count })
            .collect(),
        reported_by: None,
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct InstanceQuery {
    pub limit: Option<u32>,
    pub after: Option<String>,
    /// Prefix of the id, PID, serial number or hostname.
    pub search: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/accounts/{a}/virtual-accounts/{va}/instances", tag = "instances",
    params(("a" = String, Path), ("va" = String, Path), InstanceQuery),
    responses((status = 200, body = inline(List<InstanceDto>))), security(("bearer" = [])))]
pub async fn list(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String)>,
    q: web::Query<InstanceQuery>,
) -> Result<HttpResponse, AppError> {
    let ((a, va), q) = (path.into_inner(), q.into_inner());
    let limit = page::clamp_limit(q.limit);
    let list = state
        .store
        .read(move |c| {
            let (cap, va) = access::read_va(c, &who, &a, &va)?;
            let (items, next_after) = crate::service::instance_list::va_by_id(
                c,
                &cap,
                &va,
                q.search.as_deref(),
                q.after.as_deref(),
                limit,
            )?;
            Ok(List {
                items: items.into_iter().map(item_dto).collect(),
                next_after,
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(list))
}

#[utoipa::path(delete, path = "/api/v1/accounts/{a}/virtual-accounts/{va}/instances/{id}", tag = "instances",
    params(("a" = String, Path), ("va" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn remove(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, AppError> {
    let (a, va, id) = path.into_inner();
    let now = state.clock.unix();
    let removed = id.clone();
    state
        .store
        .write(move |tx| {
            let (cap, va) = access::edit_va(tx, &who, &a, &va)?;
            crate::service::instance_list::refuse_reported(tx, va.id, &id)?;
            Ok(service_instances::remove(tx, &cap, now, &va, &id)?)
        })
        .await?;
    state.agent_keys.forget(&removed);
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, ToSchema)]
pub struct InstanceTransfer {
    pub to_virtual_account: String,
}

#[utoipa::path(post, path = "/api/v1/accounts/{a}/virtual-accounts/{va}/instances/{id}/transfer", tag = "instances",
    params(("a" = String, Path), ("va" = String, Path), ("id" = String, Path)), request_body = InstanceTransfer,
    responses((status = 200, body = InstanceDto), (status = 409, body = super::ErrorBody),
              (status = 422, body = super::ErrorBody)), security(("bearer" = [])))]
pub async fn transfer(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String, String)>,
    body: web::Json<InstanceTransfer>,
) -> Result<HttpResponse, AppError> {
    let ((a, va, id), b) = (path.into_inner(), body.into_inner());
    let now = state.clock.unix();
    let moved = state
        .store
        .write(move |tx| {
            let (cap, from) = access::edit_va(tx, &who, &a, &va)?;
            crate::service::instance_list::refuse_reported(tx, from.id, &id)?;
            let to = service_instances::transfer(tx, &cap, now, &from, &id, &b.to_virtual_account)?;
            let inst = instances::find_in_va(tx, &to, &id)?;
            Ok(dto(&inst, &to.name, instances::usage_of(tx, &id)?))
        })
        .await?;
    Ok(HttpResponse::Ok().json(moved))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let base = "/api/v1/accounts/{a}/virtual-accounts/{va}/instances";
    cfg.route(base, web::get().to(list))
        .route(&format!("{base}/{{id}}"), web::delete().to(remove))
        .route(&format!("{base}/{{id}}/transfer"), web::post().to(transfer));
}
