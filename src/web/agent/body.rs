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
                if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    AppError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        format!(
                            "Request body is larger than {} bytes.",
                            crate::web::BODY_LIMIT
                        ),
                    )
                } else {
                    AppError::bad_request(format!("Request body could not be read: {e}"))
                }
            })
        })
    }
}
