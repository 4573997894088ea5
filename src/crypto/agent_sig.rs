//! The agent protocol's signatures (CONTRACT.md section 4), shared by the server and the
//! reference agent so both build exactly the same bytes.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

pub const INSTANCE_HEADER: &str = "x-satellite-instance";
pub const TIMESTAMP_HEADER: &str = "x-satellite-timestamp";
pub const SIGNATURE_HEADER: &str = "x-satellite-signature";
pub const RESPONSE_SIGNATURE_HEADER: &str = "x-satellite-response-signature";

/// `method "\n" path "\n" timestamp "\n" hex(sha256(body))`.
pub fn request_message(method: &str, path: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
    let digest = hex::encode(Sha256::digest(body));
    format!("{method}\n{path}\n{timestamp}\n{digest}").into_bytes()
}

pub fn sign_request(
    key: &SigningKey,
    method: &str,
    path: &str,
    timestamp: &str,
    body: &[u8],
) -> String {
    B64.encode(
        key.sign(&request_message(method, path, timestamp, body))
            .to_bytes(),
    )
}

/// A raw 32-byte ed25519 public key in standard base64.
pub fn decode_public_key(b64: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = B64.decode(b64).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// The 64 bytes of a base64 signature; None when malformed.
pub fn decode_signature(signature_b64: &str) -> Option<[u8; 64]> {
    B64.decode(signature_b64.trim())
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
}

/// Verifies a base64 signature; malformed input is simply not valid.
pub fn verify_b64(key: &VerifyingKey, message: &[u8], signature_b64: &str) -> bool {
    let Some(bytes) = decode_signature(signature_b64) else {
        return false;
    };
    key.verify_strict(message, &Signature::from_bytes(&bytes))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_signatures_round_trip() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let sig = sign_request(&key, "POST", "/agent/v1/usage", "1700000000", b"{}");
        let msg = request_message("POST", "/agent/v1/usage", "1700000000", b"{}");
        assert!(verify_b64(&key.verifying_key(), &msg, &sig));
        let tampered = request_message("POST", "/agent/v1/usage", "1700000000", b"{ }");
        assert!(!verify_b64(&key.verifying_key(), &tampered, &sig));
        assert!(!verify_b64(&key.verifying_key(), &msg, "not base64!"));
        let pk = B64.encode(key.verifying_key().as_bytes());
        assert_eq!(decode_public_key(&pk), Some(key.verifying_key()));
        assert_eq!(decode_public_key("AAAA"), None);
    }
}
