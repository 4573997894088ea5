//! `GET /agent/v1/authority` and `POST /agent/v1/register`.

use super::body::RawBody;
use super::certificate::{self, Issue};
use crate::crypto::agent_sig;
use crate::domain::instance;
use crate::domain::registration::check_hostname;
use crate::service::instances::{self, RegisterInput};
use crate::web::{AppError, State};
use actix_web::HttpResponse;
use serde::Deserialize;

pub async fn authority(state: State) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "authority_id": state.authority.authority_id(),
        "public_key": state.authority.public_key_b64(),
    }))
}

#[derive(Deserialize)]
struct UdiBody {
    pid: String,
    sn: String,
    uuid: Option<String>,
}

#[derive(Deserialize)]
struct ProductBody {
    name: String,
    version: String,
}

#[derive(Deserialize)]
struct RegisterBody {
    token: String,
    udi: UdiBody,
    public_key: String,
    product: ProductBody,
    hostname: Option<String>,
    #[serde(default)]
    reregister: bool,
}

pub fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, AppError> {
    serde_json::from_slice(body)
        .map_err(|e| AppError::bad_request(format!("Request body is not valid: {e}")))
}

pub async fn register(state: State, RawBody(body): RawBody) -> Result<HttpResponse, AppError> {
    // Shape and fields first, the token last: a malformed request never spends a use.
    let b: RegisterBody = parse_json(&body)?;
    let udi = instance::check_udi(&b.udi.pid, &b.udi.sn, b.udi.uuid.as_deref())?;
    let key = agent_sig::decode_public_key(&b.public_key).ok_or_else(|| {
        AppError::unprocessable(
            "invalid_public_key",
            "public_key must be a raw 32-byte ed25519 key in base64.",
        )
    })?;
    instance::check_product(&b.product.name, &b.product.version)?;
    check_hostname(b.hostname.as_deref())?;
    let registration = RegisterInput {
        token: b.token,
        udi: udi.clone(),
        public_key: key.to_bytes(),
        product_name: b.product.name,
        product_version: b.product.version,
        hostname: b.hostname,
        reregister: b.reregister,
    };
    let now = state.clock.unix();
    let done = state
        .store
        .write(move |tx| Ok(instances::register(tx, now, &registration)?))
        .await?;
    tracing::info!(instance = %done.instance_id, placement = ?done.placement, "instance registered");
    let answer = certificate::issue(
        &state.authority,
        Issue {
            instance_id: &done.instance_id,
            udi: &udi,
            public_key: key.as_bytes(),
            virtual_account: &done.virtual_account,
            issued_at: done.issued_at,
            renew_after: done.renew_after,
            expires_at: done.expires_at,
            export_controlled: done.export_controlled,
        },
    );
    Ok(HttpResponse::Created().json(answer))
}
