//! The codes a product and the authority exchange as text: the request code a product
//! prints (`CB-Z…`), the confirmation code it prints once a code is installed, and the
//! return code (`RC-…`) that releases a reservation; plus the hex forms of key hashes and
//! nonces as they are stored.

use super::{hex, unhex, KeyHash, KEY_HASH_LEN, NONCE_LEN};
use crate::domain::DomainError;
use data_encoding::BASE32_NOPAD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

const REQUEST_PREFIX: &str = "CB-Z";
const RETURN_PREFIX: &str = "RC-";

/// The first 10 bytes of sha256 of a raw ed25519 public key.
pub fn key_hash(public_key: &[u8; 32]) -> KeyHash {
    let digest = Sha256::digest(public_key);
    let mut out = [0u8; KEY_HASH_LEN];
    out.copy_from_slice(&digest[..KEY_HASH_LEN]);
    out
}

/// The checksum `C`: 4 lower-case hex digits of sha256 of everything before the last `-`.
fn checksum(head: &str) -> String {
    hex(&Sha256::digest(head.as_bytes())[..2])
}

/// A parsed request code: the UDI it names and the key hash and nonce it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestCode {
    pub text: String,
    pub pid: String,
    pub sn: String,
    pub key_hash: KeyHash,
    pub nonce: [u8; NONCE_LEN],
}

/// `CB-Z<PID>:<SN>-<B>-<C>`: B is base32 of key hash ‖ nonce, C the checksum.
pub fn make_request_code(pid: &str, sn: &str, public_key: &[u8; 32], nonce: [u8; 6]) -> String {
    let mut b = key_hash(public_key).to_vec();
    b.extend_from_slice(&nonce);
    let head = format!("{REQUEST_PREFIX}{pid}:{sn}-{}", BASE32_NOPAD.encode(&b));
    let c = checksum(&head);
    format!("{head}-{c}")
}

fn invalid_request(message: &str) -> DomainError {
    DomainError::invalid("invalid_request_code", "request_code", message)
}

pub fn parse_request_code(raw: &str) -> Result<RequestCode, DomainError> {
    let text = raw.trim();
    let (head, c) = text
        .rsplit_once('-')
        .ok_or_else(|| invalid_request("A request code looks like CB-Z<PID>:<SN>-<B>-<C>."))?;
    let rest = head
        .strip_prefix(REQUEST_PREFIX)
        .ok_or_else(|| invalid_request("A request code starts with CB-Z."))?;
    if checksum(head) != c {
        return Err(invalid_request(
            "The request code's checksum does not match: it was mistyped or cut short. Copy it again from the product.",
        ));
    }
    let (udi, b) = rest
        .rsplit_once('-')
        .ok_or_else(|| invalid_request("A request code looks like CB-Z<PID>:<SN>-<B>-<C>."))?;
    let (pid, sn) = udi
        .split_once(':')
        .ok_or_else(|| invalid_request("The request code names no UDI (PID:SN)."))?;
    crate::domain::instance::check_udi(pid, sn, None)
        .map_err(|_| invalid_request("The request code's UDI is not valid."))?;
    let bytes = BASE32_NOPAD
        .decode(b.as_bytes())
        .ok()
        .filter(|v| v.len() == KEY_HASH_LEN + NONCE_LEN)
        .ok_or_else(|| {
            invalid_request("The request code's key part is not 26 base32 characters.")
        })?;
    let mut key_hash = [0u8; KEY_HASH_LEN];
    key_hash.copy_from_slice(&bytes[..KEY_HASH_LEN]);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&bytes[KEY_HASH_LEN..]);
    Ok(RequestCode {
        text: text.to_string(),
        pid: pid.to_string(),
        sn: sn.to_string(),
        key_hash,
        nonce,
    })
}

/// Hex sha256 of the code bytes: what a return code signs, and how a server tells codes apart.
pub fn code_hash_hex(code_bytes: &str) -> String {
    hex(&Sha256::digest(code_bytes.as_bytes()))
}

/// 8 lower-case hex digits: the first 4 bytes of sha256(code bytes ‖ key hash).
pub fn confirmation_code(code_bytes: &str, key_hash: &KeyHash) -> String {
    let mut h = Sha256::new();
    h.update(code_bytes.as_bytes());
    h.update(key_hash);
    hex(&h.finalize()[..4])
}

