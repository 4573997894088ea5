//! Upstream: the satellite tokens an account issued and the satellites registered with it
//! (CONTRACT.md section 3 names only token creation; these four routes are ours, see
//! docs/protocol.md): `GET /api/v1/accounts/{a}/satellite-tokens`,
//! `DELETE .../satellite-tokens/{id}` (an unused token), `GET /api/v1/accounts/{a}/satellites`,
//! `DELETE .../satellites/{id}` (deregister: its bundles are refused from then on).

use super::{List, ListQuery};
use crate::clock::rfc3339;
use crate::config::ServerRole;
use crate::crypto::keys::key_fingerprint;
use crate::service::access;
use crate::service::satellites::{self, SatelliteToken};
use crate::store::page;
use crate::store::sync_state::Satellite;
use crate::web::auth::ApiCaller;
use crate::web::calls::sync::require_role;
use crate::web::{AppError, State};
use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
pub struct SatelliteTokenDto {
    pub id: String,
    pub description: String,
    pub created_at: String,
    pub expires_at: String,
    /// unused, used, expired or revoked.
    pub state: String,
    pub used_at: Option<String>,
    pub revoked_at: Option<String>,
}

pub fn token_dto(t: &SatelliteToken) -> SatelliteTokenDto {
    SatelliteTokenDto {
        id: t.row.id.clone(),
        description: t.row.description.clone(),
        created_at: rfc3339(t.row.created_at),
        expires_at: rfc3339(t.row.expires_at),
        state: t.state.as_str().to_string(),
        used_at: t.row.used_at.map(rfc3339),
        revoked_at: t.row.revoked_at.map(rfc3339),
    }
}

#[derive(Serialize, ToSchema)]
pub struct SatelliteDto {
    pub id: i64,
    pub authority_id: String,
    /// The account's name on the satellite.
    pub satellite_account: String,
    /// The satellite's pinned key, as a SHA-256 fingerprint.
    pub fingerprint: String,
    pub registered_at: String,
    pub last_sync: Option<String>,
    pub last_sequence: i64,
    pub instances: i64,
}

pub fn satellite_dto(s: &Satellite) -> SatelliteDto {
    SatelliteDto {
        id: s.id,
        authority_id: s.authority_id.clone(),
        satellite_account: s.local_account.clone(),
        fingerprint: key_fingerprint(&s.public_key),
        registered_at: rfc3339(s.registered_at),
        last_sync: s.last_sync.map(rfc3339),
        last_sequence: s.last_sequence,
        instances: s.instance_count,
    }
}

fn upstream_only(state: &State) -> Result<(), AppError> {
    require_role(state, ServerRole::Upstream, "Satellite administration")
}

#[utoipa::path(get, path = "/api/v1/accounts/{a}/satellite-tokens", tag = "sync",
    params(("a" = String, Path), ListQuery),
    responses((status = 200, body = inline(List<SatelliteTokenDto>)), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_tokens(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, AppError> {
    upstream_only(&state)?;
    let (a, q) = (path.into_inner(), q.into_inner());
    let limit = page::clamp_limit(q.limit);
    let now = state.clock.unix();
    let page = state
        .store
        .read(move |c| {
            let cap = access::read_account(c, &who, &a)?;
            Ok(satellites::tokens(c, &cap, now, q.after.as_deref(), limit)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(List::from_page(page, token_dto)))
}

#[utoipa::path(delete, path = "/api/v1/accounts/{a}/satellite-tokens/{id}", tag = "sync",
    params(("a" = String, Path), ("id" = String, Path)),
    responses((status = 200, body = SatelliteTokenDto), (status = 404, body = super::ErrorBody),
              (status = 409, body = super::ErrorBody, description = "token_used: it registered a satellite already")),
    security(("bearer" = [])))]
pub async fn revoke_token(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    upstream_only(&state)?;
    let (a, id) = path.into_inner();
    let now = state.clock.unix();
    let t = state
        .store
        .write(move |tx| {
            let cap = access::edit_account(tx, &who, &a)?;
            Ok(satellites::revoke_token(tx, &cap, now, &id)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(token_dto(&t)))
}

#[utoipa::path(get, path = "/api/v1/accounts/{a}/satellites", tag = "sync", params(("a" = String, Path)),
    responses((status = 200, body = inline(List<SatelliteDto>)), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_satellites(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    upstream_only(&state)?;
    let a = path.into_inner();
    let sats = state
        .store
        .read(move |c| {
            let cap = access::read_account(c, &who, &a)?;
            Ok(satellites::satellites(c, &cap)?)
        })
        .await?;
    // A handful per account: one page.
    Ok(HttpResponse::Ok().json(List {
        items: sats.iter().map(satellite_dto).collect(),
        next_after: None,
    }))
}

#[utoipa::path(delete, path = "/api/v1/accounts/{a}/satellites/{id}", tag = "sync",
    params(("a" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = SatelliteDto), (status = 404, body = super::ErrorBody)),
    security(("bearer" = [])))]
pub async fn revoke_satellite(
    state: State,
    ApiCaller(who): ApiCaller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    upstream_only(&state)?;
    let (a, id) = path.into_inner();
    let now = state.clock.unix();
    let sat = state
        .store
        .write(move |tx| {
            let cap = access::edit_account(tx, &who, &a)?;
            let id = satellites::parse_satellite_id(&id)?;
            Ok(satellites::revoke_satellite(tx, &cap, now, id)?)
        })
        .await?;
    Ok(HttpResponse::Ok().json(satellite_dto(&sat)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    let a = "/api/v1/accounts/{a}";
    cfg.route(&format!("{a}/satellite-tokens"), web::get().to(list_tokens))
        .route(
            &format!("{a}/satellite-tokens/{{id}}"),
            web::delete().to(revoke_token),
        )
        .route(&format!("{a}/satellites"), web::get().to(list_satellites))
        .route(
            &format!("{a}/satellites/{{id}}"),
            web::delete().to(revoke_satellite),
        );
}
