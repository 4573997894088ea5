//! Signs every `/agent/v1` response body with the authority key, so agents can trust
//! answers (and refusals) even through a proxy that terminates TLS.

use crate::crypto::agent_sig::RESPONSE_SIGNATURE_HEADER;
use crate::web::State;
use actix_web::body::{self, BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::Error;

/// Marks a response whose body never repeats (it carries an id certificate just issued):
/// it is signed without being kept among the recent signatures
/// (crypto/recent_signatures.rs), where it would only push out replies that do repeat.
pub struct NeverRepeats;

pub async fn sign_agent_responses(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let is_agent = req.path().starts_with("/agent/v1");
    let state = req.app_data::<State>().cloned();
    let res = next.call(req).await?;
    let Some(state) = state.filter(|_| is_agent) else {
        return Ok(res.map_into_boxed_body());
    };
    let never_repeats = res.response().extensions().contains::<NeverRepeats>();
    let (req, res) = res.into_parts();
    let (mut res, body) = res.into_parts();
    let bytes = body::to_bytes(body)
        .await
        .map_err(|_| actix_web::error::ErrorInternalServerError("response body unreadable"))?;
    let (signature, kept) = if never_repeats {
        (state.authority.sign_b64(&bytes), false)
    } else {
        state.authority.sign_reply_b64(&bytes)
    };
    state.metrics.reply_signed(kept);
    if let Ok(value) = HeaderValue::from_str(&signature) {
        res.headers_mut()
            .insert(HeaderName::from_static(RESPONSE_SIGNATURE_HEADER), value);
    }
    Ok(ServiceResponse::new(
        req,
        res.set_body(bytes).map_into_boxed_body(),
    ))
}
