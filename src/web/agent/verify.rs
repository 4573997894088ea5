//! Authenticates a signed agent request, in the contract's order: instance, timestamp,
//! signature. Body validation comes only after all three pass.

use super::keys::KnownKey;
use crate::crypto::agent_sig::{self, INSTANCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::domain::instance;
use crate::domain::timers::CLOCK_WINDOW;
use crate::store::instances::{self, Signer};
use crate::web::{AppError, State};
use actix_web::HttpRequest;

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// An instance whose signed request checked out, and the key it checked out against.
pub struct Verified {
    pub id: String,
    pub public_key: [u8; 32],
}

impl Verified {
    /// For the write that follows, which confirms the key in its own transaction.
    pub fn signer(&self) -> Signer<'_> {
        Signer {
            id: &self.id,
            public_key: &self.public_key,
        }
    }
}

pub async fn signed_instance(
    state: &State,
    req: &HttpRequest,
    body: &[u8],
) -> Result<Verified, AppError> {
    let id = header(req, INSTANCE_HEADER)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            AppError::unauthorized(
                "instance_not_registered",
                "X-Satellite-Instance is missing.",
            )
        })?
        .to_string();
    let now = state.clock.unix();
    if let Some(known) = state.agent_keys.get(&id) {
        if check(&known, req, body, now).is_ok() {
            return Ok(verified(id, &known));
        }
        // The key may have changed or the certificate been renewed since it was cached:
        // the database decides.
        state.agent_keys.forget(&id);
    }
    let lookup_id = id.clone();
    let stored = state
        .store
        .lookup(move |c| instances::credentials(c, &lookup_id))
        .await?
        .ok_or_else(instance::not_registered)?;
    // Keys are checked when an instance registers, so a stored key always parses.
    let key = <[u8; 32]>::try_from(stored.public_key.as_slice())
        .ok()
        .and_then(|bytes| ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok())
        .ok_or_else(bad_signature)?;
    let known = KnownKey {
        key,
        cert_expires_at: stored.cert_expires_at,
    };
    check(&known, req, body, now)?;
    state.agent_keys.remember(&id, known.clone());
    Ok(verified(id, &known))
}

fn verified(id: String, known: &KnownKey) -> Verified {
    Verified {
        id,
        public_key: known.key.to_bytes(),
    }
}

fn bad_signature() -> AppError {
    instance::bad_signature().into()
}

/// Registration still current, timestamp within the window, signature valid.
fn check(known: &KnownKey, req: &HttpRequest, body: &[u8], now: i64) -> Result<(), AppError> {
    instance::check_registration_current(known.cert_expires_at, now)?;
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
    let signature = header(req, SIGNATURE_HEADER).ok_or_else(bad_signature)?;
    let message =
        agent_sig::request_message(req.method().as_str(), req.uri().path(), timestamp, body);
    if !agent_sig::verify_b64(&known.key, &message, signature) {
        return Err(bad_signature());
    }
    Ok(())
}
