//! `GET /agent/v1/authority.pem`: the authority key as SPKI PEM, what an air-gapped
//! agent is given to check reservation authorization codes with.

use crate::web::{AppError, State};
use actix_web::HttpResponse;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::EncodePublicKey;

pub async fn get(state: State) -> Result<HttpResponse, AppError> {
    let pem = state
        .authority
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(AppError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("application/x-pem-file")
        .body(pem))
}
