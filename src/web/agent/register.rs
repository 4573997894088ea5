//! `GET /agent/v1/authority` and `POST /agent/v1/register`.

use super::body::RawBody;
use super::certificate::{self, Issue};
use super::keys::KnownKey;
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

/// A register body, checked: shape and every field, the token not yet looked at.
struct Checked {
    b: RegisterBody,
    udi: instance::Udi,
    key: ed25519_dalek::VerifyingKey,
}

fn check_body(body: &[u8]) -> Result<Checked, AppError> {
    let b: RegisterBody = parse_json(body)?;
    let udi = instance::check_udi(&b.udi.pid, &b.udi.sn, b.udi.uuid.as_deref())?;
    let key = agent_sig::decode_public_key(&b.public_key).ok_or_else(|| {
        AppError::unprocessable(
            "invalid_public_key",
            "public_key must be a raw 32-byte ed25519 key in base64.",
        )
    })?;
    instance::check_product(&b.product.name, &b.product.version)?;
    check_hostname(b.hostname.as_deref())?;
    Ok(Checked { b, udi, key })
}

pub async fn register(state: State, RawBody(body): RawBody) -> Result<HttpResponse, AppError> {
    // Shape and fields first, the token last: a malformed request never spends a use.
    let Checked { b, udi, key } = check_body(&body)?;
    // Per token as well as per address (web/throttle.rs): a token shared by a fleet is
    // used at a human pace, a guessed one is not.
    let token_key = crate::web::throttle::credential_key("token", &b.token);
    if let Err(wait) = state.rates.credential.check(&token_key) {
        return Err(AppError::too_many_requests(
            format!("Too many registrations with this token; retry in {wait} s."),
            wait,
        ));
    }
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
    // Every refusal of a registration (token, UDI held elsewhere) comes before its first
    // write: no savepoint needed (store::batch).
    let done = state
        .store
        .write_unguarded(move |tx| Ok(instances::register(tx, now, &registration)?))
        .await?;
    tracing::info!(instance = %done.instance_id, placement = ?done.placement, "instance registered");
    // Its first report follows at once: the key is known and already parsed, so that
    // report needs no lookup. A re-registration replaces the old key here as well.
    state.agent_keys.remember(
        &done.instance_id,
        KnownKey {
            key,
            cert_expires_at: done.expires_at,
        },
    );
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
    Ok(answer.into_response(actix_web::http::StatusCode::CREATED))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Arbitrary bytes as a register body: a typed 4xx, never a panic.
        #[test]
        fn arbitrary_bytes_are_a_typed_error(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Err(e) = check_body(&bytes) {
                prop_assert!(e.status.is_client_error());
            }
        }

        #[test]
        fn arbitrary_fields_are_typed(
            pid in ".{0,80}", sn in ".{0,80}", key in ".{0,60}",
            name in ".{0,80}", version in ".{0,40}", hostname in proptest::option::of(".{0,300}"),
        ) {
            let body = serde_json::json!({
                "token": "t", "udi": {"pid": pid, "sn": sn}, "public_key": key,
                "product": {"name": name, "version": version}, "hostname": hostname,
            });
            if let Err(e) = check_body(body.to_string().as_bytes()) {
                prop_assert!(e.status.is_client_error());
            }
        }
    }
}
