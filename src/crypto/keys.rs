//! The authority's ed25519 key: created on first start, PKCS#8 private and SPKI public PEM.

use super::{write_private, CryptoError};
use base64::Engine;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::path::Path;

pub struct AuthorityKey {
    signing: SigningKey,
    authority_id: String,
    /// The previous key's statement vouching for this one, after a rotation.
    rotation: Option<super::rotation::Vouch>,
    /// Agent reply bodies signed last (most repeat: see recent_signatures.rs).
    replies: super::recent_signatures::RecentSignatures,
}

impl AuthorityKey {
    /// Loads `keys/authority.pem` under `data_dir`, creating the pair on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, CryptoError> {
        let dir = data_dir.join("keys");
        let private_path = dir.join("authority.pem");
        let public_path = dir.join("authority.pub.pem");
        if private_path.exists() {
            let pem = std::fs::read_to_string(&private_path).map_err(CryptoError::io(format!(
                "cannot read {}",
                private_path.display()
            )))?;
            let signing = SigningKey::from_pkcs8_pem(&pem).map_err(|e| CryptoError::BadKey {
                path: private_path.display().to_string(),
                message: e.to_string(),
            })?;
            let mut key = Self::from_signing_key(signing);
            // After a rotation the id is kept on disk: it no longer follows from the key.
            if let Ok(id) = std::fs::read_to_string(dir.join("authority_id")) {
                if !id.trim().is_empty() {
                    key.authority_id = id.trim().to_string();
                }
            }
            key.rotation = super::rotation::load(data_dir);
            return Ok(key);
        }
        std::fs::create_dir_all(&dir)
            .map_err(CryptoError::io(format!("cannot create {}", dir.display())))?;
        let signing = SigningKey::generate(&mut rand_core::OsRng);
        let private_pem = signing
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| CryptoError::Tls(e.to_string()))?;
        let public_pem = signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .map_err(|e| CryptoError::Tls(e.to_string()))?;
        write_private(&private_path, private_pem.as_bytes())?;
        std::fs::write(&public_path, public_pem).map_err(CryptoError::io(format!(
            "cannot write {}",
            public_path.display()
        )))?;
        Ok(Self::from_signing_key(signing))
    }

    pub fn from_signing_key(signing: SigningKey) -> Self {
        let authority_id = authority_id_for(&signing.verifying_key());
        Self {
            signing,
            authority_id,
            rotation: None,
            replies: Default::default(),
        }
    }

    /// The statement by the previous key vouching for this one, if the key was rotated.
    pub fn rotation(&self) -> Option<&super::rotation::Vouch> {
        self.rotation.as_ref()
    }

    pub fn authority_id(&self) -> &str {
        &self.authority_id
    }

    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// The raw 32-byte public key in standard base64, as the agent protocol carries it.
    pub fn public_key_b64(&self) -> String {
        public_key_b64(&self.verifying_key())
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    pub fn sign_b64(&self, message: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.sign(message))
    }

    /// As `sign_b64`, for an agent reply body: a body signed a moment ago is not signed
    /// again (the signature is the same; crypto/recent_signatures.rs). True when the
    /// signature was kept.
    pub fn sign_reply_b64(&self, body: &[u8]) -> (String, bool) {
        self.replies.get_or_sign(body, |b| self.sign_b64(b))
    }
}

/// A raw 32-byte public key in standard base64.
pub fn public_key_b64(key: &VerifyingKey) -> String {
    base64::engine::general_purpose::STANDARD.encode(key.as_bytes())
}

/// A stable, opaque id derived from the public key, so it survives restarts and restores.
pub fn authority_id_for(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("sat-{}", hex::encode(&digest[..10]))
}

/// A short fingerprint people can compare by eye: `SHA256:` and the first 16 hex digits.
pub fn fingerprint(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("SHA256:{}", hex::encode(&digest[..8]))
}

/// The fingerprint of a stored raw public key; empty when the bytes are not a key.
pub fn key_fingerprint(key: &[u8]) -> String {
    <[u8; 32]>::try_from(key)
        .ok()
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .map(|k| fingerprint(&k))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = AuthorityKey::load_or_create(dir.path()).unwrap();
        let again = AuthorityKey::load_or_create(dir.path()).unwrap();
        assert_eq!(first.authority_id(), again.authority_id());
        assert_eq!(first.public_key_b64(), again.public_key_b64());
        let pem = std::fs::read_to_string(dir.path().join("keys/authority.pem")).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let pubpem = std::fs::read_to_string(dir.path().join("keys/authority.pub.pem")).unwrap();
        assert!(pubpem.starts_with("-----BEGIN PUBLIC KEY-----"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("keys/authority.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let sig = first.sign(b"hello");
        let sig = ed25519_dalek::Signature::from_bytes(&sig);
        assert!(again.verifying_key().verify_strict(b"hello", &sig).is_ok());
    }
}
