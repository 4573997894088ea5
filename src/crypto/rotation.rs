//! Authority key rotation with an overlap period.
//!
//! `satellite keys rotate` makes a new authority key and a statement, signed by the old
//! key, that vouches for the new one until `overlap_until`:
//!
//! ```text
//! keys/rotation.json  {"format": "satellite-key-rotation/1", "authority_id": "...",
//!                      "old_public_key": "<b64>", "new_public_key": "<b64>",
//!                      "created_at": "<RFC3339>", "overlap_until": "<RFC3339>"}
//! keys/rotation.sig   raw 64-byte ed25519 signature of rotation.json by the OLD key
//! keys/previous.pem   the old private key (kept for the record, never used to sign)
//! keys/authority_id   the authority id, kept across rotations
//! ```
//!
//! The server signs with the new key from its next start and sends the statement along
//! (in a bundle manifest's `from.key_rotation`, in register/renew answers as
//! `authority_key_rotation`). A peer that pinned the old key accepts something signed by
//! the new key only with a statement that verifies under the key it pinned, names exactly
//! that pair, and whose overlap has not ended; it then pins the new key.

use super::keys::{public_key_b64, AuthorityKey};
use super::CryptoError;
use base64::Engine;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const FORMAT: &str = "satellite-key-rotation/1";

/// The statement as signed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Statement {
    pub format: String,
    pub authority_id: String,
    pub old_public_key: String,
    pub new_public_key: String,
    pub created_at: String,
    pub overlap_until: String,
}

/// The statement as carried: its exact bytes and the old key's signature, both base64.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Vouch {
    pub statement: String,
    pub signature: String,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl Vouch {
    /// The statement, when it is signed by `pinned`, hands `pinned` over to `signer`,
    /// and its overlap lasts past `now`.
    pub fn hands_over(&self, pinned: &VerifyingKey, signer: &VerifyingKey, now: i64) -> bool {
        let Ok(bytes) = b64().decode(&self.statement) else {
            return false;
        };
        let Ok(sig) = b64().decode(&self.signature) else {
            return false;
        };
        let Ok(sig) = <[u8; 64]>::try_from(sig.as_slice()) else {
            return false;
        };
        if pinned
            .verify_strict(&bytes, &ed25519_dalek::Signature::from_bytes(&sig))
            .is_err()
        {
            return false;
        }
        let Ok(s) = serde_json::from_slice::<Statement>(&bytes) else {
            return false;
        };
        let until = chrono::DateTime::parse_from_rfc3339(&s.overlap_until)
            .map(|t| t.timestamp())
            .unwrap_or(i64::MIN);
        s.format == FORMAT
            && s.old_public_key == public_key_b64(pinned)
            && s.new_public_key == public_key_b64(signer)
            && now <= until
    }
}

/// The statement on disk, if a rotation was made (whether or not its overlap is over:
/// the receiver decides that by its own clock).
pub fn load(data_dir: &Path) -> Option<Vouch> {
    let dir = data_dir.join("keys");
    let statement = std::fs::read(dir.join("rotation.json")).ok()?;
    let signature = std::fs::read(dir.join("rotation.sig")).ok()?;
    Some(Vouch {
        statement: b64().encode(statement),
        signature: b64().encode(signature),
    })
}

/// What a rotation made.
pub struct Rotated {
    pub authority_id: String,
    pub old_public_key: String,
    pub new_public_key: String,
    pub overlap_until: String,
}

/// Makes a new authority key under `data_dir/keys`, keeping the authority id, and the
/// old key's statement vouching for it for `overlap_days` from `now`.
pub fn rotate(data_dir: &Path, overlap_days: i64, now: i64) -> Result<Rotated, CryptoError> {
    let dir = data_dir.join("keys");
    let old = AuthorityKey::load_or_create(data_dir)?;
    let new = SigningKey::generate(&mut rand_core::OsRng);
    let statement = Statement {
        format: FORMAT.into(),
        authority_id: old.authority_id().to_string(),
        old_public_key: old.public_key_b64(),
        new_public_key: public_key_b64(&new.verifying_key()),
        created_at: crate::clock::rfc3339(now),
        overlap_until: crate::clock::rfc3339(now + overlap_days.max(0) * 86_400),
    };
    let bytes = serde_json::to_vec_pretty(&statement)
        .map_err(|e| CryptoError::Tls(format!("cannot write the rotation statement: {e}")))?;
    let signature = old.sign(&bytes);
    let private_pem = new
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| CryptoError::Tls(e.to_string()))?;
    let public_pem = new
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| CryptoError::Tls(e.to_string()))?;
    let write = |name: &str, data: &[u8]| {
        std::fs::write(dir.join(name), data)
            .map_err(CryptoError::io(format!("cannot write keys/{name}")))
    };
    // The id first: from here on it no longer follows from the key.
    write("authority_id", old.authority_id().as_bytes())?;
    let previous = dir.join("previous.pem");
    let _ = std::fs::remove_file(&previous);
    std::fs::rename(dir.join("authority.pem"), &previous)
        .map_err(CryptoError::io("cannot set the old key aside"))?;
    super::write_private(&dir.join("authority.pem"), private_pem.as_bytes())?;
    write("authority.pub.pem", public_pem.as_bytes())?;
    write("rotation.json", &bytes)?;
    write("rotation.sig", &signature)?;
    Ok(Rotated {
        authority_id: statement.authority_id,
        old_public_key: statement.old_public_key,
        new_public_key: statement.new_public_key,
        overlap_until: statement.overlap_until,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_key_hands_over_to_the_new_one_until_the_overlap_ends() {
        let dir = tempfile::tempdir().unwrap();
        let old = AuthorityKey::load_or_create(dir.path()).unwrap();
        let r = rotate(dir.path(), 7, 1_000_000).unwrap();
        let new = AuthorityKey::load_or_create(dir.path()).unwrap();
        assert_eq!(new.authority_id(), old.authority_id());
        assert_eq!(r.new_public_key, new.public_key_b64());
        let v = new.rotation().unwrap();
        let (o, n) = (old.verifying_key(), new.verifying_key());
        assert!(v.hands_over(&o, &n, 1_000_000 + 86_400));
        assert!(
            !v.hands_over(&o, &n, 1_000_000 + 8 * 86_400),
            "overlap over"
        );
        assert!(!v.hands_over(&n, &o, 1_000_000), "not backwards");
        let stranger = SigningKey::from_bytes(&[3u8; 32]).verifying_key();
        assert!(
            !v.hands_over(&o, &stranger, 1_000_000),
            "only to the new key"
        );
    }
}
