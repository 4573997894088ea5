//! Authenticates a signed agent request, in the contract's order: instance, timestamp,
//! signature. Body validation comes only after all three pass.

use crate::crypto::agent_sig::{self, INSTANCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::domain::timers::CLOCK_WINDOW;
use crate::store::instances;
use crate::web::{AppError, State};
use actix_web::HttpRequest;

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// An instance whose signed request checked out.
pub struct Verified {
    pub id: String,
}

pub async fn signed_instance(
    state: &State,
    req: &HttpRequest,
    body: &[u8],
) -> Result<Verified, AppError> {
    let not_registered =
        |msg: &str| AppError::unauthorized("instance_not_registered", msg.to_string());
    let id = header(req, INSTANCE_HEADER)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| not_registered("X-Satellite-Instance is missing."))?
        .to_string();
    let now = state.clock.unix();
    let lookup_id = id.clone();
    let instance = state
        .store
        .lookup(move |c| instances::credentials(c, &lookup_id))
        .await?
        .ok_or_else(|| {
            not_registered("This instance is not registered (unknown, removed or deregistered).")
        })?;
    if instance.cert_expires_at <= now {
        return Err(not_registered(
            "This instance's registration has expired; register again.",
        ));
    }
    let stale = || {
        AppError::unauthorized(
            "stale_timestamp",
            "X-Satellite-Timestamp must be unix seconds within 300 s of the server's clock.",
        )
    };
    let timestamp = header(req, TIMESTAMP_HEADER).ok_or_else(stale)?;
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(stale());
    }
    let ts: i64 = timestamp.parse().map_err(|_| stale())?;
    if (now - ts).abs() > CLOCK_WINDOW {
        return Err(stale());
    }
    let bad_signature = || {
        AppError::unauthorized(
            "bad_signature",
            "X-Satellite-Signature is missing or not valid.",
        )
    };
    let signature = header(req, SIGNATURE_HEADER).ok_or_else(bad_signature)?;
    let key_bytes: [u8; 32] = instance
        .public_key
        .as_slice()
        .try_into()
        .map_err(|_| bad_signature())?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key_bytes).map_err(|_| bad_signature())?;
    let message =
        agent_sig::request_message(req.method().as_str(), req.uri().path(), timestamp, body);
    if !agent_sig::verify_b64(&key, &message, signature) {
        return Err(bad_signature());
    }
    Ok(Verified { id })
}