pub(super) fn return_message(piid: &str, code_bytes: &str) -> String {
    format!("satellite-return\n{piid}\n{}", code_hash_hex(code_bytes))
}

/// `RC-` + base32 of the agent's public key ‖ its signature over the return message.
pub fn make_return_code(key: &SigningKey, piid: &str, code_bytes: &str) -> String {
    let sig = key.sign(return_message(piid, code_bytes).as_bytes());
    let mut bytes = key.verifying_key().to_bytes().to_vec();
    bytes.extend_from_slice(&sig.to_bytes());
    format!("{RETURN_PREFIX}{}", BASE32_NOPAD.encode(&bytes))
}

/// A return code taken apart (not yet checked against any reservation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnCode {
    pub public_key: [u8; 32],
    pub signature: [u8; 64],
}

impl ReturnCode {
    pub fn key_hash(&self) -> KeyHash {
        key_hash(&self.public_key)
    }

    /// Whether it returns the reservation `piid` whose current code bytes hash to
    /// `code_hash_hex`.
    pub fn verifies(&self, piid: &str, code_hash_hex: &str) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.public_key) else {
            return false;
        };
        let msg = format!("satellite-return\n{piid}\n{code_hash_hex}");
        key.verify(msg.as_bytes(), &Signature::from_bytes(&self.signature))
            .is_ok()
    }

    /// A fingerprint of the code, to recognise it when it is entered again.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.public_key);
        h.update(self.signature);
        hex(&h.finalize())
    }
}

pub fn invalid_return_code(message: &str) -> DomainError {
    DomainError::invalid("invalid_return_code", "return_code", message)
}

pub fn parse_return_code(raw: &str) -> Result<ReturnCode, DomainError> {
    let bytes = raw
        .trim()
        .strip_prefix(RETURN_PREFIX)
        .and_then(|b| BASE32_NOPAD.decode(b.as_bytes()).ok())
        .filter(|b| b.len() == 96)
        .ok_or_else(|| {
            invalid_return_code("A return code is RC- and 154 base32 characters; copy it again.")
        })?;
    let mut public_key = [0u8; 32];
    public_key.copy_from_slice(&bytes[..32]);
    let mut signature = [0u8; 64];
    signature.copy_from_slice(&bytes[32..]);
    Ok(ReturnCode {
        public_key,
        signature,
    })
}

pub fn key_hash_hex(k: &KeyHash) -> String {
    hex(k)
}

pub fn nonce_hex(n: &[u8; NONCE_LEN]) -> String {
    hex(n)
}

pub fn parse_key_hash(s: &str) -> Option<KeyHash> {
    unhex::<KEY_HASH_LEN>(s)
}

pub fn parse_nonce(s: &str) -> Option<[u8; NONCE_LEN]> {
    unhex::<NONCE_LEN>(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent_key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    /// The worked example of docs/protocol.md.
    #[test]
    fn request_code_worked_example() {
        let key = agent_key();
        let pk = key.verifying_key().to_bytes();
        let code = make_request_code("CUCM", "SN1", &pk, [1, 2, 3, 4, 5, 6]);
        let parsed = parse_request_code(&code).unwrap();
        assert_eq!(parsed.pid, "CUCM");
        assert_eq!(parsed.sn, "SN1");
        assert_eq!(parsed.key_hash, key_hash(&pk));
        assert_eq!(parsed.nonce, [1, 2, 3, 4, 5, 6]);
        let b = code.rsplit('-').nth(1).unwrap();
        assert_eq!(b.len(), 26);
        assert!(b
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
        let c = code.rsplit('-').next().unwrap();
        assert_eq!(c.len(), 4);
        println!("request code: {code}");
    }

    #[test]
    fn a_mistyped_request_code_fails_its_checksum() {
        let pk = agent_key().verifying_key().to_bytes();
        let code = make_request_code("C9300-24T", "FOC1-2", &pk, [9; 6]);
        assert_eq!(parse_request_code(&code).unwrap().sn, "FOC1-2");
        let typo = code.replacen("FOC", "F0C", 1);
        let err = parse_request_code(&typo).unwrap_err();
        assert!(matches!(
            err,
            DomainError::Invalid {
                code: "invalid_request_code",
                ..
            }
        ));
        assert!(parse_request_code("hello").is_err());
        assert!(parse_request_code("").is_err());
    }
}
