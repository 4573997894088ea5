//! `POST /oauth/token`: OAuth2 client credentials for machine clients.

use crate::store::api_clients;
use crate::web::{AppError, State};
use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
pub struct TokenRequest {
    /// Must be `client_credentials`.
    pub grant_type: String,
    pub client_id: String,
    pub client_secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: i64,
}

#[utoipa::path(post, path = "/oauth/token", tag = "auth",
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = TokenResponse), (status = 401, body = super::ErrorBody)))]
pub async fn token(state: State, form: web::Form<TokenRequest>) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    if form.grant_type != "client_credentials" {
        return Err(AppError::bad_request(
            "grant_type must be client_credentials.",
        ));
    }
    // Per client id as well as per address (web/throttle.rs): guessing one client's
    // secret from many addresses is slowed too.
    let key = crate::web::throttle::credential_key("client", &form.client_id);
    if let Err(wait) = state.rates.credential.check(&key) {
        return Err(AppError::too_many_requests(
            format!("Too many token requests for this client; retry in {wait} s."),
            wait,
        ));
    }
    let now = state.clock.unix();
    let issued = state
        .store
        .write(move |tx| api_clients::issue_token(tx, &form.client_id, &form.client_secret, now))
        .await?;
    let (access_token, expires_in) = issued.ok_or_else(|| {
        AppError::unauthorized(
            "invalid_client",
            "Unknown client_id or wrong client_secret.",
        )
    })?;
    Ok(HttpResponse::Ok().json(TokenResponse {
        access_token,
        token_type: "bearer",
        expires_in,
    }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/oauth/token", web::post().to(token));
}
