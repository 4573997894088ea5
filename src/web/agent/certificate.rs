//! The id certificate answer shared by register and renew.

use crate::clock::rfc3339;
use crate::crypto::idcert::{self, CertificatePayload, SignedCertificate, UdiJson};
use crate::crypto::AuthorityKey;
use crate::domain::instance::Udi;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use base64::Engine;
use serde::Serialize;

#[derive(Serialize)]
pub struct CertificateResponse {
    pub instance_id: String,
    pub virtual_account: String,
    pub id_certificate: SignedCertificate,
    pub renew_after: String,
    pub expires_at: String,
    pub authority_public_key: String,
    /// After a key rotation: the previous key's statement vouching for
    /// `authority_public_key`, so agents that pinned the old key can move over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authority_key_rotation: Option<crate::crypto::rotation::Vouch>,
}

impl CertificateResponse {
    /// The answer carrying it. A certificate just issued is in no other answer, so its
    /// signature is not kept for reuse (`signing::NeverRepeats`).
    pub fn into_response(self, status: StatusCode) -> HttpResponse {
        let mut res = HttpResponse::build(status).json(self);
        res.extensions_mut().insert(super::signing::NeverRepeats);
        res
    }
}

pub struct Issue<'a> {
    pub instance_id: &'a str,
    pub udi: &'a Udi,
    pub public_key: &'a [u8],
    pub virtual_account: &'a str,
    pub issued_at: i64,
    pub renew_after: i64,
    pub expires_at: i64,
    pub export_controlled: bool,
}

pub fn issue(authority: &AuthorityKey, i: Issue<'_>) -> CertificateResponse {
    let payload = CertificatePayload {
        instance_id: i.instance_id.to_string(),
        udi: UdiJson {
            pid: i.udi.pid.clone(),
            sn: i.udi.sn.clone(),
            uuid: i.udi.uuid.clone(),
        },
        public_key: base64::engine::general_purpose::STANDARD.encode(i.public_key),
        virtual_account: i.virtual_account.to_string(),
        issued_at: rfc3339(i.issued_at),
        renew_after: rfc3339(i.renew_after),
        expires_at: rfc3339(i.expires_at),
        export_controlled: i.export_controlled,
    };
    CertificateResponse {
        instance_id: payload.instance_id.clone(),
        virtual_account: payload.virtual_account.clone(),
        id_certificate: idcert::issue(authority, &payload),
        renew_after: payload.renew_after.clone(),
        expires_at: payload.expires_at.clone(),
        authority_public_key: authority.public_key_b64(),
        authority_key_rotation: authority.rotation().cloned(),
    }
}
