//! The raw request body (signatures cover its exact bytes), with payload errors answered
//! in the contract's JSON shape rather than actix's plain text.

use crate::web::AppError;
use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{web, FromRequest, HttpRequest};
use std::future::Future;
use std::pin::Pin;

pub struct RawBody(pub web::Bytes);

impl FromRequest for RawBody {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            bytes.await.map(RawBody).map_err(|e| {
                // The body guard (web/limits.rs) ends a body that is too large or too slow
                // with a payload error; the extractor's own ceiling gives 413 as well.
                if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    crate::web::limits::too_large(None)
                } else if let Some(p) = e.as_error::<actix_web::error::PayloadError>() {
                    crate::web::limits::payload_error(p)
                } else {
                    AppError::bad_request(format!("Request body could not be read: {e}"))
                }
            })
        })
    }
}
