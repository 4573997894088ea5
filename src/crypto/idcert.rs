//! Id certificates: the authority's signed statement of an instance's registration, which
//! the agent keeps to prove it offline.

use super::AuthorityKey;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UdiJson {
    pub pid: String,
    pub sn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
}

/// The certificate's payload; timestamps are RFC 3339.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CertificatePayload {
    pub instance_id: String,
    pub udi: UdiJson,
    pub public_key: String,
    pub virtual_account: String,
    pub issued_at: String,
    pub renew_after: String,
    pub expires_at: String,
    pub export_controlled: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignedCertificate {
    /// base64 of the payload's JSON bytes.
    pub payload: String,
    /// base64 of the authority's signature over those bytes.
    pub signature: String,
}

pub fn issue(authority: &AuthorityKey, payload: &CertificatePayload) -> SignedCertificate {
    let bytes = serde_json::to_vec(payload).unwrap_or_default();
    SignedCertificate {
        payload: B64.encode(&bytes),
        signature: authority.sign_b64(&bytes),
    }
}

/// Checks the signature with the pinned authority key and returns the payload.
pub fn verify(
    authority: &ed25519_dalek::VerifyingKey,
    cert: &SignedCertificate,
) -> Option<CertificatePayload> {
    let bytes = B64.decode(&cert.payload).ok()?;
    if !super::agent_sig::verify_b64(authority, &bytes, &cert.signature) {
        return None;
    }
    serde_json::from_slice(&bytes).ok()
}
