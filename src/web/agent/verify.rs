//! Authenticates a signed agent request, in the contract's order: instance, timestamp,
//! signature. Body validation comes only after all three pass.

use super::keys::KnownKey;
use crate::crypto::agent_sig::{self, INSTANCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::crypto::batch_verify::Item;
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
    let kept = state.agent_keys.get(&id);
    let refused = match &kept {
        Some(known) => match check(state, known, req, body, now).await {
            Ok(()) => return Ok(verified(id, known)),
            // The key may have changed, or the certificate been renewed or the instance
            // removed, since it was kept: the database decides.
            Err(e) => Some(e),
        },
        None => None,
    };
    state.metrics.agent_key_read();
    let lookup_id = id.clone();
    let stored = state
        .store
        .lookup(move |c| instances::credentials(c, &lookup_id))
        .await?;
    let Some(stored) = stored else {
        state.agent_keys.forget(&id);
        return Err(instance::not_registered().into());
    };
    if let (Some(known), Some(refused)) = (&kept, refused) {
        if known.key.as_bytes().as_slice() == stored.public_key.as_slice()
            && known.cert_expires_at == stored.cert_expires_at
        {
            // What was kept is what is stored: the refusal stands, checked once, and the
            // entry stays (a peer sending bad signatures for an id cannot evict its key).
            return Err(refused);
        }
    }
    // Keys are checked when an instance registers, so a stored key always parses.
    let key = <[u8; 32]>::try_from(stored.public_key.as_slice())
        .ok()
        .and_then(|bytes| ed25519_dalek::VerifyingKey::from_bytes(&bytes).ok())
        .ok_or_else(bad_signature)?;
    let known = KnownKey {
        key,
        cert_expires_at: stored.cert_expires_at,
    };
    state.agent_keys.remember(&id, known.clone());
    check(state, &known, req, body, now).await?;
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

/// The timestamp header: ASCII digits only, unix seconds within the window of `now`.
fn check_timestamp(text: Option<&str>, now: i64) -> Result<i64, AppError> {
    let stale = || {
        AppError::unauthorized(
            "stale_timestamp",
            "X-Satellite-Timestamp must be unix seconds within 300 s of the server's clock.",
        )
    };
    let text = text.ok_or_else(stale)?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(stale());
    }
    let ts: i64 = text.parse().map_err(|_| stale())?;
    if now.checked_sub(ts).is_none_or(|d| d.abs() > CLOCK_WINDOW) {
        return Err(stale());
    }
    Ok(ts)
}

/// Registration still current, timestamp within the window, signature valid (checked in
/// a batch with other requests' signatures, see verifier.rs).
async fn check(
    state: &State,
    known: &KnownKey,
    req: &HttpRequest,
    body: &[u8],
    now: i64,
) -> Result<(), AppError> {
    instance::check_registration_current(known.cert_expires_at, now)?;
    let timestamp = header(req, TIMESTAMP_HEADER);
    check_timestamp(timestamp, now)?;
    let timestamp = timestamp.unwrap_or_default();
    let signature = header(req, SIGNATURE_HEADER).ok_or_else(bad_signature)?;
    let message =
        agent_sig::request_message(req.method().as_str(), req.uri().path(), timestamp, body);
    let signature = agent_sig::decode_signature(signature).ok_or_else(bad_signature)?;
    let item = Item {
        key: known.key,
        message,
        signature,
    };
    if !state.signatures.verify(item).await {
        return Err(bad_signature());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any header text is a typed answer: accepted only when it is digits within the
        /// window, else `stale_timestamp`; never a panic (overflow included).
        #[test]
        fn timestamp_header_is_typed(text in ".{0,40}", now in any::<i64>()) {
            match check_timestamp(Some(&text), now) {
                Ok(ts) => {
                    prop_assert!(text.bytes().all(|b| b.is_ascii_digit()));
                    prop_assert!((now - ts).abs() <= CLOCK_WINDOW);
                }
                Err(e) => prop_assert_eq!(e.code, "stale_timestamp"),
            }
        }

        #[test]
        fn timestamp_digits_near_now_pass(delta in -300i64..=300, now in 1_000_000i64..4_000_000_000) {
            prop_assert_eq!(check_timestamp(Some(&(now + delta).to_string()), now).ok(), Some(now + delta));
        }

        /// Arbitrary signature header text never verifies and never panics.
        #[test]
        fn signature_header_is_typed(sig in ".{0,120}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
            let message = agent_sig::request_message("POST", "/agent/v1/usage", "1", &body);
            prop_assert!(!agent_sig::verify_b64(&key, &message, &sig));
        }
    }
}
