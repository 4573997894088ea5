//! `POST /agent/v1/renew` (new id certificate) and `POST /agent/v1/deregister`.

use super::body::RawBody;
use super::certificate::{self, Issue};
use super::register::parse_json;
use super::verify::signed_instance;
use crate::domain::registration::check_hostname;
use crate::service;
use crate::store::instances;
use crate::web::{AppError, State};
use actix_web::{HttpRequest, HttpResponse};

#[derive(Default, serde::Deserialize)]
struct RenewBody {
    hostname: Option<String>,
}

pub async fn renew(
    state: State,
    req: HttpRequest,
    RawBody(body): RawBody,
) -> Result<HttpResponse, AppError> {
    let instance = signed_instance(&state, &req, &body).await?;
    // No body and `{}` both mean "nothing changed".
    let asked: RenewBody = if body.iter().all(u8::is_ascii_whitespace) {
        RenewBody::default()
    } else {
        parse_json(&body)?
    };
    check_hostname(asked.hostname.as_deref())?;
    let now = state.clock.unix();
    // Every refusal of a renewal (unknown instance, signer) comes before its first
    // write: no savepoint needed (store::batch).
    let (instance, va_name) = state
        .store
        .write_unguarded(move |tx| {
            Ok(service::instances::renew(
                tx,
                now,
                instance.signer(),
                asked.hostname.as_deref(),
            )?)
        })
        .await?;
    state
        .agent_keys
        .renewed(&instance.id, instance.cert_expires_at);
    let answer = certificate::issue(
        &state.authority,
        Issue {
            instance_id: &instance.id,
            udi: &instance.udi,
            public_key: &instance.public_key,
            virtual_account: &va_name,
            issued_at: now,
            renew_after: instance.cert_renew_after,
            expires_at: instance.cert_expires_at,
            export_controlled: instance.export_controlled,
        },
    );
    Ok(answer.into_response(actix_web::http::StatusCode::OK))
}

pub async fn deregister(
    state: State,
    req: HttpRequest,
    RawBody(body): RawBody,
) -> Result<HttpResponse, AppError> {
    let instance = signed_instance(&state, &req, &body).await?;
    let now = state.clock.unix();
    let id = instance.id.clone();
    state
        .store
        .write(move |tx| instances::deregister(tx, now, instance.signer()))
        .await?;
    state.agent_keys.forget(&id);
    tracing::info!(instance = %id, "instance deregistered");
    Ok(HttpResponse::Ok().json(serde_json::json!({ "instance_id": id, "status": "deregistered" })))
}
